"""The frozen value types a first call builds: what ``@attrs.frozen`` gave them, without attrs."""

from __future__ import annotations

import copy
import pickle
import weakref
from pathlib import Path

import pytest
from packaging.version import Version

import plugyard
from plugyard import (
    Candidate,
    CandidateKind,
    Dependency,
    EntryPoint,
    MapResult,
    MetricsSnapshot,
    Plan,
    PluginInfo,
    PluginState,
    TrustPolicy,
)
from plugyard._value import FrozenError, Value, asdict, evolve


def _info(**changes: object) -> PluginInfo:
    return evolve(PluginInfo("csv", "exporters", Version("1.0")), **changes)


def _candidate(**changes: object) -> Candidate:
    ep = EntryPoint("csv", "exporters", "pkg.csv:Csv", "pkg", "1.0", "/site/pkg-1.0.dist-info")
    made = Candidate(
        "csv", "exporters", "1.0", "pkg", "pkg.csv:Csv", CandidateKind.ENTRY_POINT, _info()
    )
    return evolve(made, entry_point=ep, **changes)


def test_fields_compare_by_value_and_hash_alike() -> None:
    """Two values with equal fields are equal and hash the same; one field apart, they differ."""
    assert _info() == _info()
    assert hash(_info()) == hash(_info())
    assert _info() != _info(summary="Writes CSV.")
    assert {_info(), _info(), _info(origin="pkg:Csv")} == {_info(), _info(origin="pkg:Csv")}


def test_values_of_different_types_are_never_equal() -> None:
    """Equality asks for the same class: a tuple of the same fields is not equal."""
    assert MapResult("csv") != ("csv", None, None)
    assert MapResult("csv").__eq__(("csv", None, None)) is NotImplemented


def test_uncompared_fields_are_left_out_of_equality_and_repr() -> None:
    """A candidate's target, info and reason don't make it another candidate, nor show."""
    imported = _candidate(target=object, why="newest", info=_info(summary="other"))
    assert imported == _candidate()
    assert hash(imported) == hash(_candidate())
    assert "target" not in repr(imported)
    assert "entry_point" not in repr(imported)
    assert "info" not in repr(imported)
    assert _candidate(state=PluginState.ACTIVE) != _candidate()


def test_repr_names_the_fields() -> None:
    """A repr reads like the call that made the value (attrs' form)."""
    assert repr(MapResult("csv", 3)) == "MapResult(plugin='csv', value=3, error=None)"
    ep = _candidate().entry_point
    assert repr(ep).startswith("EntryPoint(name='csv', group='exporters', value='pkg.csv:Csv'")
    assert "dist=" not in repr(ep)


@pytest.mark.parametrize(
    "value",
    [_info(), _candidate(), MapResult("csv"), TrustPolicy(), Plan((), {}, {})],
    ids=lambda v: type(v).__name__,
)
def test_values_are_frozen(value: Value) -> None:
    """Assigning or deleting a field raises FrozenError, an AttributeError; nothing changes."""
    field = type(value)._fields[0]
    before = getattr(value, field)
    with pytest.raises(FrozenError, match=f"is frozen: cannot set '{field}'"):
        setattr(value, field, "changed")
    with pytest.raises(AttributeError, match="cannot delete"):
        delattr(value, field)
    with pytest.raises(AttributeError):
        value.extra = 1
    assert getattr(value, field) == before


def test_pickle_and_copies_keep_every_field() -> None:
    """Pickled, copied and deep-copied values equal the original, uncompared fields included."""
    imported = _candidate(target="pkg.csv:Csv", why="newest")
    pickled = pickle.loads(pickle.dumps(imported))  # noqa: S301 - our own bytes
    for again in (pickled, copy.copy(imported)):
        assert again == imported
        assert asdict(again) == asdict(imported)
    deep = copy.deepcopy(_info(depends_on=(Dependency("json"),)))
    assert deep == _info(depends_on=(Dependency("json"),))
    assert deep.depends_on[0].specifier is not None


def test_evolve_makes_a_checked_copy() -> None:
    """``evolve`` (``copy.replace`` on 3.13) runs ``__init__`` again, so it validates."""
    policy = TrustPolicy()
    assert evolve(policy, untrusted="sandbox").untrusted == "sandbox"
    assert policy.untrusted == "refuse"
    with pytest.raises(ValueError, match="trust mode 'nope' is not one of"):
        evolve(policy, mode="nope")
    with pytest.raises(TypeError, match="has no field 'colour'"):
        evolve(policy, colour="red")


def test_trust_policy_refuses_bad_values() -> None:
    """Each field is checked where the policy is made, with the field named."""
    with pytest.raises(ValueError, match=r"groups: trust mode 'strict'"):
        TrustPolicy(groups={"exporters": "strict"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"untrusted: 'run' is not one of \('refuse', 'sandbox'\)"):
        TrustPolicy(untrusted="run")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a keyring"):
        TrustPolicy(plugins={"csv": "warn"})
    assert TrustPolicy().groups == {}


def test_a_snapshot_s_versions_are_read_only_and_left_out_of_the_hash() -> None:
    """A snapshot copies the mapping it is given, refuses writes, and stays hashable."""
    counts = {"1.0": 3}
    snapshot = MetricsSnapshot("csv", "exporters", calls=3, versions=counts)
    counts["2.0"] = 1
    assert dict(snapshot.versions) == {"1.0": 3}
    with pytest.raises(TypeError):
        snapshot.versions["2.0"] = 1  # type: ignore[index]
    assert hash(snapshot) == hash(MetricsSnapshot("csv", "exporters", calls=3))
    assert snapshot != MetricsSnapshot("csv", "exporters", calls=3)


def test_match_args_follow_the_fields() -> None:
    """Values take positional patterns in field order, as attrs classes did."""
    match MapResult("csv", 3):
        case MapResult(name, value, None):
            assert (name, value) == ("csv", 3)
        case _:
            pytest.fail("MapResult did not match its positional pattern")


def test_a_derived_field_is_compared_shown_and_made_again_by_evolve(tmp_path: Path) -> None:
    """A trusted key's id is made from its key: compared, shown, remade, never passed in."""
    from plugyard.trust import TrustedKey, generate_key, key_id, load_private_key

    first = load_private_key(generate_key(tmp_path / "one")[0]).public_key()
    second = load_private_key(generate_key(tmp_path / "two")[0]).public_key()
    key = TrustedKey(first, "release")
    assert key.key_id == key_id(first)
    assert f"key_id={key_id(first)!r}" in repr(key)
    assert TrustedKey(first, "release") == key
    assert hash(TrustedKey(first, "release")) == hash(key)
    other = evolve(key, key=second)
    assert other.key_id == key_id(second)
    assert other != key
    assert asdict(key)["key_id"] == key.key_id
    with pytest.raises(TypeError, match="has no field 'key_id'"):
        evolve(key, key_id="forged")
    assert TrustedKey.__match_args__ == ("key", "name", "scope")


def test_values_can_be_weakly_referenced() -> None:
    """A weak reference to a value works (attrs' slotted classes allowed it too)."""
    info = _info()
    assert weakref.ref(info)() is info


def test_a_value_type_s_init_must_take_its_slots() -> None:
    """A value type whose ``__init__`` and ``__slots__`` disagree fails when it is defined."""
    with pytest.raises(TypeError, match="must define __init__"):

        class NoInit(Value):
            __slots__ = ("name",)

    with pytest.raises(TypeError, match=r"__init__ takes \('name',\), not its __slots__"):

        class Mismatch(Value):
            __slots__ = ("colour", "name")

            def __init__(self, name: str) -> None:
                object.__setattr__(self, "name", name)

    with pytest.raises(TypeError, match="needs a field that is hashed"):

        class Empty(Value):
            __slots__ = ()

            def __init__(self) -> None:
                pass


def test_the_value_types_print_as_plugyard_names() -> None:
    """Public value types still present themselves as ``plugyard.X``."""
    for cls in (Candidate, PluginInfo, EntryPoint, TrustPolicy, Plan, MapResult, MetricsSnapshot):
        assert cls.__module__ == "plugyard"
        assert getattr(plugyard, cls.__name__) is cls
