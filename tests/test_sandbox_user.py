"""A plugin run as another user (``Sandbox(user=...)``), with every other layer on.

The host is root and the plugin runs as ``nobody``, who cannot run this
test's interpreter where it usually lives (under ``/root``, mode 0700). So
the plugin runs on the system's ``/usr/bin/python3`` (Debian's package
``python3``), in a virtual environment made in a directory anyone can read,
with plugyard's own wheel and its dependencies installed from the session's
wheelhouse, and the test plugins copied beside it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugyard import PluginManager, Registry
from plugyard.runtime import Sandbox, external, probe
from wheelhouse import Venv

TESTS = Path(__file__).resolve().parent
LAYERS = {layer.name: layer for layer in probe()}
SYSTEM_PYTHON = Path("/usr/bin/python3")
USER = "nobody"
LIMITED = Sandbox(user=USER, processes=16, stop_timeout=1.0)


def _system_python_version() -> tuple[int, int] | None:
    if not SYSTEM_PYTHON.exists():
        return None
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    major, minor = done.stdout.split()
    return int(major), int(minor)


def _why_not() -> str | None:
    """Why the host cannot run a plugin as ``USER`` on an interpreter ``USER`` can run, if so."""
    if not LAYERS["user"].available:
        return f"no other user: {LAYERS['user'].detail}"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"this machine has no user {USER!r}"
    version = _system_python_version()
    if version is None:
        return (
            f"no {SYSTEM_PYTHON} for {USER} to run (Debian's package python3): "
            f"this interpreter, {sys.executable}, may be where {USER} cannot run it"
        )
    if version != sys.version_info[:2]:
        return (
            f"{SYSTEM_PYTHON} is Python {'.'.join(map(str, version))}, and the "
            "wheelhouse holds wheels for this interpreter's "
            f"{'.'.join(map(str, sys.version_info[:2]))} only"
        )
    return None


WHY_NOT = _why_not()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("no_stray_processes"),
    pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT)),
]


def _let_anyone_read(root: Path) -> None:
    """Make what is under ``root`` readable (and its directories and programs runnable) by all.

    Whatever this process's umask; symbolic links (the venv's ``python``) are
    left as they are, not followed.
    """
    for directory, _, files in os.walk(root):
        for path in [Path(directory), *(Path(directory) / f for f in files)]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))


@pytest.fixture(name="readable", scope="module")
def fixture_readable(
    wheels: dict[str, Path], find_links: tuple[Path, ...]
) -> Iterator[tuple[Venv, Path]]:
    """A venv of the system's Python with plugyard, and the test plugins, that anyone can read."""
    # Not pytest's tmp_path: the directories above it are this user's alone.
    root = Path(tempfile.mkdtemp(prefix="plugyard-user-test-"))
    try:
        path = root / "venv"
        subprocess.run(
            [SYSTEM_PYTHON, "-m", "venv", "--without-pip", path], check=True, capture_output=True
        )
        python = path / "bin" / "python"
        site = subprocess.run(
            [python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        venv = Venv(path, python, Path(site), find_links)
        venv.pip_install(wheels["plugyard"])
        plugins = root / "plugins"
        shutil.copytree(TESTS / "sandbox_plugins", plugins / "sandbox_plugins")
        _let_anyone_read(root)
        yield venv, plugins
    finally:
        shutil.rmtree(root)


def _register(registry: Registry, readable: tuple[Venv, Path], target: str, name: str) -> None:
    venv, plugins = readable
    argv = [str(venv.python), "-m", "plugyard.worker", target, "--name", name]
    env = {"PYTHONPATH": str(plugins), "PYTHONDONTWRITEBYTECODE": "1"}
    registry.register(external(argv, env=env, readable=[str(venv.path.parent)]), name=name)


def _status_ids(pid: int) -> dict[str, list[int]]:
    """The ``Uid``, ``Gid`` and ``Groups`` lines of ``/proc/PID/status``, as the kernel has them."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            found[key] = [int(n) for n in value.split()]
    return found


def _expected() -> dict[str, Any]:
    entry = pwd.getpwnam(USER)
    return {
        "uid": entry.pw_uid,
        "gid": entry.pw_gid,
        "groups": sorted(os.getgrouplist(entry.pw_name, entry.pw_gid)),
    }


@pytest.mark.parametrize("bwrap", [False, True], ids=["landlock", "bwrap"])
def test_a_plugin_runs_as_the_user_with_its_groups_under_the_cgroup(
    registry: Registry, readable: tuple[Venv, Path], bwrap: bool
) -> None:
    layer = "bwrap" if bwrap else "landlock"
    for needed in ("cgroup", layer, "seccomp"):
        if not LAYERS[needed].available:
            pytest.skip(f"this machine has no {needed}: {LAYERS[needed].detail}")
    _register(registry, readable, "sandbox_plugins.identity:WhoAmI", "whoami")
    policy = Sandbox(
        user=USER, bwrap=bwrap, require={"user", "cgroup", layer, "seccomp", "no_new_privs"}
    )
    with PluginManager(registry, sandbox=policy) as manager:
        seen = manager.execute("whoami")
        child = manager.get("whoami").instance.supervisor.child
        pid = child.process.pid
        ids = _status_ids(pid)
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    want = _expected()
    assert child.launch.user == want["uid"]
    # The kernel's view of the process the host started (bwrap itself, under bwrap).
    assert ids == {"Uid": [want["uid"]] * 4, "Gid": [want["gid"]] * 4, "Groups": want["groups"]}
    # The plugin's own: bwrap's user namespace maps the user to itself.
    assert seen["uid"] == [want["uid"]] * 3
    assert seen["gid"] == [want["gid"]] * 3
    assert seen["groups"] == want["groups"]
    assert seen["parent_death_signal"] == signal.SIGKILL
    assert child.launch.cgroup is not None
    assert child.launch.cgroup.path.name in cgroups


def test_the_cgroup_limits_the_processes_of_a_plugin_run_as_another_user(
    registry: Registry, readable: tuple[Venv, Path]
) -> None:
    if not LAYERS["cgroup"].available:
        pytest.skip(f"this machine has no cgroup: {LAYERS['cgroup'].detail}")
    _register(registry, readable, "sandbox_plugins.faults:Faulty", "Faulty")
    with PluginManager(registry, sandbox=LIMITED) as manager:
        result = manager.execute("Faulty", "forkbomb")
        applied = manager.get("Faulty").instance.supervisor.child.launch.applied
    assert {"user", "cgroup"} <= set(applied)
    assert result["error"] == "Resource temporarily unavailable"
    assert LIMITED.processes is not None
    assert result["forked"] < LIMITED.processes


def test_without_the_cgroup_the_plugin_still_runs_as_the_user_and_its_groups_alone(
    registry: Registry, readable: tuple[Venv, Path]
) -> None:
    """No process limit, so no cgroup: still that user's group and groups, not the host's."""
    _register(registry, readable, "sandbox_plugins.identity:WhoAmI", "whoami")
    policy = Sandbox(user=USER, processes=None, require={"user"})
    with PluginManager(registry, sandbox=policy) as manager:
        seen = manager.execute("whoami")
        applied = manager.get("whoami").instance.supervisor.child.launch.applied
    assert "cgroup" not in applied
    want = _expected()
    assert seen["uid"] == [want["uid"]] * 3
    assert seen["gid"] == [want["gid"]] * 3
    assert seen["groups"] == want["groups"]


def _uid_without_an_entry() -> int:
    taken = {entry.pw_uid for entry in pwd.getpwall()}
    return next(uid for uid in range(50_000, 60_000) if uid not in taken)


def test_a_uid_without_a_passwd_entry_gets_the_group_of_its_number_alone(
    registry: Registry, readable: tuple[Venv, Path]
) -> None:
    uid = _uid_without_an_entry()
    _register(registry, readable, "sandbox_plugins.identity:WhoAmI", "whoami")
    with PluginManager(registry, sandbox=Sandbox(user=uid, require={"user"})) as manager:
        seen = manager.execute("whoami")
    assert (seen["uid"], seen["gid"], seen["groups"]) == ([uid] * 3, [uid] * 3, [uid])
