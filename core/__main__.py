"""``python -m core``: the same command-line tool as ``img2mesh``."""

from .cli import main

raise SystemExit(main())
