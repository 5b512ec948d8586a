"""plugyard's loggers, which import :mod:`logging` only once someone could listen.

A record can only reach a handler the application set up, and setting one up
means importing :mod:`logging`. Until something has imported it, a record
would go nowhere (plugyard's logger has a :class:`logging.NullHandler`, so
Python's last-resort handler never prints them), and :class:`Logger` drops
it without building it: a command-line tool that never logs does not pay for
the logging package (about a tenth of stevedore's whole import here).

Once :mod:`logging` is imported, by anyone, each call goes to the real
``logging.getLogger(name)`` with the same arguments, so levels, filters,
handlers and ``caplog`` behave exactly as with a logger made at import.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging
    from typing import Any


def get(name: str) -> logging.Logger:
    """Return the real logger ``name``, giving plugyard's own a :class:`~logging.NullHandler`."""
    import logging

    root = logging.getLogger("plugyard")
    if not any(isinstance(each, logging.NullHandler) for each in root.handlers):
        # A library's records go where the application sends them; with no
        # logging set up they are not printed.
        root.addHandler(logging.NullHandler())
    return logging.getLogger(name)


class Logger:
    """A stand-in for ``logging.getLogger(name)`` that costs nothing until logging is imported.

    Only the methods plugyard calls are here; each forwards its arguments.
    """

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.log`, as the caller's own record."""
        if "logging" not in sys.modules:
            return  # no handler can exist: the record would go nowhere
        if self._logger is None:
            self._logger = get(self.name)
        self._logger.log(level, msg, *args, stacklevel=kwargs.pop("stacklevel", 2), **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.debug`."""
        self.log(DEBUG, msg, *args, stacklevel=3, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.info`."""
        self.log(INFO, msg, *args, stacklevel=3, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.warning`."""
        self.log(WARNING, msg, *args, stacklevel=3, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.error`."""
        self.log(ERROR, msg, *args, stacklevel=3, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        """Forward to :meth:`logging.Logger.exception`: an error with the exception handled."""
        self.log(ERROR, msg, *args, stacklevel=3, exc_info=True, **kwargs)


#: The levels of :mod:`logging`, without importing it.
DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
