"""Class 3: files a tampered wheel installs outside its package, onto the import path.

The signed ``atk-victim`` wheel gains a member
``atk_victim-1.0.data/data/lib64/pythonX.Y/site-packages/...`` and a
``RECORD`` row for it; the signature is untouched. The ``data`` scheme is
the venv's root, so the file lands in site-packages through the venv's
``lib64 -> lib`` symlink. The victim tries an optional module
``atkvictim_speedups``, which no distribution should ship: the tampered wheel
ships it. Installed with pip and with ``installer``, the distribution must
not verify, and ``plugyard sign`` and ``plugyard verify`` refuse the wheel.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from attacks.attackkit import Env, evil
from attacks.conftest import Keys, MakeEnv, Wheels
from trust_helpers import record_hash, rewrite_wheel

pytestmark = pytest.mark.slow

DATA = "atk_victim-1.0.data/data/lib64"
SITE = f"python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def _tampered(signed: Path, out: Path, member: str, content: str) -> Path:
    """``signed`` with ``member`` added and listed in its RECORD; the signature kept."""

    def change(members: dict[str, bytes]) -> None:
        data = content.encode()
        members[member] = data
        record = "atk_victim-1.0.dist-info/RECORD"
        row = f"{member},{record_hash(data)},{len(data)}\n".encode()
        members[record] = members[record] + row

    out.mkdir(parents=True, exist_ok=True)
    return rewrite_wheel(signed, change, out / signed.name)


@pytest.fixture(name="speedups_wheel", scope="module")
def fixture_speedups_wheel(attack_wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tampered(
        attack_wheels.by_name["atk-victim"],
        tmp_path_factory.mktemp("tampered-speedups"),
        f"{DATA}/{SITE}/atkvictim_speedups.py",
        evil("a module planted through lib64 ran"),
    )


@pytest.fixture(name="pip_env", scope="module")
def fixture_pip_env(make_env: MakeEnv, speedups_wheel: Path) -> Env:
    return make_env(speedups_wheel, "atk-dependent")


@pytest.fixture(name="installer_env", scope="module")
def fixture_installer_env(make_env: MakeEnv, speedups_wheel: Path) -> Env:
    return make_env("atk-dependent", installer=(speedups_wheel,))


@pytest.mark.parametrize("installed_by", ["pip", "installer"])
def test_a_module_planted_through_lib64_is_refused(
    request: pytest.FixtureRequest, installed_by: str, marker: Path
) -> None:
    env: Env = request.getfixturevalue(f"{installed_by}_env")
    planted = env.site / "atkvictim_speedups.py"
    assert planted.exists()  # where the installer really put it
    assert (env.venv.path / "lib64").is_symlink()

    report = env.host(marker)

    assert not marker.exists(), marker.read_text()
    error = report.refused("victim", "outside-distribution", f"lib64/{SITE}/atkvictim_speedups.py")
    assert "lands at 'atkvictim_speedups.py'" in str(error["problems"])
    report.dependents_failed("dependent")
    env.verify_group().reports("atk-victim", "outside-distribution", "atkvictim_speedups.py")


def _plugyard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugyard", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_sign_and_verify_refuse_the_tampered_wheel(speedups_wheel: Path, keys: Keys) -> None:
    member = f"{DATA}/{SITE}/atkvictim_speedups.py"

    verify = _plugyard("verify", speedups_wheel, "--keyring", keys.ring)
    sign = _plugyard("sign", speedups_wheel, "--key", keys.release, "--out", f"{speedups_wheel}.d/")

    assert verify.returncode == 1
    assert f"forbidden-file: {member}" in verify.stderr
    assert f"{member}: is listed in RECORD but not in the wheel" in verify.stderr
    assert sign.returncode == 1
    assert f"forbidden-file: {member}" in sign.stderr


def test_a_pth_file_planted_through_lib64_is_reported_though_it_ran_at_start_up(
    make_env: MakeEnv, attack_wheels: Wheels, tmp_path: Path, marker: Path
) -> None:
    """A ``.pth`` runs at every interpreter start, before plugyard: it can only be reported.

    docs/security.md lists this: the installation is the compromise. The
    distribution does not verify, so its plugins are refused and
    ``plugyard verify`` names the file.
    """
    wheel = _tampered(
        attack_wheels.by_name["atk-victim"],
        tmp_path / "tampered",
        f"{DATA}/{SITE}/atk_evil.pth",
        "import os; open(os.environ['ATTACK_MARKER'], 'a').write('a .pth ran at start-up\\n')\n",
    )
    env = make_env(wheel, "atk-dependent")

    report = env.host(marker)
    verify = env.verify_group(env={"ATTACK_MARKER": str(tmp_path / "verify-start-up")})

    assert "a .pth ran at start-up" in marker.read_text()  # before plugyard existed
    report.refused("victim", "outside-distribution", "atk_evil.pth")
    report.dependents_failed("dependent")
    verify.reports("atk-victim", "outside-distribution", "atk_evil.pth")
