"""Hot reload: the new version built beside the old, switched in at once, or all of it undone.

A reload replaces a distribution's active plugins (the one asked for and
every active plugin of the same distribution) with another version, and
sets their active dependents up again beside theirs, because a dependent
holds its dependencies' instances. In order:

1. **Check** without touching anything: the new version has no extension
   module (nor the old: neither can be unloaded), provides every active
   plugin of the distribution, and is inside every dependent's range.
2. **Build** beside the old: install the new version; take the old
   distribution's modules out of ``sys.modules`` (kept); import the new
   one from its own directory through the trust gate; check its
   ``depends_on``; set each new instance up with the config the old one
   runs with, offer it the old instance (``migrate(previous)``), then set up
   new instances of the dependents with the new instances as dependencies.
   Calls go on reaching the old instances throughout.
3. **Switch** every affected handle to its new instance, then wait for the
   calls in flight on the old ones (bounded by ``drain_timeout``) and tear
   them down, dependents first.

Any failure before the old instances are torn down (an import error, a
``setup`` or ``migrate`` that raises, a range the new version breaks,
calls that do not finish) undoes everything: the new instances are torn
down, the old modules go back into ``sys.modules``, the import system
serves the old version again, and the handles point at the old instances.
A call sees one whole version, old or new, never an error of the reload.
:class:`PluginReloaded` or :class:`ReloadFailed` events say what happened.

The old modules are kept as they are, so the old instances run on their own
code until they are torn down; code that imports lazily, at call time,
during the reload gets the new version's modules.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import attrs

from . import _loader, _resolve
from ._candidate import Candidate, CandidateKind
from ._configure import carried_over
from ._events import PluginReloaded
from ._lifecycle import Invoker, Lifecycle, Slot, log
from ._model import FunctionPlugin, PluginContext, PluginInfo, PluginState, canonical
from ._policy import Gate
from ._registry import Registry
from ._sources import Installed
from ._table import Table
from ._value import evolve
from .exceptions import (
    ConfigError,
    DependencyVersionError,
    InvalidPluginError,
    PluginError,
    ReloadError,
    SignatureError,
    VersionNotFoundError,
)

if TYPE_CHECKING:
    from ._install import Installer
    from ._plugindirs import BadFile, DirectoryItem

#: The reason of a reload someone asked for.
REQUESTED = "requested"
#: The invoker of the sync API: a coroutine ``setup`` or ``migrate`` needs ``areload``.
RELOAD = Invoker(call="areload")


class _FailedError(Exception):
    """Where a reload failed, and why; becomes a :class:`ReloadError`."""

    def __init__(self, stage: str, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.cause = cause


@attrs.define
class _Swap:
    """One affected plugin: what runs now, and what replaces it."""

    slot: Slot
    old: Candidate
    old_instance: Any
    old_config: Any
    new: Candidate
    instance: Any = None
    config: Any = None
    built: bool = False
    #: After the switch: the list the old instance's calls in flight are counted in.
    old_calls: list[None] | None = None


def _reason_of(error: BaseException) -> str:
    return str(error) if isinstance(error, PluginError) else f"{type(error).__name__}: {error}"


class Reload:
    """One reload of one plugin, as a transaction; run it under the manager's lock.

    Args:
        table: The manager's plugins.
        registry: The manager's registry.
        gate: The trust gate.
        installer: Installs directory plugins, if the manager has plugin directories.
        drain_timeout: How long to wait for calls on the old instances.
        invoke: Calls the plugins' ``setup``, ``migrate`` and ``teardown``.
        reason: Why, for the events.
    """

    def __init__(
        self,
        table: Table,
        registry: Registry,
        gate: Gate,
        installer: Installer | None,
        drain_timeout: float,
        invoke: Invoker,
        reason: str = REQUESTED,
    ) -> None:
        self.table = table
        self.lifecycle: Lifecycle = table.lifecycle
        self.registry = registry
        self.gate = gate
        self.installer = installer
        self.drain_timeout = drain_timeout
        self.invoke = invoke
        self.reason = reason
        self.group = table.group
        self._swaps: list[_Swap] = []
        self._taken: dict[str, Any] | None = None
        self._modules: list[str] = []
        self._entries: dict[str, tuple[PluginInfo, object]] = {}

    # -- choosing the version --------------------------------------------------

    def target(self, slot: Slot, to: str | os.PathLike[str] | None) -> Candidate | None:
        """The candidate ``slot``'s plugin is to become; ``None`` when it already is it.

        Raises:
            VersionNotFoundError: no such version, or the file provides no such plugin.
            InvalidPluginError: ``to`` is neither a version nor a ``.whl`` or ``.py`` file.
            ReloadError: the file ``to`` cannot be read.
        """
        name = slot.name
        installed = self.table.reread() if to is None else self.table.installed()
        if to is None:
            if name not in installed.by_name:
                raise VersionNotFoundError(name, self.group, "any version", [])
            new = installed.candidate(name, self.table.ranges_on(name))
            return None if self._same(new, slot.candidate) else new
        text = os.fspath(to)
        if isinstance(to, os.PathLike) or text.endswith((".whl", ".py")):
            from ._plugindirs import BadFile

            item = self._item(text)
            if isinstance(item, BadFile):
                raise ReloadError(name, slot.candidate.version, None, "install", item.reason)
            ep = item.entry_point(self.group, name)
            if ep is None:
                raise VersionNotFoundError(name, self.group, text, [])
            new = installed.candidate_of(ep, text)
            return None if self._same(new, slot.candidate) else new
        from packaging.version import InvalidVersion, Version

        try:
            wanted = Version(text)
        except InvalidVersion:
            raise InvalidPluginError(
                text, "to= is a version, a wheel or a .py file, or None", plugin=name
            ) from None
        versions = installed.versions(name) if name in installed.by_name else []
        found = [c for c in versions if Version(c.version) == wanted]
        if not found:  # maybe it arrived since the directories were read
            installed = self.table.reread()
            versions = installed.versions(name) if name in installed.by_name else []
            found = [c for c in versions if Version(c.version) == wanted]
        if not found:
            raise VersionNotFoundError(name, self.group, text, [c.version for c in versions])
        return None if self._same(found[0], slot.candidate) else found[0]

    def _item(self, location: str) -> DirectoryItem | BadFile:
        """The plugin file at ``location``, read once per change when there are directories."""
        if self.installer is not None:
            return self.installer.directories.get(location)
        from ._plugindirs import read

        return read(location)

    def _same(self, new: Candidate, old: Candidate) -> bool:
        if (new.version, new.location, canonical(new.distribution)) != (
            old.version,
            old.location,
            canonical(old.distribution),
        ):
            return False
        if new.location is None or self.installer is None or old.entry_point is None:
            return True
        # The same file, changed without a new version: another installation.
        try:
            address = self.installer.address(self.installer.item(new))
        except PluginError:
            return False  # changed past reading: installing it says why
        return address == Path(old.entry_point.path).parent.parent.name

    # -- the transaction ---------------------------------------------------------

    def run(self, name: str, to: str | os.PathLike[str] | None) -> PluginReloaded | None:
        """Reload plugin ``name``; the event of its reload, or ``None`` if it is at ``to`` already.

        Raises:
            PluginNotFoundError: no such plugin.
            PluginNotActiveError: it is not active.
            VersionNotFoundError: ``to`` names no version of it.
            ReloadError: the reload failed; everything is as it was.
        """
        slot = self.table.require(name)
        if slot.state is not PluginState.ACTIVE:
            raise slot.refusal()
        old = slot.candidate
        if old.kind is not CandidateKind.ENTRY_POINT or old.entry_point is None:
            raise ReloadError(
                name,
                old.version,
                None,
                "refused",
                "it is registered in code; only the plugins of a distribution (installed "
                "or in a plugin directory) can be reloaded",
            )
        new = self.target(slot, to)
        if new is None:
            return None
        try:
            self._plan(slot, new)
            self._build()
            self._switch()
        except _FailedError as failure:
            self._fail(slot, new, failure)
        except BaseException:  # KeyboardInterrupt while building: undone, then raised
            self._undo()
            raise
        return self._done(slot, old)

    def _plan(self, slot: Slot, new: Candidate) -> None:
        old = slot.candidate
        if canonical(new.distribution) != canonical(old.distribution):
            raise _FailedError(
                "refused",
                f"{new.location or new.distribution} is of distribution {new.distribution!r}, "
                f"not {old.distribution!r}; a reload stays within one distribution",
            )
        installed = self.table.installed()
        siblings = [
            s
            for s in self.lifecycle.started.values()
            if s.candidate.kind is CandidateKind.ENTRY_POINT
            and canonical(s.candidate.distribution) == canonical(old.distribution)
            and (s.candidate.version, s.candidate.location) == (old.version, old.location)
        ]
        names = {s.name for s in siblings}
        dependents = set().union(*(self.lifecycle.dependents(n) for n in names)) - names
        for s in self.lifecycle.started.values():
            if s.name in names:
                counterpart = new if s is slot else self._counterpart(installed, new, s.name)
                if counterpart is None:
                    raise _FailedError(
                        "dependencies",
                        f"{new.version} does not provide {s.name!r}, which is active and of "
                        f"the same distribution",
                    )
                counterpart = evolve(counterpart, chosen=True, why=f"reloaded ({self.reason})")
                self._swaps.append(_Swap(s, s.candidate, s.instance, s.config, counterpart))
            elif s.name in dependents:
                self._swaps.append(_Swap(s, s.candidate, s.instance, s.config, s.candidate))
        self._check_extensions(old, new)
        from packaging.version import Version

        version = Version(new.version)
        for swap in self._swaps:
            for dep in swap.old.info.depends_on:
                if dep.name in names and not dep.accepts(version):
                    error = DependencyVersionError(
                        swap.slot.name, dep.name, str(dep.specifier), new.version
                    )
                    raise _FailedError("dependencies", str(error), error)

    def _counterpart(self, installed: Installed, new: Candidate, name: str) -> Candidate | None:
        """The candidate of plugin ``name`` in the version ``new`` is of."""
        if new.location is not None:
            from ._plugindirs import DirectoryItem

            item = self._item(new.location)
            ep = item.entry_point(self.group, name) if isinstance(item, DirectoryItem) else None
            return None if ep is None else installed.candidate_of(ep, new.location)
        for ep in installed.by_name.get(name, ()):
            candidate = installed.candidate_of(ep)
            if (
                candidate.location is None
                and canonical(ep.distribution) == canonical(new.distribution)
                and candidate.version == new.version
            ):
                return candidate
        return None

    def _check_extensions(self, old: Candidate, new: Candidate) -> None:
        from ._install import record_modules

        assert old.entry_point is not None  # noqa: S101 - checked by run()
        found = list(record_modules(old.entry_point.path)[1])
        if new.location is not None:
            from ._plugindirs import DirectoryItem

            item = self._item(new.location)
            found += item.extensions if isinstance(item, DirectoryItem) else []
        elif new.entry_point is not None:
            found += record_modules(new.entry_point.path)[1]
        if found:
            raise _FailedError(
                "refused",
                f"extension modules cannot be unloaded from a running process ({found[0]}); "
                "restart the process to change versions",
            )

    def _build(self) -> None:
        from ._install import evict, record_modules

        swaps = self._swaps
        roots = [s for s in swaps if s.new is not s.old]
        stage = "install"
        try:
            for swap in roots:
                if swap.new.location is not None:
                    if self.installer is None:
                        raise _FailedError("install", "the manager has no plugin directories")
                    swap.new = self.installer.installed(swap.new)
            stage = "import"
            old_ep, new_ep = roots[0].old.entry_point, roots[0].new.entry_point
            assert old_ep is not None  # noqa: S101 - an entry point's candidate
            assert new_ep is not None  # noqa: S101
            self._modules = sorted(
                {*record_modules(old_ep.path)[0], *record_modules(new_ep.path)[0]}
            )
            self._entries = {info.name: (info, target) for info, target in self.registry.entries()}
            self._taken = evict(self._modules)
            self._serve(roots[0].new)
            record = None
            metrics = self.lifecycle.metrics
            for swap in roots:
                if metrics is not None:
                    record = metrics.plugin(swap.slot.name).record_import
                swap.new = _loader.load(swap.new, self.registry, self.gate, record)
            stage = "dependencies"
            self._check_dependencies()
        except _FailedError:
            raise
        except PluginError as error:
            raise _FailedError(stage, str(error), error) from None
        instances = {s.slot.name: s for s in swaps}
        for swap in swaps:
            name = swap.slot.name
            try:
                stage = "config"
                swap.config = (
                    carried_over(swap.old_config, swap.new.target, name)
                    if swap.new is not swap.old
                    else swap.old_config
                )
                stage = "setup"
                deps = {}
                for dep in swap.new.info.depends_on:
                    if dep.name in instances:
                        deps[dep.name] = instances[dep.name].instance
                    else:
                        other = self.table.slots.get(dep.name)
                        if other is not None and other.state is PluginState.ACTIVE:
                            deps[dep.name] = other.instance
                swap.instance = self._setup(swap, deps)
                swap.built = True
                migrate = getattr(swap.instance, "migrate", None)
                if swap.new is not swap.old and migrate is not None:
                    stage = "migrate"
                    self.invoke.check(name, migrate, "migrate")
                    self._call(name, migrate, "migrate", swap.old_instance)
            except ConfigError as error:
                raise _FailedError(stage, str(error), error) from None
            except Exception as exc:
                why = _reason_of(exc)
                if stage != "config":
                    why = f"plugin {name!r} raised in {stage}(): {why}"
                raise _FailedError(stage, why, exc) from None

    def _serve(self, new: Candidate) -> None:
        """Make the import system find ``new``'s version of the distribution from now on."""
        from ._install import finder, route, unverify

        ep = new.entry_point
        assert ep is not None  # noqa: S101 - an entry point's candidate
        if new.location is not None:
            route(new)
        else:
            unverify(ep.distribution)
            finder().unroute(ep.distribution)

    def _check_dependencies(self) -> None:
        known: dict[str, PluginInfo] = {n: s.info for n, s in self.lifecycle.started.items()}
        known.update({s.slot.name: s.new.info for s in self._swaps})
        todo = {s.slot.name: s.new.info for s in self._swaps}
        plan = _resolve.plan(todo, known)
        if plan.failures:
            name = sorted(plan.failures)[0]
            error = plan.failures[name]
            raise _FailedError("dependencies", str(error), error)

    def _setup(self, swap: _Swap, deps: Mapping[str, Any]) -> Any:
        candidate = swap.new
        info, target, name = candidate.info, candidate.target, candidate.name
        if inspect.isclass(target):
            setup = getattr(target, "setup", None)
            if setup is not None:
                self.invoke.check(name, setup, "setup")
            instance = target()
        else:
            instance = FunctionPlugin(cast("Any", target))
        setup = getattr(instance, "setup", None)
        if setup is not None:
            started = time.perf_counter()
            context = PluginContext(info, MappingProxyType(deps), swap.config)
            self._call(name, setup, "setup", context)
            metrics = self.lifecycle.metrics
            if metrics is not None:
                metrics.plugin(name).record_setup(time.perf_counter() - started)
        return instance

    def _call(self, name: str, method: Any, what: str, *args: Any) -> None:
        self.lifecycle.holder = name
        try:
            self.invoke(name, method, what, *args)
        finally:
            self.lifecycle.holder = None

    def _switch(self) -> None:
        lifecycle = self.lifecycle
        for swap in self._swaps:
            swap.old_calls = lifecycle.replace(swap.slot, swap.new, swap.instance, swap.config)
        pending = [(s.slot.name, cast("list[None]", s.old_calls)) for s in self._swaps]
        try:
            lifecycle.wait(pending, self.drain_timeout)
        except BaseException as exc:
            # Back to the old instances, which still run; the new ones drain and go.
            fresh = []
            for swap in self._swaps:
                calls = lifecycle.replace(
                    swap.slot, swap.old, swap.old_instance, swap.old_config, swap.old_calls
                )
                fresh.append((swap.slot.name, calls))
            try:
                lifecycle.wait(fresh, self.drain_timeout)
            except PluginError:
                for swap in self._swaps:
                    swap.built = False  # still in use: left to the garbage collector
                log.warning("a reload was undone but its new instances are still busy")
            if isinstance(exc, PluginError):
                raise _FailedError("drain", str(exc), exc) from None
            raise

    def _undo(self) -> None:
        """Tear the new instances down and serve the old modules and version again."""
        from ._install import restore

        for swap in reversed(self._swaps):
            if swap.built:
                self.lifecycle.run_teardown(swap.slot.name, swap.instance, self.invoke)
        if self._taken is None:
            return
        restore(self._modules, self._taken)
        old = self._swaps[0].old
        self._serve(old)
        ep = old.entry_point
        assert ep is not None  # noqa: S101 - an entry point's candidate
        try:
            self.gate.admit(old.name, ep)
        except SignatureError as refused:  # pragma: no cover - it verified when it was loaded
            log.warning("after an undone reload: %s", refused)
        self._restore_registry()

    def _restore_registry(self) -> None:
        registry = self.registry
        for info, target in registry.entries():
            kept = self._entries.get(info.name)
            if kept is None:
                registry.unregister(info.name)
            elif kept[1] is not target:
                was = kept[0]
                registry.register(
                    kept[1],
                    name=was.name,
                    version=str(was.version),
                    depends_on=[str(d) for d in was.depends_on if not d.optional],
                    optional_depends_on=[str(d) for d in was.depends_on if d.optional],
                    replace=True,
                )

    def _fail(self, slot: Slot, new: Candidate, failure: _FailedError) -> None:
        self._undo()
        old = slot.candidate
        error = ReloadError(slot.name, old.version, new.version, failure.stage, failure.reason)
        cause = failure.cause if failure.cause is not None else error
        log.warning("%s", error)
        self.lifecycle.emit(
            "ReloadFailed",
            slot,
            new_version=new.version,
            stage=failure.stage,
            reason=failure.reason,
            error=cause,
        )
        raise error from failure.cause

    def _done(self, slot: Slot, old: Candidate) -> PluginReloaded:
        lifecycle = self.lifecycle
        for swap in reversed(self._swaps):
            raised = lifecycle.run_teardown(swap.slot.name, swap.old_instance, self.invoke)
            if raised is not None:  # pragma: no cover - a teardown's KeyboardInterrupt
                log.warning("teardown of %r interrupted after a reload", swap.slot.name)
        self._follow_siblings(old)
        roots = {s.slot.name for s in self._swaps if s.new is not s.old}
        for swap in self._swaps:
            why = (
                self.reason
                if swap.slot.name in roots
                else f"its dependency {slot.name!r} was reloaded"
            )
            lifecycle.emit("PluginReloaded", swap.slot, old_version=swap.old.version, reason=why)
        return PluginReloaded(
            slot.name,
            self.group,
            slot.candidate.version,
            old_version=old.version,
            reason=self.reason,
        )

    def _follow_siblings(self, old: Candidate) -> None:
        """Point the slots of the distribution's plugins that are not active at the new version."""
        new = self._swaps[0].new
        installed = self.table.installed()
        for other in self.table.snapshot().values():
            c = other.candidate
            if other.state is PluginState.ACTIVE or c.kind is not CandidateKind.ENTRY_POINT:
                continue
            if canonical(c.distribution) != canonical(old.distribution):
                continue
            if (c.version, c.location) != (old.version, old.location):
                continue
            counterpart = self._counterpart(installed, new, other.name)
            if counterpart is not None:
                other.candidate = counterpart
                other.attempted = False
