"""The isolation layers of a sandboxed plugin: what this machine offers, and applying them.

Each layer is probed once per process (:func:`probe`) and reported by
``plugyard sandbox check``. :func:`prepare` turns a :class:`Sandbox` policy
into what the child is started with: its command (wrapped in ``bwrap`` when
that layer is used), a scrubbed environment, a private working directory,
and the function that runs in the child between ``fork`` and ``exec``
(the pipes on fds 3 and 4, the cgroup, the user, the parent-death signal,
``no_new_privs``, rlimits, Landlock, seccomp). A layer the policy requires
that the machine lacks fails the plugin before anything is started.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import attrs

from ..exceptions import IsolationError
from . import _cgroup, _kernel
from ._protocol import HOST_TO_PLUGIN_FD, PLUGIN_TO_HOST_FD, Limits

#: Every layer, weakest first.
LAYERS = (
    "rlimits",
    "cgroup",
    "environment",
    "cwd",
    "no_new_privs",
    "user",
    "landlock",
    "seccomp",
    "bwrap",
)
#: Where the seccomp program is handed to bwrap, in the child.
_BWRAP_SECCOMP_FD = 5


@attrs.frozen
class Layer:
    """One isolation layer as probed on this machine.

    Attributes:
        name: One of :data:`LAYERS`.
        available: Whether this machine can apply it.
        detail: What it does here, or why it is missing.
    """

    name: str
    available: bool
    detail: str


def _to_frozenset(value: Collection[str]) -> frozenset[str]:
    return frozenset(value)


def _check_layers(
    instance: object, attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]
) -> None:
    unknown = sorted(value - set(LAYERS))
    if unknown:
        raise ValueError(f"{attribute.name}: unknown layers {unknown}; the layers are {LAYERS}")


def _check_user(
    instance: object, attribute: attrs.Attribute[int | str | None], value: int | str | None
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | str | None):
        raise TypeError(f"{attribute.name}: a user name or uid, not {value!r}")
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{attribute.name}: a uid is not negative, not {value!r}")
    if isinstance(value, str):
        try:
            import pwd
        except ImportError:  # no POSIX users: the layer is reported missing instead
            return
        try:
            pwd.getpwnam(value)
        except KeyError:
            raise ValueError(
                f"{attribute.name}: this machine has no user {value!r}; name one it has "
                "(see /etc/passwd), or give a uid"
            ) from None


@attrs.frozen
class Sandbox:
    """How an isolated plugin's process is confined and supervised.

    Attributes:
        memory: The limit of the process's data segment (``RLIMIT_DATA``), in bytes.
        cpu_seconds: CPU time (``RLIMIT_CPU``); past it the kernel kills the process.
        open_files: Open file descriptors (``RLIMIT_NOFILE``).
        processes: Processes and threads the plugin may add (``RLIMIT_NPROC``,
            counted over its user: the user's tasks at start plus this many).
        user: A user name or uid to run the plugin as (the host must be
            root; a name must be one this machine has), with that user's
            groups (a uid without a passwd entry: the group of the same
            number alone); ``None`` runs it as the host's own user. The
            plugin's interpreter and code must be readable by that user.
        landlock: Use Landlock where the kernel has it: reading anywhere,
            writing only in the private directory, no TCP.
        seccomp: Use the seccomp filter where the kernel has it.
        bwrap: Run the plugin under bubblewrap (``--unshare-all
            --die-with-parent``) where it is installed.
        require: Layers that must be applied; if one is not available the
            plugin fails to start with :class:`IsolationError`.
        env: Variables added to the scrubbed environment.
        call_timeout: Seconds a call may take before ``$/cancel``.
        cancel_grace: Seconds a cancelled call has to answer before the process is killed.
        start_timeout: Seconds from spawn to ``$/hello``.
        stop_timeout: Seconds ``$/shutdown`` waits before the process group is killed.
        restarts: How many times a crashed process is restarted before the
            circuit breaker opens and the plugin fails.
        backoff: Seconds before the first restart; doubled after each crash.
        max_backoff: The longest wait before a restart.
        reset_after: Seconds without a crash after which the restart count starts over.
        limits: The decoder limits for messages from the plugin.
        threads: For a Python plugin, how many of its sync calls may run at
            once in its process (``python -m plugyard.worker --threads``);
            with one, calls are answered in order, with the shortest round trip.
    """

    memory: int | None = 1 << 30
    cpu_seconds: int | None = 300
    open_files: int | None = 256
    processes: int | None = 64
    user: int | str | None = attrs.field(default=None, validator=_check_user)
    landlock: bool = True
    seccomp: bool = True
    bwrap: bool = True
    require: frozenset[str] = attrs.field(
        default=frozenset(), converter=_to_frozenset, validator=_check_layers
    )
    env: Mapping[str, str] = attrs.field(factory=dict)
    call_timeout: float = 30.0
    cancel_grace: float = 1.0
    start_timeout: float = 10.0
    stop_timeout: float = 2.0
    restarts: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    reset_after: float = 60.0
    limits: Limits = attrs.field(factory=Limits)
    threads: int = 1


@functools.lru_cache(maxsize=1)
def probe() -> tuple[Layer, ...]:
    """Every layer and whether this machine offers it; probed once per process."""
    linux = platform.system() == "Linux"
    found = [
        Layer("rlimits", True, "memory (RLIMIT_DATA), CPU seconds, open files, processes"),
        _probe_cgroup(),
        Layer("environment", True, "a scrubbed environment: PATH, HOME, LANG, TMPDIR, the token"),
        Layer("cwd", True, "a private working directory, removed when the process ends"),
    ]
    found.append(Layer("no_new_privs", linux, "PR_SET_NO_NEW_PRIVS" if linux else "Linux only"))
    if not hasattr(os, "getuid"):  # pragma: no cover - not POSIX
        found.append(Layer("user", False, "no POSIX users"))
    elif os.getuid() == 0:
        found.append(
            Layer("user", True, "the host is root: Sandbox(user=...) runs plugins as another user")
        )
    else:
        found.append(Layer("user", False, "the host is not root: plugins run as its user"))
    abi = _kernel.landlock_abi() if linux else 0
    found.append(
        Layer("landlock", True, f"ABI {abi}: read anywhere, write only in the private directory"
              + (", no TCP" if abi >= 4 else "") + (", no signals out" if abi >= 6 else ""))
        if abi
        else Layer("landlock", False, "the kernel has no Landlock (or it is disabled)")
    )  # fmt: skip
    if _kernel.seccomp_available():
        denied = len(_kernel.denied_syscalls())
        found.append(Layer("seccomp", True, f"a filter refusing {denied} system calls (EPERM)"))
    else:
        found.append(
            Layer("seccomp", False, f"no seccomp filters, or no table for {platform.machine()}")
        )
    found.append(_probe_bwrap())
    return tuple(found)


def _probe_cgroup() -> Layer:
    base = _cgroup.pids_base() if platform.system() == "Linux" else None
    if base is None:
        return Layer("cgroup", False, "no writable pids cgroup: the process limit is RLIMIT_NPROC")
    root = " (which RLIMIT_NPROC cannot limit)" if os.getuid() == 0 else ""
    return Layer("cgroup", True, f"a pids cgroup per plugin under {base}: the process limit{root}")


def _probe_bwrap() -> Layer:
    path = shutil.which("bwrap")
    if path is None:
        return Layer("bwrap", False, "not installed (Debian package bubblewrap)")
    import subprocess

    try:
        done = subprocess.run(
            [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Layer("bwrap", False, f"{path} cannot run: {exc}")
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        return Layer("bwrap", False, f"{path} cannot create namespaces: {reason[0]}")
    return Layer("bwrap", True, f"{path}: --unshare-all --die-with-parent, / read-only")


_PRIVATE_PREFIX = "plugyard-sandbox-"


@functools.lru_cache(maxsize=1)
def sweep() -> list[str]:
    """Remove what hosts killed with ``SIGKILL`` left behind; once per process.

    A host names its children's private directories and cgroups after its
    own pid; those of a pid that no longer runs are removed.
    """
    removed = [str(p) for p in _cgroup.sweep()] if platform.system() == "Linux" else []
    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for path in root.glob(f"{_PRIVATE_PREFIX}*-*"):
            if _cgroup.dead(path.name[len(_PRIVATE_PREFIX) :].split("-")[0]):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
    return removed


def layers() -> dict[str, Layer]:
    """:func:`probe` by layer name."""
    return {layer.name: layer for layer in probe()}


@attrs.frozen
class Launch:
    """What one child process is started with.

    Attributes:
        argv: The command, wrapped as the layers need.
        env: Its environment.
        cwd: Its private working directory (removed by the host when it ends).
        applied: The layers applied, in order.
        preexec: What runs in the child between ``fork`` and ``exec``.
        pass_fds: The descriptors the child keeps (3 and 4, and bwrap's seccomp program).
        user: The uid the child runs as, or ``None`` for the host's.
        host_fds: Descriptors the host closes once the child is started.
        cgroup: The child's pids cgroup, removed by the host when it ends.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    applied: tuple[str, ...]
    preexec: Callable[[], None] = attrs.field(repr=False)
    pass_fds: tuple[int, ...]
    user: int | None
    host_fds: tuple[int, ...] = ()
    cgroup: _cgroup.PidsGroup | None = None


def _user(policy: Sandbox) -> tuple[int, int, tuple[int, ...]] | None:
    """The uid, primary group and supplementary groups of ``policy.user``, if any.

    A uid without a passwd entry gets the group of the same number and no other.
    """
    if policy.user is None:
        return None
    import pwd

    try:
        if isinstance(policy.user, str):
            entry = pwd.getpwnam(policy.user)
        else:
            entry = pwd.getpwuid(policy.user)
    except KeyError:
        if isinstance(policy.user, str):  # removed since the policy was made
            raise ValueError(f"user: this machine has no user {policy.user!r}") from None
        return policy.user, policy.user, (policy.user,)
    return entry.pw_uid, entry.pw_gid, tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))


def _tasks_of(uid: int) -> int:
    """How many tasks (threads) ``uid`` runs now: what ``RLIMIT_NPROC`` counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as status:  # noqa: PTH123 - hot loop
                text = status.read(2048)
        except OSError:
            continue
        uid_line = text.partition(b"\nUid:")[2].split(None, 1)[:1]
        if uid_line and int(uid_line[0]) == uid:
            count += int(text.partition(b"\nThreads:")[2].split(None, 1)[0] or b"1")
    return count


def prepare(
    policy: Sandbox,
    argv: Sequence[str],
    token: str,
    pipes: tuple[int, int],
    *,
    extra_env: Mapping[str, str] | None = None,
    readable: Sequence[str] = (),
) -> Launch:
    """What to start a child with under ``policy``.

    Args:
        policy: The sandbox policy.
        argv: The plugin's command.
        token: The one-time token, put in the child's environment.
        pipes: The child's ends of the pipes: the read end of host → plugin
            and the write end of plugin → host, moved to fds 3 and 4.
        extra_env: Variables the launcher adds (``PYTHONPATH`` for the worker).
        readable: Directories the plugin's code is in (kept visible under bwrap).

    Raises:
        IsolationError: a required layer is not available, or cannot be
            combined with the others.
    """
    found = layers()
    wanted = {"rlimits", "environment", "cwd", "no_new_privs"}
    if policy.processes is not None:
        wanted.add("cgroup")
    identity = _user(policy)
    uid = identity[0] if identity is not None else None
    if uid is not None and uid != (os.getuid() if hasattr(os, "getuid") else None):
        wanted.add("user")
    if policy.bwrap and found["bwrap"].available:
        wanted.add("bwrap")
    elif policy.landlock and found["landlock"].available:
        # Landlock forbids the mounts bwrap makes: under bwrap, bwrap's own
        # read-only root is the filesystem layer.
        wanted.add("landlock")
    if policy.seccomp and found["seccomp"].available:
        wanted.add("seccomp")
    missing = sorted(n for n in policy.require if not found[n].available or n not in wanted)
    if missing:
        reasons = {n: found[n].detail if not found[n].available else "turned off" for n in missing}
        raise IsolationError(missing, reasons)
    applied = tuple(n for n in LAYERS if n in wanted and found[n].available)

    sweep()
    cwd = tempfile.mkdtemp(prefix=f"{_PRIVATE_PREFIX}{os.getpid()}-")
    switch = identity if identity is not None and "user" in applied else None
    if switch is not None:
        os.chown(cwd, switch[0], switch[1])
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": cwd,
        "TMPDIR": cwd,
        "LANG": "C.UTF-8",
        **(extra_env or {}),
        **policy.env,
        "PLUGYARD_TOKEN": token,
    }
    command = list(argv)
    pass_fds = [HOST_TO_PLUGIN_FD, PLUGIN_TO_HOST_FD]
    program = _kernel.seccomp_program() if "seccomp" in applied else None
    seccomp_fd: int | None = None
    if "bwrap" in applied:
        bwrap = shutil.which("bwrap") or "bwrap"
        wrap = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"]
        wrap += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # noqa: S108 - in the sandbox
        wrap += ["--bind", cwd, cwd, "--chdir", cwd]
        # A program or script under /tmp (hidden by the tmpfs) is bound in too,
        # and so are this interpreter's environment and import path, which a
        # Python plugin runs with (an editable install points into a checkout).
        named = [str(Path(arg).parent) for arg in command if Path(arg).is_absolute()]
        for path in sorted({*readable, *named, sys.prefix, *sys.path}):
            if path.startswith("/tmp/") and Path(path).exists():  # noqa: S108 - hidden by the tmpfs
                wrap += ["--ro-bind", path, path]
        if program is not None:
            # bwrap needs the system calls the filter refuses: it loads the
            # filter itself, once the namespaces are made.
            seccomp_fd = os.memfd_create("plugyard-seccomp", 0)
            os.write(seccomp_fd, program)
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
            wrap += ["--seccomp", str(_BWRAP_SECCOMP_FD)]
            pass_fds.append(_BWRAP_SECCOMP_FD)
            program = None
        command = [*wrap, "--", *command]
    landlock = (
        _kernel.Landlock(
            _kernel.landlock_abi(), ["/"], [cwd], ["/dev/null", "/dev/zero", "/dev/urandom"]
        )
        if "landlock" in applied
        else None
    )
    seccomp = _kernel.Seccomp(program) if program is not None else None
    cgroup = None
    if "cgroup" in applied:
        try:
            cgroup = _cgroup.PidsGroup(policy.processes or 0)
        except OSError as exc:
            if "cgroup" in policy.require:
                raise IsolationError(["cgroup"], {"cgroup": str(exc)}) from exc
            applied = tuple(n for n in applied if n != "cgroup")
    limits = _rlimits(policy, uid, counted=cgroup is None)
    preexec = _preexec(pipes, seccomp_fd, limits, landlock, seccomp, os.getpid(), cgroup, switch)
    return Launch(
        argv=tuple(command),
        env=env,
        cwd=cwd,
        applied=applied,
        preexec=preexec,
        pass_fds=tuple(pass_fds),
        user=switch[0] if switch is not None else None,
        host_fds=() if seccomp_fd is None else (seccomp_fd,),
        cgroup=cgroup,
    )


def _rlimits(policy: Sandbox, uid: int | None, *, counted: bool) -> list[tuple[int, int]]:
    limits = []
    if policy.memory is not None:
        limits.append((resource.RLIMIT_DATA, policy.memory))
    if policy.cpu_seconds is not None:
        limits.append((resource.RLIMIT_CPU, policy.cpu_seconds))
    if policy.open_files is not None:
        limits.append((resource.RLIMIT_NOFILE, policy.open_files))
    if counted and policy.processes is not None and hasattr(os, "getuid"):
        owner = uid if uid is not None else os.getuid()
        limits.append((resource.RLIMIT_NPROC, _tasks_of(owner) + policy.processes))
    return limits


def _preexec(
    pipes: tuple[int, int],
    seccomp_fd: int | None,
    limits: list[tuple[int, int]],
    landlock: _kernel.Landlock | None,
    seccomp: _kernel.Seccomp | None,
    host: int,
    cgroup: _cgroup.PidsGroup | None,
    user: tuple[int, int, tuple[int, ...]] | None,
) -> Callable[[], None]:
    """The function run in the child after ``fork``: all of it prepared before the fork.

    It switches to ``user`` itself, not subprocess's ``user=``: subprocess
    switches before it runs this function, and joining the cgroup (whose
    ``cgroup.procs`` is root's) needs root.
    """
    setrlimit = resource.setrlimit
    prctl = _kernel.prctl
    linux = platform.system() == "Linux"

    # Runs in the child between fork and exec, where coverage records nothing;
    # what it does is tested by its effects (tests/test_sandbox_faults.py).
    def in_child() -> None:  # pragma: no cover
        try:
            apply()
        except BaseException as exc:
            # subprocess reports it only as "Exception occurred in preexec_fn":
            # the host reads what it was from the pipe when the start fails.
            # (Had the moves put fd 3 or 5 at the pipe's old number, the write
            # fails or goes to the seccomp program, discarded with the child.)
            with contextlib.suppress(OSError):
                message = f"{type(exc).__name__} before exec: {exc}"
                os.write(pipes[1], message.encode(errors="replace"))
            raise

    def apply() -> None:  # pragma: no cover
        # Move the pipes to 3 and 4 by way of free numbers, so that neither
        # overwrites the other whatever numbers they had.
        moved = [os.dup(fd) for fd in pipes]
        if seccomp_fd is not None:
            moved.append(os.dup(seccomp_fd))
        targets = (HOST_TO_PLUGIN_FD, PLUGIN_TO_HOST_FD, _BWRAP_SECCOMP_FD)[: len(moved)]
        for target, fd in zip(targets, moved, strict=True):
            os.dup2(fd, target)
        if cgroup is not None:
            cgroup.join()
        if user is not None:
            _become(*user)
        if linux:
            # Die with the host. The signal fires when the host *thread* that
            # forked exits: children are spawned from one long-lived thread.
            # Set after the user switch, which clears it.
            prctl(_kernel.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != host:  # the host died before the line above
                os._exit(1)
            prctl(_kernel.PR_SET_NO_NEW_PRIVS, 1)
        for which, value in limits:
            hard = resource.getrlimit(which)[1]
            new = value if hard == resource.RLIM_INFINITY else min(value, hard)
            setrlimit(which, (new, new))
        if landlock is not None:
            landlock.restrict()
        if seccomp is not None:
            seccomp.install()

    return in_child


def failed_before_exec(fd: int) -> str:
    """What a child whose start failed wrote on ``fd`` (its pipe to the host) before ``exec``.

    subprocess says only "Exception occurred in preexec_fn"; the pre-exec
    function writes the exception. Empty if nothing was written: the child
    has exited by then, and the host still holds the pipe's write end.
    """
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096).decode(errors="replace")
    except BlockingIOError:
        return ""


def _become(uid: int, gid: int, groups: tuple[int, ...]) -> None:  # pragma: no cover - child only
    """Switch the calling root process to ``uid`` for good, and check that it took.

    Groups first, then the group, then the user: each of the first two needs
    root, which the last gives up, saved ids included.

    Raises:
        PermissionError: an id is not what was asked, or root can be had back.
    """
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if (
        os.getresuid() != (uid, uid, uid)
        or os.getresgid() != (gid, gid, gid)
        or sorted(os.getgroups()) != sorted(groups)
    ):
        raise PermissionError(f"switching to uid {uid}, gid {gid}, groups {groups} did not take")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PermissionError(f"uid {uid} could become root again")


def python_path() -> str:
    """The host's import path, for a Python worker to find plugyard and the plugin."""
    return os.pathsep.join(p for p in sys.path if p and Path(p).exists())
