"""``python -m plugyard``: the same as the ``plugyard`` command."""

from plugyard.cli import main

raise SystemExit(main())
