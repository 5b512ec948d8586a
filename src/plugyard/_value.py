"""The base of the frozen value types a first call builds, made without attrs.

``import attrs`` costs about 16 ms on top of what a first call imports anyway
(it brings ``inspect``, ``ast``, ``dis``, ``tokenize`` and ``platform``), and
making each attrs class about 0.4 ms more: together some 40% of a first call
of one installed plugin. So the value types on that path (entry points,
candidates, plugin infos, trust policies, plans, metrics snapshots, map
results, and the keys, manifests and results of verifying before an import)
derive from :class:`Value` instead. Off that path (events, typed
configuration, signing, the sandbox) attrs stays the tool.

A subclass names its fields in ``__slots__`` and writes its own ``__init__``
(so its signature is plain to readers and type checkers), whose parameters
are the fields in order, setting each once with ``object.__setattr__``; a
field ``__init__`` computes from the others is named in ``_derived``.

It gets what ``@attrs.frozen`` gives: equality and hash over its fields
(less those in ``_uncompared``; those in ``_unhashed`` take part in
equality only), a ``repr`` (less those in ``_unshown``), assignment refused
with :class:`FrozenError`, ``__match_args__``, pickling and copying, and
``copy.replace()`` (``__replace__``, which :func:`evolve` calls on every
Python).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, ClassVar, TypeVar

V = TypeVar("V", bound="Value")


class FrozenError(AttributeError):
    """An attribute of a frozen value was assigned or deleted."""


def _rebuild(cls: type[V], state: dict[str, Any]) -> V:
    value = cls.__new__(cls)
    for name, field in state.items():
        object.__setattr__(value, name, field)
    return value


class Value:
    """A frozen value with slots: equality, hash and ``repr`` over its fields."""

    __slots__ = ("__weakref__",)

    _fields: ClassVar[tuple[str, ...]] = ()
    #: Fields left out of equality and the hash.
    _uncompared: ClassVar[frozenset[str]] = frozenset()
    #: Fields left out of the hash only (e.g. a mapping).
    _unhashed: ClassVar[frozenset[str]] = frozenset()
    #: Fields left out of ``repr``.
    _unshown: ClassVar[frozenset[str]] = frozenset()
    #: Fields ``__init__`` computes from the others: compared and shown, never passed to it.
    _derived: ClassVar[tuple[str, ...]] = ()
    _init_fields: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[attrgetter[Any]]
    _hashed: ClassVar[attrgetter[Any]]
    _values: ClassVar[attrgetter[Any]]
    _init_values: ClassVar[attrgetter[Any]]
    _field_set: ClassVar[frozenset[str]]
    _shown: ClassVar[tuple[str, ...]] = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        # The fields, in order, are __init__'s parameters, then the derived
        # ones; each must be a slot.
        init = cls.__dict__.get("__init__")
        if init is None:
            raise TypeError(f"{cls.__qualname__} must define __init__, taking its fields")
        code = init.__code__
        cls._init_fields = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]
        cls._fields = cls._init_fields + cls._derived
        slots = cls.__dict__.get("__slots__", ())
        if set(cls._fields) != ({slots} if isinstance(slots, str) else set(slots)):
            raise TypeError(
                f"{cls.__qualname__}.__init__ takes {cls._fields}, not its __slots__ {slots}"
            )
        compared = [f for f in cls._fields if f not in cls._uncompared]
        hashed = [f for f in compared if f not in cls._unhashed]
        if not hashed:
            raise TypeError(f"{cls.__qualname__} needs a field that is hashed")
        # One C call gets all the fields (a tuple of them; the field itself when one).
        cls._compared = attrgetter(*compared)
        cls._hashed = attrgetter(*hashed)
        cls._field_set = frozenset(cls._init_fields)
        # Always a tuple, even of one field; zip() with the names drops the class.
        cls._values = attrgetter(*cls._fields, "__class__")
        cls._init_values = attrgetter(*cls._init_fields, "__class__")
        cls._shown = tuple(f for f in cls._fields if f not in cls._unshown)
        cls.__match_args__ = cls._init_fields  # type: ignore[misc]

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenError(f"{type(self).__qualname__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__qualname__} is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(self._compared(self) == self._compared(other))

    def __hash__(self) -> int:
        return hash((self.__class__, self._hashed(self)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._shown)
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.__class__, dict(zip(self._fields, self._values(self), strict=False)))

    def __replace__(self: V, **changes: Any) -> V:
        """A copy with ``changes`` applied, made by ``__init__`` (so checked again)."""
        if not self._field_set.issuperset(changes):
            unknown = min(changes.keys() - self._field_set)
            raise TypeError(f"{type(self).__qualname__} has no field {unknown!r}")
        fields = dict(zip(self._init_fields, self._init_values(self), strict=False))
        fields.update(changes)
        return self.__class__(**fields)


def evolve(value: V, **changes: Any) -> V:
    """A copy of ``value`` with ``changes`` applied: ``copy.replace`` on any Python."""
    return value.__replace__(**changes)


def asdict(value: Value) -> dict[str, Any]:
    """The fields of ``value`` by name, in order (not recursive)."""
    return dict(zip(value._fields, value._values(value), strict=False))
