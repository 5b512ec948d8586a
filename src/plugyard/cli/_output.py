"""What every command shares: exit codes, one-line errors on stderr, and standard output."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from typing import TextIO

#: Success.
EXIT_OK = 0
#: A plugin failed, a verification failed, or a config was rejected.
EXIT_FAILED = 1
#: The command line cannot be run as given.
EXIT_USAGE = 2
#: Standard output could not be written: closed, a broken pipe, a full disk.
EXIT_OUTPUT = 3
#: A bug in plugyard: an exception nothing expected.
EXIT_INTERNAL = 4
#: Interrupted (Ctrl-C): 128 + SIGINT, as a shell reports it.
EXIT_INTERRUPTED = 130

GROUP_ENV = "PLUGYARD_GROUP"
CONFIG_ENV = "PLUGYARD_CONFIG_DIR"
DEBUG_ENV = "PLUGYARD_DEBUG"
#: How ``config get`` shows bytes and ``config set`` reads them: the prefix, then base64.
BYTES_PREFIX = "base64:"

# What would break a message over several lines (everything str.splitlines()
# splits on) or move the terminal's cursor, shown escaped instead.
_ESCAPES = {
    code: ascii(chr(code))[1:-1]
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
    if code != 0x09
}


class UsageError(Exception):
    """The command line cannot be run as given; the message says why."""


class OutputError(Exception):
    """Standard output could not be written; the message says why."""


def debug() -> bool:
    """Whether ``PLUGYARD_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def err(message: str, error: BaseException | None = None) -> None:
    """Print ``plugyard: message`` as one line on stderr.

    With ``PLUGYARD_DEBUG`` set, the traceback of ``error`` comes first.
    """
    stream = sys.stderr
    if stream is None:  # no stderr at all (pythonw, or closed before start)
        return
    # Nowhere is left to report a failure to write stderr itself.
    with contextlib.suppress(OSError, ValueError):
        if error is not None and debug():
            traceback.print_exception(error, file=stream)
        stream.write(f"plugyard: {message.translate(_ESCAPES)}\n")
        stream.flush()


def error_line(name: str, error: BaseException) -> str:
    """``NAME: ErrorType: message``, the shape of a plugin's error line."""
    return f"{name}: {type(error).__name__}: {error}"


def report(name: str, error: BaseException) -> None:
    """Print the error line of plugin ``name`` (with its traceback under ``PLUGYARD_DEBUG``)."""
    err(error_line(name, error), error)


class Output:
    """Standard output as the commands write it: a write that fails raises :class:`OutputError`.

    Failures to write are told apart from every other ``OSError`` this way,
    and reported with their own exit code.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    @contextlib.contextmanager
    def _writing(self) -> Iterator[TextIO]:
        if self._stream is None:
            raise OutputError("standard output is closed")
        try:
            yield self._stream
        except (OSError, ValueError) as exc:  # ValueError: the file object was closed
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OutputError(reason) from exc

    def write(self, text: str) -> int:
        """Write ``text``; return how many characters were written."""
        with self._writing() as stream:
            return stream.write(text)

    def flush(self) -> None:
        """Push what is buffered to the file, where a full disk or a closed pipe shows."""
        with self._writing() as stream:
            stream.flush()
