"""The plugins a manager knows: one slot per name, found from the sources on demand.

The table is the merged index of the registry, the installed entry points
and the module entry points of one group. Listing reads it without changing
it or importing anything; :meth:`Table.find` makes the slot of one plugin
when a lifecycle operation first needs it, and :meth:`Table.closure`
imports what a set of plugins needs through the loader. Changes are made
under the manager's lifecycle lock; the slot and handle mappings are
changed in place under a short lock of their own, which readers take to copy
them, so reading never waits for a plugin's setup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _admission, _loader, _log
from ._candidate import Candidate, CandidateKind
from ._discovery import EntryPoint
from ._handles import PluginHandle
from ._lifecycle import Lifecycle, Slot
from ._metrics import GroupMetrics
from ._model import PluginInfo, PluginState, canonical
from ._policy import Gate
from ._registry import Registry
from ._sources import Installed, module_candidate, registered
from ._value import evolve
from ._versions import Range
from .exceptions import PluginError, PluginNotFoundError, SignatureError

if TYPE_CHECKING:
    from .runtime._host import Host

#: The class attribute of a sandboxed plugin's proxy class (``runtime._host.MARK``).
_SANDBOX_MARK = "__plugyard_sandbox__"

if TYPE_CHECKING:
    from ._plugindirs import Directories

log = _log.Logger("plugyard")


class Table:
    """The slots of one manager's plugins, and the sources they come from.

    Args:
        registry: The registry of the group.
        lifecycle: Makes the slots and reports their changes.
        gate: The trust gate the loader asks before any import.
        metrics: The group's metrics, or ``None``.
        entry_points: Whether installed entry points are read.
        path: Where installed distributions are looked for.
        sandbox: What the sandbox host is made with (``isolation``,
            ``policy``, ``untrusted``); it is made when first needed.
        directories: The plugin directories, if any.
        pins: Version ranges by plugin name (``versions=``).
        prepare: Installs a plugin directory's candidate before it is imported.
    """

    def __init__(
        self,
        registry: Registry,
        lifecycle: Lifecycle,
        gate: Gate,
        metrics: GroupMetrics | None,
        *,
        entry_points: bool,
        path: Sequence[str] | None,
        sandbox: Mapping[str, Any] | None = None,
        directories: Directories | None = None,
        pins: Mapping[str, str] | None = None,
        prepare: Callable[[Candidate], Candidate] | None = None,
    ) -> None:
        self.registry = registry
        self.group = registry.group
        self.lifecycle = lifecycle
        self.gate = gate
        self.metrics = metrics
        self._use_entry_points = entry_points
        self._path = None if path is None else list(path)
        self.directories = directories
        self._pins = dict(pins or {})
        self._prepare = prepare
        self._data = threading.Lock()
        #: Slots and handles by name; a call reads ``handles`` with no lock at all.
        self.slots: dict[str, Slot] = {}
        self.handles: dict[str, PluginHandle] = {}
        #: Handles of slots a rescan dropped, given back if the name returns.
        self.spare: dict[str, PluginHandle] = {}
        self._installed: Installed | None = None
        # Module entry points not imported yet; read with the installed ones.
        self._pending: list[EntryPoint] | None = None
        self._seen_generation = -1
        self._sandbox = dict(sandbox or {})
        self._host: Host | None = None
        self.trust_verifies = gate.policy.verifies

    @property
    def path(self) -> Sequence[str] | None:
        """Where installed distributions are looked for (``None``: ``sys.path``)."""
        return self._path

    def snapshot(self) -> dict[str, Slot]:
        with self._data:
            return dict(self.slots)

    def installed(self) -> Installed:
        installed = self._installed
        if installed is None:
            dirs = self.directories
            installed = Installed(
                self.group,
                self._path,
                enabled=self._use_entry_points,
                directories=dirs.entry_points(self.group) if dirs is not None else (),
                pins=self._pins,
            )
            self._installed = installed
        return installed

    def reread(self) -> Installed:
        """Read the plugin directories and the installed entry points again; slots stay."""
        if self.directories is not None:
            self.directories.scan()
        self._installed = None
        return self.installed()

    def providers(self) -> list[EntryPoint]:
        if self._pending is None:
            self._pending = self.installed().pending_modules()
        return self._pending

    def listing(self, *, modules: bool, only: str | None = None) -> list[Candidate]:
        """Candidates with their states now, from the slots and the sources; sorted."""
        slots = self.snapshot() if only is None else {}
        if only is not None and only in self.slots:
            slots = {only: self.slots[only]}
        installed = self.installed()
        listed = {
            (name, slot.candidate.kind): evolve(slot.candidate, state=slot.state)
            for name, slot in slots.items()
        }
        others: list[Candidate] = []
        names = installed.by_name if only is None else [only] if only in installed.by_name else []
        for name in names:
            several = len(installed.by_name[name]) > 1
            slot = slots.get(name)
            if slot is not None and (slot.candidate.imported or not several):
                if several:
                    versions = installed.versions(name, self.ranges_on(name))
                    others.extend(_beside(slot, versions))
                continue
            # Not imported yet: the version it would load now, and the others.
            if slot is not None:
                state = slot.state
            elif installed.error(name) is not None:
                state = PluginState.FAILED
            else:
                state = PluginState.DISCOVERED
            found = installed.versions(name, self.ranges_on(name)) if several else []
            chosen = next((c for c in found if c.chosen), None)
            if chosen is None:  # the usual case: one version, made with its state
                listed[name, CandidateKind.ENTRY_POINT] = installed.candidate(name, state=state)
            else:
                listed[name, CandidateKind.ENTRY_POINT] = evolve(chosen, state=state)
            others.extend(c for c in found if c is not chosen)
        for info, target in self.registry.entries() if only is None else self._entry(only):
            if info.name not in slots and info.name not in installed.by_name:
                listed[info.name, CandidateKind.REGISTERED] = self._registered(info, target)[0]
        if modules:
            pending = self._pending if self._pending is not None else installed.pending_modules()
            for ep in pending:
                if ep.name not in slots:
                    listed[ep.name, CandidateKind.MODULE] = module_candidate(ep)
        if not others:
            return [listed[key] for key in sorted(listed)]
        # Each name's chosen version first, the others after it, newest first.
        found = [*listed.values(), *others]
        return sorted(found, key=lambda c: (c.name, c.kind, not c.chosen))

    def states(self) -> dict[str, PluginState]:
        """Every plugin's state, by name (sorted), as :meth:`listing` has them, built lighter."""
        slots = self.snapshot()
        installed = self.installed()
        found = {name: slot.state for name, slot in slots.items()}
        for name in installed.by_name:
            if name not in found:
                failed = installed.error(name) is not None
                found[name] = PluginState.FAILED if failed else PluginState.DISCOVERED
        for info, _ in self.registry.entries():
            found.setdefault(info.name, PluginState.DISCOVERED)
        return {name: found[name] for name in sorted(found)}

    def _entry(self, name: str) -> list[tuple[PluginInfo, object]]:
        if name in self.registry:
            return [(self.registry.info(name), self.registry.target(name))]
        return []

    def _registered(self, info: PluginInfo, target: object) -> tuple[Candidate, PluginError | None]:
        """A registered plugin's candidate, credited to the module entry point that made it.

        Returns:
            The candidate, and the error that fails it if it cannot be credited
            (its target is then ``None``: it never starts).
        """
        candidate = registered(info, target)
        if self._sandbox.get("isolation") is not None or hasattr(target, _SANDBOX_MARK):
            candidate = self.host().adapt(candidate)
        try:
            # Under a policy that verifies, whose code registered it decides.
            credit = self.gate.credit(info, self.registry.registrant(info.name))
            if credit is not None:
                return _loader.credit(candidate, *credit), None
            if self.trust_verifies:
                return candidate, None
            installed = self.installed()
            provider = installed.provider_of(info) if installed.modules else None
            if provider is None:
                return candidate, None
            return _loader.bind_registered(candidate, provider), None
        except PluginError as error:
            return evolve(candidate, target=None), error

    def add_slot(self, candidate: Candidate) -> Slot:
        name = candidate.name
        handle = self.spare.pop(name, None) or PluginHandle(name, self.group)
        slot = self.lifecycle.new_slot(candidate, handle)
        with self._data:
            self.slots[name] = slot
            self.handles[name] = handle
        self.lifecycle.emit("PluginDiscovered", slot)
        return slot

    def sync_registry(self) -> None:
        """Give every registered plugin a slot, and take re-registered ones."""
        generation = self.registry.generation
        if generation == self._seen_generation:
            return
        installed = self.installed()
        for info, target in self.registry.entries():
            slot = self.slots.get(info.name)
            if slot is None and info.name in installed.by_name:
                # An installed plugin's own slot; the code registering the
                # same name is reconciled (or a conflict) when it is imported.
                self.find(info.name)
                continue
            if slot is not None and (
                slot.candidate.kind is CandidateKind.ENTRY_POINT
                or slot.state is PluginState.ACTIVE
                or slot.candidate.target is target
            ):
                continue  # an installed plugin is reconciled when it is imported
            candidate, error = self._registered(info, target)
            if slot is None:
                slot = self.add_slot(candidate)
            elif isinstance(error, SignatureError) and slot.candidate.target is not None:
                # Unverified code cannot replace what it may not register.
                log.warning("ignoring the re-registration of %r: %s", info.name, error)
                continue
            else:
                slot.candidate = candidate  # re-registered: the new one is used
            slot.attempted = True
            if error is not None:
                self.lifecycle.transition(slot, PluginState.FAILED, error)
        self._seen_generation = generation

    def find(self, name: str) -> Slot | None:
        """The slot of ``name``, made now if it is an installed or registered plugin.

        Only that plugin's slot is made: a first call among many installed
        plugins does not pay for the others.
        """
        slot = self.slots.get(name)
        if slot is not None:
            return slot
        installed = self.installed()
        if name in installed.by_name:
            slot = self.add_slot(installed.candidate(name))
            error = installed.error(name)
            if error is not None:
                slot.attempted = True
                self.lifecycle.transition(slot, PluginState.FAILED, error)
            return slot
        self.sync_registry()
        slot = self.slots.get(name)
        if slot is None and self.providers():
            self.import_providers()
            slot = self.slots.get(name)
        return slot

    def find_all(self) -> None:
        self.sync_registry()
        if self.providers():
            self.import_providers()
        for name in self.installed().by_name:
            self.find(name)

    def require(self, name: str) -> Slot:
        slot = self.find(name)
        if slot is None:
            raise PluginNotFoundError(name, self.group)
        return slot

    def import_providers(self) -> None:
        """Import the module entry points, whose import registers plugins."""
        pending, self._pending = self.providers(), []
        for ep in pending:
            try:
                _loader.import_module(ep, self.gate)
            except PluginError as error:  # noqa: PERF203 - each module entry point fails alone
                if ep.name in self.slots:
                    continue
                slot = self.add_slot(module_candidate(ep))
                slot.attempted = True
                self.lifecycle.transition(slot, PluginState.FAILED, error)
        self.sync_registry()

    def materialize(self, slot: Slot) -> bool:
        """Import an entry point's object and learn its dependencies; False if it failed."""
        if slot.candidate.imported:
            return True
        if slot.attempted:
            return False
        slot.attempted = True
        record = None if self.metrics is None else self.metrics.plugin(slot.name).record_import
        try:
            candidate = slot.candidate
            if candidate.location is not None and self._prepare is not None:
                candidate = self._prepare(candidate)
            if self._isolated(candidate):
                slot.candidate = self._load_isolated(candidate)
            else:
                slot.candidate = _loader.load(candidate, self.registry, self.gate, record)
        except SignatureError as error:
            if not self._sandbox.get("untrusted"):
                self.lifecycle.transition(slot, PluginState.FAILED, error)
                return False
            return self._sandboxed(slot)
        except PluginError as error:
            self.lifecycle.transition(slot, PluginState.FAILED, error)
            return False
        return True

    # -- the sandbox: made on first use, so that a manager without one imports none of it --

    def host(self) -> Host:
        """The sandbox host of this manager, made on first use."""
        if self._host is None:
            from .runtime import _host

            self._host = _host.Host(self.group, self.lifecycle.events, **self._sandbox)
        return self._host

    def _isolated(self, candidate: Candidate) -> bool:
        ep = candidate.entry_point
        marked = ep is not None and "[" in ep.value
        if self._sandbox.get("isolation") is None and not marked:
            return False
        return self.host().isolated(candidate)

    def _load_isolated(self, candidate: Candidate) -> Candidate:
        """Start an isolated entry point's process to learn its declaration; the gate first."""
        ep = candidate.entry_point
        assert ep is not None  # noqa: S101 - only entry points are materialized
        _admission.admitted(self.gate, candidate.name, ep)
        return self.host().load(candidate)

    def _sandboxed(self, slot: Slot) -> bool:
        """Run a plugin the trust policy refused in the sandbox (``untrusted="sandbox"``)."""
        try:
            slot.candidate = self.host().load(slot.candidate)
        except PluginError as error:
            self.lifecycle.transition(slot, PluginState.FAILED, error)
            return False
        return True

    def close_sandbox(self) -> None:
        """Stop every sandbox process this manager started (after its teardowns)."""
        if self._host is not None:
            self._host.close()

    def closure(self, names: list[str]) -> set[str]:
        """``names`` and every dependency they reach that is not active, imported.

        A plugin present in several versions is imported last, once the
        ranges of the plugins depending on it are known, so that they can
        steer which version is chosen.
        """
        seen: set[str] = set()
        stack = list(names)
        several: list[Slot] = []
        while stack or several:
            if not stack:
                last = several.pop()
                last.candidate = self.installed().candidate(last.name, self.ranges_on(last.name))
                if self.materialize(last):
                    stack.extend(dep.name for dep in last.info.depends_on)
                continue
            name = stack.pop()
            if name in seen:
                continue
            found = self.find(name)
            if found is None or found.state is PluginState.ACTIVE:
                continue
            slot = found
            seen.add(name)
            if slot.candidate.kind is CandidateKind.MODULE:
                continue
            if not slot.candidate.imported and not slot.attempted and self._several(name):
                several.append(slot)
            elif self.materialize(slot):
                stack.extend(dep.name for dep in slot.info.depends_on)
        return seen

    def _several(self, name: str) -> bool:
        installed = self.installed()
        return len(installed.by_name.get(name, ())) > 1

    def ranges_on(self, name: str) -> list[Range]:
        """The ranges the imported plugins (active or about to start) put on ``name``.

        An active plugin of the same distribution puts its own version: one
        distribution runs in one version at a time.
        """
        slots = self.snapshot()
        ranges = [
            (other, str(dep.specifier))
            for other, slot in slots.items()
            if slot.candidate.imported and slot.state is not PluginState.FAILED
            for dep in slot.info.depends_on
            if dep.name == name and str(dep.specifier)
        ]
        dists = {canonical(ep.distribution) for ep in self.installed().by_name.get(name, ())}
        ranges.extend(
            (f"{other}, of the same distribution", f"=={slot.candidate.version}")
            for other, slot in slots.items()
            if other != name
            and slot.state is PluginState.ACTIVE
            and slot.candidate.kind is CandidateKind.ENTRY_POINT
            and canonical(slot.candidate.distribution) in dists
        )
        return ranges

    def errors(self) -> dict[str, BaseException]:
        """The error of every failed plugin, including installed ones without a slot."""
        slots = self.snapshot()
        found: dict[str, BaseException] = {
            name: slot.error
            for name, slot in slots.items()
            if slot.state is PluginState.FAILED and slot.error is not None
        }
        installed = self.installed()
        for name in installed.by_name:
            error = installed.error(name) if name not in slots else None
            if error is not None:
                found[name] = error
        return {name: found[name] for name in sorted(found)}

    def drop_idle(self) -> None:
        """Forget the installed plugins that are not active, and read the sources again.

        A dropped plugin that is still installed gets a new slot with the same
        handle; the handle of one that is gone raises :class:`PluginNotFoundError`.
        """
        idle = (PluginState.DISCOVERED, PluginState.FAILED, PluginState.UNLOADED)
        dropped = [
            slot
            for slot in self.slots.values()
            if slot.candidate.kind is not CandidateKind.REGISTERED and slot.state in idle
        ]
        with self._data:
            for slot in dropped:
                del self.slots[slot.name]
                del self.handles[slot.name]
        for slot in dropped:
            slot.handle._attach(None)
            self.spare[slot.name] = slot.handle
        if self.directories is not None:
            self.directories.scan()
        self._installed = self._pending = None
        installed = self.installed()
        for slot in dropped:
            if slot.name in installed.by_name:
                self.find(slot.name)

    def known(self) -> Known:
        """What the resolver may look up: the info of every plugin with a slot."""
        return Known(self.slots)


def _beside(slot: Slot, versions: list[Candidate]) -> list[Candidate]:
    """The versions of ``slot``'s plugin other than the one in the slot, marked as not chosen."""
    mine = slot.candidate
    found = []
    for candidate in versions:
        if candidate.version == mine.version and candidate.location == mine.location:
            continue
        why = candidate.why
        if candidate.chosen:
            why = f"newest allowed, but {mine.version} is {slot.state.value}; reload() to switch"
        found.append(evolve(candidate, chosen=False, why=why))
    return found


class Known(Mapping[str, PluginInfo]):
    """The info of every plugin with a slot, read where it stands (module entry points left out)."""

    def __init__(self, slots: Mapping[str, Slot]) -> None:
        self._slots = slots

    def __getitem__(self, name: str) -> PluginInfo:
        slot = self._slots[name]
        if slot.candidate.kind is CandidateKind.MODULE:
            raise KeyError(name)
        return slot.info

    def __iter__(self) -> Iterator[str]:
        return (n for n, s in self._slots.items() if s.candidate.kind is not CandidateKind.MODULE)

    def __len__(self) -> int:
        return sum(1 for _ in self)
