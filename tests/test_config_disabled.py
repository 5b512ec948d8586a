"""What the store builds on: ``encode`` refuses what a config cannot hold, naming where."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from plugyard._configstore import ConfigError
from plugyard._configtypes import decode, encode

# -- encode --------------------------------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


@pytest.mark.parametrize(
    ("config", "field", "reason"),
    [
        ({"n": 2**64}, "n", "outside what msgpack stores"),
        ({"n": -(2**63) - 1}, "n", "outside what msgpack stores"),
        ({"m": {1: "a"}}, "m", "keys must be strings, not int 1"),
        ({1: "a"}, None, "keys must be strings"),
        ({"o": BadRepr()}, "o", "cannot store BadRepr object (its repr() raised RuntimeError)"),
        ({"k": {BadRepr(): 1}}, "k", "not BadRepr object (its repr() raised RuntimeError)"),
        ({"s": {1, 2}}, "s", "cannot store set"),
        ({"deep": [{"x": BadRepr()}]}, "deep[0].x", "cannot store BadRepr"),
    ],
    ids=["2**64", "-2**63-1", "int-key", "top-level-int-key", "bad-repr", "bad-repr-key", "set",
         "nested"],
)  # fmt: skip
def test_encode_refuses_what_a_config_cannot_hold_naming_the_field(
    config: dict[Any, Any], field: str | None, reason: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        encode(config)
    assert exc.value.field == field
    assert reason in exc.value.reason
    assert exc.value.path is None


def test_encode_and_decode_round_trip() -> None:
    config = {"bytes": b"\x00\xff", "list": [1, None, True, 2.5, "x"], "map": {"k": {}}}
    assert decode(encode(config)) == config
    assert decode(encode(MappingProxyType({"t": (1, 2)}))) == {"t": [1, 2]}
