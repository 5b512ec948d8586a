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

import os
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


#: A ``bytes`` argument or result from this size on is written and read without copies.
BIG = 256 * 1024
_BIN32 = 0xC6


def _as_buffer(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray)) and len(value) >= BIG


def request_parts(msgid: int, method: str, params: list[Any]) -> list[bytes | memoryview]:
    """A request as buffers to write in order: a large ``bytes`` argument is not copied."""
    if len(params) == 1 and _as_buffer(params[0]):
        payload = params[0]
        head = b"\x94\x00" + _pack(msgid) + _pack(method) + b"\x91"
        return [head + b"\xc6" + len(payload).to_bytes(4, "big"), memoryview(payload)]
    return [request(msgid, method, params)]


def response_parts(msgid: int, error: list[Any] | None, result: Any) -> list[bytes | memoryview]:
    """A response as buffers to write in order: a large ``bytes`` result is not copied."""
    if error is None and _as_buffer(result):
        head = b"\x94\x01" + _pack(msgid) + b"\xc0\xc6" + len(result).to_bytes(4, "big")
        return [head, memoryview(result)]
    return [response(msgid, error, result)]


def write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """Write every buffer of ``parts`` to ``fd``, in order, in as few system calls as it takes."""
    if len(parts) == 1:
        view = memoryview(parts[0])
        while view:
            view = view[os.write(fd, view) :]
        return
    views = [memoryview(p) for p in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _big_prefix(data: bytes | memoryview, threshold: int) -> tuple[list[Any], int, int] | None:
    """A request or response ending in a large bin, parsed up to the bin: its head, offset, size.

    ``None`` for anything else (the general decoder takes it).
    """
    try:
        kind = data[1]
        i, msgid = _uint(data, 2)
        if kind == REQUEST:
            first = data[i]
            if 0xA0 <= first <= 0xBF:
                size, i = first - 0xA0, i + 1
            elif first == 0xD9:
                size, i = data[i + 1], i + 2
            else:
                return None
            if i + size > len(data):
                return None
            method = bytes(data[i : i + size]).decode("utf-8")
            i += size
            if data[i] != 0x91:
                return None
            head: list[Any] = [REQUEST, msgid, method]
        elif kind == RESPONSE:
            if data[i] != 0xC0:
                return None
            head = [RESPONSE, msgid, None]
        else:
            return None
        i += 1
        if data[i] != _BIN32 or i + 5 > len(data):
            return None
        length = int.from_bytes(data[i + 1 : i + 5], "big")
    except (IndexError, UnicodeDecodeError):
        return None
    if length < threshold:
        return None
    return head, i + 5, length


def _uint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    first = data[i]
    if first < 0x80:
        return i + 1, first
    width = {0xCC: 1, 0xCD: 2, 0xCE: 4}.get(first)
    if width is None or i + 1 + width > len(data):
        raise IndexError(i)
    return i + 1 + width, int.from_bytes(data[i + 1 : i + 1 + width], "big")


class Decoder:
    """Turns a byte stream into checked messages.

    Feed it what was read; iterate it for the messages complete so far. The
    first problem raises :class:`ProtocolViolation`; the stream cannot be
    resynchronised after one, so the peer is to be ended. A request or
    response whose last value is a large ``bin`` (an 8 MiB argument) is
    gathered as it arrives and joined once, instead of going through
    msgpack's buffer.

    Args:
        limits: The decoder limits.
        big: The size from which a trailing ``bin`` is gathered apart.
    """

    def __init__(self, limits: Limits | None = None, *, big: int = BIG) -> None:
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
        self._last: bytes | memoryview = b""
        self._big = max(big, 1)
        self._fed = 0
        self._ready: list[list[Any]] = []
        self._head: list[Any] = []
        self._chunks: list[bytes | memoryview] = []
        self._want = 0

    def feed(self, data: bytes | memoryview) -> None:
        """Add bytes read from the stream.

        Raises:
            ProtocolViolation: a message is larger than the limit.
        """
        if not data:
            return
        if self._want:
            if len(data) < self._want:
                self._chunks.append(data)
                self._want -= len(data)
                return
            view = memoryview(data)
            self._chunks.append(view[: self._want])
            data = view[self._want :]
            self._want = 0
            payload = b"".join(self._chunks)
            self._chunks = []
            head = self._head
            self._ready.append([*head, [payload]] if head[0] == REQUEST else [*head, payload])
            if not data:
                return
        # A large message's prefix comes with much of its payload (it is
        # written with writev): small reads never start one.
        if len(data) >= 4096 and data[0] == 0x94 and self._fed == self._unpacker.tell():
            parsed = _big_prefix(data, self._big)
            if parsed is not None:
                head, offset, length = parsed
                if offset + length > self.limits.max_message:
                    raise ProtocolViolation(
                        f"a message is larger than the limit of {self.limits.max_message} bytes",
                        data[:64],
                    )
                self._head, self._want, self._chunks = head, length, []
                rest = memoryview(data)[offset:]
                if rest or not length:
                    self.feed(rest)
                return
        self._last = data
        self._fed += len(data)
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise ProtocolViolation(
                f"a message is larger than the limit of {self.limits.max_message} bytes",
                bytes(self._last[:64]),
            ) from None

    def __iter__(self) -> Iterator[list[Any]]:
        return self

    def __next__(self) -> list[Any]:
        if self._ready:
            return self._ready.pop(0)
        try:
            value = next(self._unpacker)
        except StopIteration:
            raise
        except ProtocolViolation:
            raise
        except ValueError as exc:  # ExtraData, FormatError, StackError, limits, bad UTF-8
            raise ProtocolViolation(f"not valid msgpack: {exc}", bytes(self._last[:64])) from None
        except Exception as exc:  # a map key the unpacker refuses, and the like
            raise ProtocolViolation(
                f"not valid msgpack: {type(exc).__name__}: {exc}", bytes(self._last[:64])
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
    # type() rather than isinstance(): msgpack makes exact types, a bool is no msgid,
    # and this runs for every message.
    if type(value) is not list or not value:
        raise ProtocolViolation("a message must be a non-empty array", value)
    kind = value[0]
    size = len(value)
    if type(kind) is not int:
        raise ProtocolViolation("a message must start with 0, 1 or 2", value)
    if kind == RESPONSE:
        msgid = value[1] if size == 4 else None
        ok = type(msgid) is int and 0 <= msgid <= MAX_MSGID and _error_triple(value[2])
        shape = "[1, msgid, error, result] with error nil or [code, message, data]"
        inner = value[2:]
    elif kind == REQUEST:
        msgid = value[1] if size == 4 else None
        ok = (
            type(msgid) is int
            and 0 <= msgid <= MAX_MSGID
            and type(value[2]) is str
            and type(value[3]) is list
        )
        shape = "[0, msgid, method, params]"
        inner = value[3] if ok else []
    elif kind == NOTIFICATION:
        ok = size == 3 and type(value[1]) is str and type(value[2]) is list
        shape = "[2, method, params]"
        inner = value[2] if ok else []
    else:
        raise ProtocolViolation("a message must start with 0, 1 or 2", value)
    if not ok:
        raise ProtocolViolation(f"a malformed message: expected {shape}", value)
    if max_depth < 3:
        _depth(value, max_depth)
    else:
        for item in inner:
            if type(item) is list or type(item) is dict:
                _depth(value, max_depth)
                break
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
