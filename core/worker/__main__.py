"""``python -m core.worker``: serve reconstructions over JSON lines (docs/worker-protocol.md)."""

from .serve import main

raise SystemExit(main())
