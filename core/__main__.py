"""``python -m core``: the same command-line tool as ``img2mesh``."""

from .cli.main import main

raise SystemExit(main())
