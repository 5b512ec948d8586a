"""The wire: messages decode from any chunking, and anything malformed is refused, never crashes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from plugyard.runtime import Limits, _protocol as wire

#: Values msgpack-RPC params may hold: no extension types, string map keys.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
msgids = st.integers(min_value=0, max_value=wire.MAX_MSGID)
methods = st.text(min_size=1, max_size=12)
errors = st.none() | st.tuples(st.integers(-40000, 40000), st.text(max_size=20), values).map(list)
messages = st.one_of(
    st.tuples(st.just(0), msgids, methods, st.lists(values, max_size=3)),
    st.tuples(st.just(1), msgids, errors, values),
    st.tuples(st.just(2), methods, st.lists(values, max_size=3)),
).map(list)


def _decode_all(data: bytes, cuts: list[int], limits: Limits | None = None) -> list[list[Any]]:
    decoder = wire.Decoder(limits)
    found: list[list[Any]] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        decoder.feed(data[start:cut])
        start = max(start, cut)
        found.extend(decoder)
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=6), st.lists(st.integers(min_value=0), max_size=8))
def test_messages_decode_the_same_however_the_stream_is_cut(
    sent: list[list[Any]], cuts: list[int]
) -> None:
    data = b"".join(wire.pack(m) for m in sent)
    assert _decode_all(data, cuts) == sent


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_messages_or_a_protocol_violation(data: bytes) -> None:
    decoder = wire.Decoder(Limits(max_message=1024, max_depth=8))
    decoded: list[list[Any]] = []
    violation = None
    try:
        decoder.feed(data)
        decoded.extend(decoder)
    except wire.ProtocolViolation as exc:
        violation = exc
    assert all(message[0] in (0, 1, 2) for message in decoded)
    if violation is not None:
        assert violation.reason
        assert len(violation.received) <= 80


@settings(max_examples=200, deadline=None)
@given(values)
def test_any_value_that_is_not_a_message_is_refused(value: Any) -> None:
    good = isinstance(value, list) and value and value[0] in (0, 1, 2)
    if good:
        return
    decoder = wire.Decoder()
    decoder.feed(msgpack.packb(value))
    with pytest.raises(wire.ProtocolViolation):
        list(decoder)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([0, 1, "m"], "malformed"),
        ([0, -1, "m", []], "malformed"),
        ([0, 2**32, "m", []], "malformed"),
        ([0, 1, 5, []], "malformed"),
        ([0, 1, "m", {}], "malformed"),
        ([1, 1, "oops", None], "malformed"),
        ([1, 1, [1, "a"], None], "malformed"),
        ([1, 1, [True, "a", None], None], "malformed"),
        ([2, "m"], "malformed"),
        ([3, "m", []], "start with 0, 1 or 2"),
        ([True, 1, "m", []], "start with 0, 1 or 2"),
        ([], "non-empty array"),
        ({"a": 1}, "non-empty array"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(value: Any, reason: str) -> None:
    decoder = wire.Decoder()
    decoder.feed(msgpack.packb(value))
    with pytest.raises(wire.ProtocolViolation, match=reason):
        list(decoder)


def test_extension_types_are_refused() -> None:
    decoder = wire.Decoder()
    decoder.feed(msgpack.packb([2, "m", [msgpack.ExtType(5, b"x")]]))
    with pytest.raises(wire.ProtocolViolation, match="extension type 5"):
        list(decoder)


def test_a_message_over_the_size_limit_is_refused() -> None:
    decoder = wire.Decoder(Limits(max_message=1000))
    message = wire.request(1, "execute", [b"x" * 2000])
    with pytest.raises(wire.ProtocolViolation, match="larger than the limit of 1000 bytes"):
        decoder.feed(message)


def test_nesting_beyond_the_limit_is_refused() -> None:
    deep: Any = "bottom"
    for _ in range(10):
        deep = [deep]
    decoder = wire.Decoder(Limits(max_depth=8))
    decoder.feed(wire.request(1, "execute", [deep]))
    with pytest.raises(wire.ProtocolViolation, match="deeper than 8 levels"):
        list(decoder)
    shallow = wire.Decoder(Limits(max_depth=16))
    shallow.feed(wire.request(1, "execute", [deep]))
    assert next(iter(shallow))[3] == [deep]


def test_invalid_utf8_is_refused_and_quoted() -> None:
    decoder = wire.Decoder()
    decoder.feed(b"\x93\x02\xa2\xff\xfe\x90")  # [2, <str with bad UTF-8>, []]
    with pytest.raises(wire.ProtocolViolation) as exc:
        list(decoder)
    assert "\\xff\\xfe" in exc.value.received


BIG_PAYLOAD = bytes(range(256)) * 1200  # 300 KiB: past wire.BIG, so written without copies


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=12), st.sampled_from([1, wire.BIG]))
def test_large_payloads_decode_the_same_however_the_stream_is_cut(
    cuts: list[int], threshold: int
) -> None:
    parts = [
        *wire.request_parts(1, "execute", [b"small"]),
        *wire.request_parts(2, "execute", [BIG_PAYLOAD]),
        *wire.response_parts(3, None, BIG_PAYLOAD),
        *wire.response_parts(4, None, "after"),
        *wire.request_parts(5, "ex\u00e9cute", [bytearray(BIG_PAYLOAD)]),
    ]
    data = b"".join(bytes(p) for p in parts)
    decoded = _decode_all(data, cuts, None) if threshold == wire.BIG else None
    decoder = wire.Decoder(big=threshold)
    found: list[list[Any]] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        decoder.feed(memoryview(data)[start:cut])
        start = max(start, cut)
        found.extend(decoder)
    expected = [
        [0, 1, "execute", [b"small"]],
        [0, 2, "execute", [BIG_PAYLOAD]],
        [1, 3, None, BIG_PAYLOAD],
        [1, 4, None, "after"],
        [0, 5, "ex\u00e9cute", [BIG_PAYLOAD]],
    ]
    assert found == expected
    assert decoded in (None, expected)
    assert all(type(m[-1] if m[0] == 1 else m[3][0]) is not memoryview for m in found)


def test_a_large_payload_over_the_limit_is_refused_before_it_is_read() -> None:
    decoder = wire.Decoder(Limits(max_message=100_000))
    head = bytes(wire.request_parts(1, "execute", [BIG_PAYLOAD])[0])
    with pytest.raises(wire.ProtocolViolation, match="larger than the limit of 100000 bytes"):
        decoder.feed(head + BIG_PAYLOAD[:5000])


def test_a_large_payload_bypasses_msgpacks_buffer() -> None:
    """Fed as the host reads it, a large argument is gathered apart and joined once."""
    parts = wire.request_parts(7, "execute", [BIG_PAYLOAD])
    assert len(parts) == 2
    payload = parts[1]
    assert isinstance(payload, memoryview)
    assert payload.obj is BIG_PAYLOAD  # written without a copy
    decoder = wire.Decoder()
    data = b"".join(bytes(p) for p in parts)
    for start in range(0, len(data), 65536):
        decoder.feed(data[start : start + 65536])
    assert list(decoder) == [[0, 7, "execute", [BIG_PAYLOAD]]]
    assert decoder._fed == 0  # nothing of it went through the unpacker
