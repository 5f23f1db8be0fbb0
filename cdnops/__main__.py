"""Entry point for `python -m cdnops`."""

from cdnops.cli import main

raise SystemExit(main())
