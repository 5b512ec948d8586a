"""Config saves survive their writer being killed at any moment."""

from __future__ import annotations

import hashlib
import inspect
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from plugyard._configstore import ConfigStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked"),
]

KILLS = 200
TARGETS = [("alpha", "one"), ("alpha", "two"), ("beta", "one")]


def make_version(group: str, name: str, number: int) -> dict[str, Any]:
    """Version ``number`` of a config: every byte of it follows from the three arguments."""
    seed = f"{group}/{name}/{number}".encode()
    size = (number * 7919) % 200_000 + 1
    blob = (hashlib.sha256(seed).digest() * (size // 32 + 1))[:size]
    return {
        "version": number,
        "blob": blob,
        "nested": {"seed": seed, "list": [number, str(number), number % 2 == 0]},
    }


# A fork server: it imports plugyard once, then forks one writer per line it
# reads and prints the writer's pid. Each writer saves new versions of every
# target in a loop until it is killed. SIGCHLD is ignored so that killed
# writers are reaped at once and their pids are free, as after a real crash.
SERVER = f"""
import hashlib, os, signal, sys, traceback
from typing import Any
from plugyard._configstore import ConfigStore

TARGETS = {TARGETS!r}

{inspect.getsource(make_version)}

def write_forever(directory, first):
    store = ConfigStore(directory)
    number = first
    while True:
        for group, name in TARGETS:
            store.save(group, name, make_version(group, name, number))
        store.set_disabled("alpha", "two", number % 2 == 0)
        number += 1

signal.signal(signal.SIGCHLD, signal.SIG_IGN)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            write_forever(sys.argv[1], int(line))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)
    print(pid, flush=True)
"""


def wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.001)
    raise AssertionError(f"writer {pid} did not die")  # pragma: no cover


def temp_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*/.*.tmp"))


def test_configs_survive_200_kills_of_their_writer_mid_save(tmp_path: Path) -> None:
    """A writer SIGKILLed 200 times at random moments never leaves a torn or missing config.

    After every kill each config decodes and equals, byte for byte, a version
    some writer saved; once a config exists it never disappears; the disabled
    record is absent or valid, never torn. Temporary files left by killed
    writers are ignored by load and swept by the next write or removal.
    """
    directory = tmp_path / "config"
    store = ConfigStore(directory)
    rng = random.Random(0xC0FFEE)
    existed: set[tuple[str, str]] = set()
    seen_versions: set[int] = set()
    interrupted = 0
    # Unmeasured under coverage's patch = ["subprocess"]: the writers are
    # SIGKILLed, so they never save what they measured, and measuring them
    # slows them down, which leaves fewer kills landing after a save.
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as server:
        assert server.stdin is not None
        assert server.stdout is not None
        assert server.stderr is not None
        try:
            for kill in range(KILLS):
                server.stdin.write(f"{kill * 1_000_000}\n")
                server.stdin.flush()
                line = server.stdout.readline()
                assert line, "the fork server died"
                pid = int(line)
                time.sleep(rng.uniform(0, 0.03))
                os.kill(pid, signal.SIGKILL)
                wait_until_gone(pid)

                if temp_files(directory):
                    interrupted += 1
                for group, name in TARGETS:
                    config = store.load(group, name)
                    if not config:
                        assert (group, name) not in existed, f"{group}/{name} disappeared"
                        continue
                    existed.add((group, name))
                    number = config["version"]
                    assert number // 1_000_000 <= kill, "a version no writer has saved yet"
                    assert config == make_version(group, name, number)
                    seen_versions.add(number)
                state = store.disabled_state("alpha")
                assert dict(state.broken) == {}, "a torn disabled record"
                assert state.names <= {"two"}
        finally:
            server.stdin.close()
            errors = server.stderr.read()
            server.wait(timeout=30)
        # A writer that raised instead of being killed prints its traceback.
        assert errors == ""
        assert server.returncode == 0

    assert existed == set(TARGETS)
    # The kills landed in all phases: versions from many writers, and mid-write.
    # (On a loaded machine many writers die before their first save: a tenth is plenty.)
    assert len({number // 1_000_000 for number in seen_versions}) > KILLS // 10
    assert interrupted > 0, "no kill landed while a temporary file existed"

    for group, name in TARGETS:
        store.save(group, name, {"version": -1})
    store.set_disabled("alpha", "two", not store.is_disabled("alpha", "two"))
    assert temp_files(directory) == []
    assert all(store.load(group, name) == {"version": -1} for group, name in TARGETS)
