"""How a candidate comes to run in a sandbox, and the instance a slot then holds.

An isolated plugin is a candidate like any other. Where the lifecycle would
instantiate the plugin's class, it instantiates a :class:`SandboxedPlugin`
instead: a proxy whose ``setup`` starts the plugin's process (through a
:class:`Supervisor`), and whose ``execute``, ``configure`` and ``teardown``
are calls to it. So the handle, the drain before teardown, the metrics and
the events work unchanged.

:class:`Host` is one manager's side of it: which candidates run isolated
(``isolation="process"`` for the group, per plugin, an entry point marked
``[sandbox]``, or an unsigned plugin under ``TrustPolicy(untrusted="sandbox")``),
turning them into proxies, and stopping every process the manager started.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs

from .._bus import EventBus
from .._candidate import Candidate, CandidateKind
from .._configtypes import plain
from .._handles import MISSING
from .._model import PluginContext, PluginInfo, parse_depends_on
from .._value import evolve
from ..exceptions import PluginError
from ._isolation import Sandbox, python_path
from ._supervisor import Supervisor

#: The class attribute that marks a class as an isolated plugin.
MARK = "__plugyard_sandbox__"
#: The entry-point extra that asks for isolation: ``name = pkg.mod:Plugin [sandbox]``.
EXTRA = "sandbox"

PROCESS = "process"
IN_PROCESS = "inprocess"


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class Command:
    """How an isolated plugin's process is started.

    Attributes:
        argv: The command.
        env: Variables added to its scrubbed environment.
        readable: Directories its code is in (kept visible under bubblewrap).
    """

    argv: tuple[str, ...] = attrs.field(converter=_strings)
    env: Mapping[str, str] = attrs.field(factory=dict)
    readable: tuple[str, ...] = attrs.field(default=(), converter=_strings)


def worker_command(
    target: str, name: str, group: str, version: str | None = None, threads: int = 1
) -> Command:
    """The command that serves Python object ``target`` (``module:qualname``) in a worker."""
    argv = [sys.executable, "-m", "plugyard.worker", target, "--name", name, "--group", group]
    if threads != 1:
        argv += ["--threads", str(threads)]
    if version is not None:
        argv += ["--version", version]
    path = python_path()
    # Under bubblewrap /tmp is a fresh tmpfs: code there is bound in read-only,
    # and so is the interpreter's environment (a venv made under /tmp).
    places = [*path.split(os.pathsep), sys.prefix, str(Path(sys.executable).parent)]
    readable = sorted({p for p in places if p.startswith("/tmp/")})  # noqa: S108
    return Command(argv, {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}, readable)


class SandboxedPlugin:
    """The instance a slot holds for an isolated plugin: each method is a call to its process.

    ``setup`` starts the process and sends the plugin's config; ``execute``
    and ``configure`` are calls; ``teardown`` calls the plugin's own, then
    stops the process. If the plugin's ``execute`` is a coroutine, the
    proxy's is too, so that the async API awaits the call without blocking
    its loop.
    """

    __plugyard_sandbox__: ClassVar[Command]
    #: The manager's host, set on the classes a :class:`Host` binds.
    host: ClassVar[Host | None] = None
    #: A supervisor started to learn the plugin's declaration, adopted by the first instance.
    warm: ClassVar[Supervisor | None] = None

    def __init__(self) -> None:
        self.supervisor: Supervisor | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.supervisor!r}>"

    def setup(self, ctx: PluginContext) -> None:
        """Start the plugin's process, then run its ``setup`` there with the config."""
        cls = type(self)
        host = cls.host or Host(ctx.info.group)
        supervisor, cls.warm = cls.warm, None
        if supervisor is None or not supervisor.serving:
            if supervisor is not None:
                supervisor.stop()
            supervisor = host.supervisor(ctx.info, cls.__plugyard_sandbox__)
            self.supervisor = supervisor
            supervisor.start()
        self.supervisor = supervisor
        hello = supervisor.hello
        assert hello is not None  # noqa: S101 - started
        declared = {d.name for d in ctx.info.depends_on}
        said = {d.name for d in parse_depends_on(list(hello.depends_on), plugin=ctx.info.name)}
        if not said <= declared:
            supervisor.stop()
            raise PluginError(
                f"plugin {ctx.info.name!r} says in $/hello that it depends on "
                f"{sorted(said - declared)}, which its declaration does not list; declare "
                "them where it is registered, so that they are set up first",
                plugin=ctx.info.name,
            )
        if "setup" in hello.methods:
            params = [
                {
                    "name": ctx.info.name,
                    "group": ctx.info.group,
                    "version": str(ctx.info.version),
                    "config": plain(ctx.config),
                    "dependencies": sorted(d for d in declared if ctx.has_dependency(d)),
                }
            ]
            try:
                supervisor.call("setup", params)
            except BaseException:
                supervisor.stop()
                raise
            supervisor.remember("setup", params)
        if "execute" in hello.async_methods:
            self.execute = self._execute_async  # type: ignore[method-assign]

    def _live(self) -> Supervisor:
        supervisor = self.supervisor
        if supervisor is None:
            raise PluginError("the plugin's process is not started: set it up first")
        return supervisor

    def execute(self, data: Any = MISSING, /) -> Any:
        """Call the plugin's ``execute`` in its process."""
        return self._live().call("execute", [] if data is MISSING else [data])

    async def _execute_async(self, data: Any = MISSING, /) -> Any:
        return await self._live().acall("execute", [] if data is MISSING else [data])

    def configure(self, config: Mapping[str, Any]) -> None:
        """Call the plugin's ``configure`` in its process (nothing if it has none)."""
        supervisor = self._live()
        hello = supervisor.hello
        if hello is not None and "configure" in hello.methods:
            params = [plain(config)]
            supervisor.call("configure", params)
            supervisor.remember("configure", params)

    def teardown(self) -> None:
        """Call the plugin's ``teardown``, then stop its process and process group."""
        supervisor = self.supervisor
        if supervisor is None:
            return
        try:
            hello = supervisor.hello
            if supervisor.serving and hello is not None and "teardown" in hello.methods:
                supervisor.call("teardown", [])
        finally:
            supervisor.stop()
            if supervisor.host_owned is not None:
                supervisor.host_owned.discard(supervisor)


def external(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    readable: Sequence[str] = (),
    name: str = "external",
) -> type[SandboxedPlugin]:
    """A plugin class that runs ``argv``, a process speaking plugyard's protocol in any language.

    Register the class like any other; the registration names the plugin,
    its version and its dependencies::

        registry.register(external(["node", "index.js"]), name="wordfreq", version="1.0")

    Args:
        argv: The command; it finds the pipes on fds 3 and 4.
        env: Variables added to its scrubbed environment.
        readable: Directories its code is in.
        name: The class's name (the plugin's name comes from ``register``).
    """
    command = Command(tuple(argv), dict(env or {}), tuple(readable))
    return type(name, (SandboxedPlugin,), {MARK: command, "__doc__": f"Runs {argv[0]!r}."})


class Host:
    """One manager's sandbox: which plugins are isolated, and every process it started.

    Args:
        group: The manager's group.
        events: Where :class:`PluginCrashed` is published.
        policy: The sandbox policy.
        isolation: ``"process"`` to isolate every plugin of the group, or
            isolation by plugin name (``{"name": "process"}``).
        untrusted: Run the plugins the trust policy refuses in the sandbox.
    """

    def __init__(
        self,
        group: str,
        events: EventBus | None = None,
        policy: Sandbox | None = None,
        isolation: str | Mapping[str, str] | None = None,
        *,
        untrusted: bool = False,
    ) -> None:
        self.group = group
        self.events = events
        self.policy = policy or Sandbox()
        self.isolation = isolation
        self.untrusted = untrusted
        self.supervisors: set[Supervisor] = set()
        self._lock = threading.Lock()
        self.closed = False

    def isolated(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` is to run in a sandbox."""
        choice = self.isolation
        chosen = choice.get(candidate.name) if isinstance(choice, Mapping) else choice
        if chosen is not None:
            return chosen == PROCESS
        ep = candidate.entry_point
        if ep is not None and "[" in ep.value:
            extras = ep.value.partition("[")[2].partition("]")[0]
            return EXTRA in {e.strip() for e in extras.split(",")}
        return False

    def adapt(self, candidate: Candidate) -> Candidate:
        """A registered candidate with the proxy as its target, if it is to run isolated."""
        target = candidate.target
        if isinstance(target, type) and issubclass(target, SandboxedPlugin):
            return evolve(candidate, target=self.bind(target.__plugyard_sandbox__, target))
        if candidate.kind is CandidateKind.REGISTERED and self.isolated(candidate):
            command = worker_command(
                candidate.info.origin,
                candidate.name,
                candidate.group,
                threads=self.policy.threads,
            )
            return evolve(candidate, target=self.bind(command))
        return candidate

    def bind(
        self,
        command: Command,
        base: type[SandboxedPlugin] = SandboxedPlugin,
        warm: Supervisor | None = None,
    ) -> type[SandboxedPlugin]:
        """A proxy class for ``command`` whose instances run under this host."""
        return type(base.__name__, (base,), {MARK: command, "host": self, "warm": warm})

    def load(self, candidate: Candidate) -> Candidate:
        """An isolated entry point's candidate, knowing its declaration, with no import here.

        The plugin's process is started to say ``$/hello``: its version and
        dependencies are the candidate's, and the process is kept for the
        first setup.

        Raises:
            IsolationError: a required layer is missing.
            PluginCrashedError: the process did not start or shake hands.
        """
        ep = candidate.entry_point
        assert ep is not None  # noqa: S101 - only entry points are loaded
        value = ep.value.partition("[")[0].strip()
        command = worker_command(
            value, candidate.name, candidate.group, candidate.version, self.policy.threads
        )
        supervisor = self.supervisor(candidate.info, command)
        hello = supervisor.start()
        info = candidate.info
        depends = parse_depends_on(list(hello.depends_on), plugin=candidate.name)
        info = evolve(info, depends_on=depends, origin=value)
        return evolve(candidate, info=info, target=self.bind(command, warm=supervisor))

    def supervisor(self, info: PluginInfo, command: Command) -> Supervisor:
        """A new supervisor for plugin ``info``, stopped when the host closes."""
        events = self.events
        publish = events.publish if events is not None else None
        supervisor = Supervisor(
            info.name,
            info.group,
            str(info.version),
            command.argv,
            self.policy,
            publish,
            extra_env=command.env,
            readable=command.readable,
        )
        supervisor.host_owned = self.supervisors
        with self._lock:
            if self.closed:
                raise PluginError(f"plugin {info.name!r}: the manager was shut down")
            self.supervisors.add(supervisor)
        return supervisor

    def close(self) -> None:
        """Stop every process this host started that is still running."""
        with self._lock:
            self.closed = True
            supervisors, self.supervisors = list(self.supervisors), set()
        for supervisor in supervisors:
            supervisor.stop()
