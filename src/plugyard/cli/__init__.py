"""The ``plugyard`` command: list, inspect, graph and run plugins; make keys, sign, verify.

Exit codes: 0 success, 1 a plugin failed, 2 a usage error. Errors go to
stderr, one line each, naming the plugin. ``--json`` output is documented in
the CLI reference and kept stable.
"""

from ._app import main

__all__ = ["main"]
