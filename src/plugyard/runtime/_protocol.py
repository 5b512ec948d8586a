"""The wire of the sandbox: msgpack-RPC messages on a byte stream, with limits.

The messages are those of the msgpack-RPC specification, concatenated with
no other framing: a request ``[0, msgid, method, params]``, a response
``[1, msgid, error, result]``, a notification ``[2, method, params]``.
:class:`Decoder` turns bytes into checked messages and refuses, with a
:class:`ProtocolViolation` that quotes what it received, anything else:
bytes that are not msgpack, an extension type, a message larger or deeper
than the limits, a value of the wrong shape. ``docs/protocol.md`` is the
specification another implementation follows; this module is the host's
and the Python worker's side of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import msgpack

#: The protocol versions this side speaks.
VERSIONS = (1,)

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2

HELLO = "$/hello"
CANCEL = "$/cancel"
PING = "$/ping"
LOG = "$/log"
SHUTDOWN = "$/shutdown"

#: The environment variable holding the one-time token the child sends back in ``$/hello``.
TOKEN_ENV = "PLUGYARD_TOKEN"  # noqa: S105 - the variable's name, not a secret
#: The file descriptors of the two pipes, as the child sees them.
HOST_TO_PLUGIN_FD = 3
PLUGIN_TO_HOST_FD = 4

#: The largest msgid; ids are unsigned 32-bit integers.
MAX_MSGID = 2**32 - 1


class Codes:
    """The error codes of the ``[code, message, data]`` error triple."""

    #: The request is not a valid msgpack-RPC request.
    INVALID_REQUEST = -32600
    #: The method is not one the receiver offers.
    METHOD_NOT_FOUND = -32601
    #: The params do not fit the method.
    INVALID_PARAMS = -32602
    #: The receiver failed in its own code, not the plugin's.
    INTERNAL_ERROR = -32603
    #: The plugin's method raised; ``data`` says what (``type``, ``traceback``).
    PLUGIN_ERROR = -32000
    #: ``$/hello`` was refused: a wrong token, no common version, another plugin.
    HANDSHAKE_REFUSED = -32001
    #: The receiver is shutting down and takes no new calls.
    SHUTTING_DOWN = -32002
    #: The call was cancelled with ``$/cancel`` before it finished.
    CANCELLED = -32800


@attrs.frozen
class Limits:
    """What a decoder accepts; anything beyond ends the peer.

    Attributes:
        max_message: The largest message, in bytes.
        max_depth: The deepest nesting of arrays and maps in one message
            (the message's own array counts as one).
    """

    max_message: int = 64 * 1024 * 1024
    max_depth: int = 32


class ProtocolViolation(Exception):  # noqa: N818 - a violation, not an error in this code
    """The peer sent something the protocol does not allow.

    Attributes:
        reason: What is wrong.
        received: A short, printable excerpt of what was received.
    """

    def __init__(self, reason: str, received: bytes | object = b"") -> None:
        self.reason = reason
        self.received = quote(received)
        super().__init__(f"{reason} (received {self.received})")


def quote(value: object, limit: int = 80) -> str:
    """A short, printable form of ``value`` for error messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _no_ext(code: int, data: bytes) -> object:
    raise ProtocolViolation(f"msgpack extension type {code} is not allowed", data)


_pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack


def pack(message: list[Any]) -> bytes:
    """Encode one message (strings as str, bytes as bin)."""
    data: bytes = _pack(message)
    return data


def request(msgid: int, method: str, params: list[Any]) -> bytes:
    """Encode a request."""
    data: bytes = _pack([REQUEST, msgid, method, params])
    return data


def response(msgid: int, error: list[Any] | None, result: Any) -> bytes:
    """Encode a response; ``error`` is ``[code, message, data]`` or ``None``."""
    data: bytes = _pack([RESPONSE, msgid, error, result])
    return data


def notification(method: str, params: list[Any]) -> bytes:
    """Encode a notification."""
    data: bytes = _pack([NOTIFICATION, method, params])
    return data


def error(code: int, message: str, data: Any = None) -> list[Any]:
    """The error triple of a response."""
    return [code, message, data]


class Decoder:
    """Turns a byte stream into checked messages.

    Feed it what was read; iterate it for the messages complete so far. The
    first problem raises :class:`ProtocolViolation`; the stream cannot be
    resynchronised after one, so the peer is to be ended.

    Args:
        limits: The decoder limits.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        size = self.limits.max_message
        self._unpacker = msgpack.Unpacker(
            raw=False,
            ext_hook=_no_ext,
            max_buffer_size=size,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,  # refused by the hook, with a message that says so
            strict_map_key=True,
        )
        self._last = b""

    def feed(self, data: bytes) -> None:
        """Add bytes read from the stream.

        Raises:
            ProtocolViolation: a message is larger than the limit.
        """
        self._last = data[:64]
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise ProtocolViolation(
                f"a message is larger than the limit of {self.limits.max_message} bytes",
                self._last,
            ) from None

    def __iter__(self) -> Iterator[list[Any]]:
        return self

    def __next__(self) -> list[Any]:
        try:
            value = next(self._unpacker)
        except StopIteration:
            raise
        except ProtocolViolation:
            raise
        except ValueError as exc:  # ExtraData, FormatError, StackError, limits, bad UTF-8
            raise ProtocolViolation(f"not valid msgpack: {exc}", self._last) from None
        except Exception as exc:  # a map key the unpacker refuses, and the like
            raise ProtocolViolation(
                f"not valid msgpack: {type(exc).__name__}: {exc}", self._last
            ) from None
        return check(value, self.limits.max_depth)


def _depth(value: object, limit: int) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            raise ProtocolViolation(f"a message nests deeper than {limit} levels")
        if isinstance(item, list):
            stack.extend((child, level + 1) for child in item if isinstance(child, (list, dict)))
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, (list, dict)):  # pragma: no cover - strict_map_key refuses
                    stack.append((key, level + 1))
                if isinstance(child, (list, dict)):
                    stack.append((child, level + 1))


def check(value: object, max_depth: int) -> list[Any]:
    """``value`` if it is a well-formed message, else raise :class:`ProtocolViolation`."""
    if not isinstance(value, list) or not value:
        raise ProtocolViolation("a message must be a non-empty array", value)
    kind = value[0]
    if isinstance(kind, bool):
        raise ProtocolViolation("a message must start with 0, 1 or 2", value)
    if kind == REQUEST:
        ok = (
            len(value) == 4
            and _msgid(value[1])
            and isinstance(value[2], str)
            and isinstance(value[3], list)
        )
        shape = "[0, msgid, method, params]"
    elif kind == RESPONSE:
        ok = len(value) == 4 and _msgid(value[1]) and _error_triple(value[2])
        shape = "[1, msgid, error, result] with error nil or [code, message, data]"
    elif kind == NOTIFICATION:
        ok = len(value) == 3 and isinstance(value[1], str) and isinstance(value[2], list)
        shape = "[2, method, params]"
    else:
        raise ProtocolViolation("a message must start with 0, 1 or 2", value)
    if not ok:
        raise ProtocolViolation(f"a malformed message: expected {shape}", value)
    if max_depth < 2 or any(isinstance(v, (list, dict)) for v in value[1:]):
        _depth(value, max_depth)
    return value


def _msgid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MSGID


def _error_triple(value: object) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and isinstance(value[1], str)
    )
