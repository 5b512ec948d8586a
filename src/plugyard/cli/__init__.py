"""The ``plugyard`` command: list, inspect, graph and run plugins; make keys, sign, verify.

Every failure is one line on stderr, ``plugyard: ...``, and an exit code: 0
success, 1 a plugin failed, 2 a usage error, 3 the output could not be
written, 4 an internal error, 130 interrupted. ``PLUGYARD_DEBUG=1`` adds the
tracebacks. ``--json`` output is documented in the CLI reference and kept stable.
"""

from ._app import main

__all__ = ["main"]
