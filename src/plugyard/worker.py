"""Serve a plugyard plugin class in a sandbox process: ``python -m plugyard.worker module:Plugin``.

The host starts this for an isolated Python plugin; any ordinary plugin
class (or function) is served unchanged. See ``docs/protocol.md``.
"""

from __future__ import annotations

import sys

from .runtime._worker import Worker, main

__all__ = ["Worker", "main"]

if __name__ == "__main__":
    sys.exit(main())
