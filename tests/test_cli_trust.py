"""plugyard keygen, sign and verify, run in this process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from plugyard.cli import main
from trust_helpers import rewrite_wheel, write_wheel


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(name="keys")
def fixture_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, _ = run(capsys, "keygen", "--out", tmp_path / "keys")
    assert code == 0
    assert "key id:" in out
    return tmp_path / "keys"


@pytest.fixture(name="wheel")
def fixture_wheel(tmp_path: Path) -> Path:
    return write_wheel(tmp_path / "dist", {"demo_pkg/__init__.py": "VALUE = 1\n"})


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = keys / "plugyard.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (keys / "plugyard.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = private.read_bytes()
    code, _, err = run(capsys, "keygen", "--out", keys)
    assert code == 2
    assert "refusing to overwrite" in err
    assert private.read_bytes() == before


def test_sign_then_verify_with_the_public_key(
    keys: Path, wheel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "sign", wheel, "--key", keys / "plugyard.pem")
    assert code == 0
    assert out.startswith(f"signed {wheel} with key ")
    code, out, err = run(capsys, "verify", wheel, "--key", keys / "plugyard.pub.pem")
    assert (code, err) == (0, "")
    assert out.startswith("demo-pkg 1.0: ok, signed by ")
    code, out, _ = run(capsys, "verify", wheel, "--key", keys / "plugyard.pub.pem", "--json")
    (result,) = json.loads(out)
    assert result["ok"] is True
    assert result["problems"] == []


def test_verify_reports_each_problem_on_its_own_line(
    keys: Path, wheel: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "sign", wheel, "--key", keys / "plugyard.pem")

    def tamper(members: dict[str, bytes]) -> None:
        members["demo_pkg/__init__.py"] = b"VALUE = 2\n"

    bad = rewrite_wheel(wheel, tamper, tmp_path / wheel.name)
    code, _, err = run(capsys, "verify", bad, "--key", keys / "plugyard.pub.pem")
    assert code == 1
    lines = err.splitlines()
    assert all(line.startswith("plugyard: demo-pkg 1.0: ") for line in lines)
    (line,) = [line for line in lines if "differs from the signed manifest" in line]
    assert "hash-mismatch: demo_pkg/__init__.py" in line
    assert "(expected sha256=" in line
    assert ", actual sha256=" in line


def test_verify_with_another_key_is_unknown_key(
    keys: Path, wheel: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "sign", wheel, "--key", keys / "plugyard.pem")
    run(capsys, "keygen", "--out", tmp_path / "other")
    # A keyring directory holding a private key is refused: it is handed to verifiers.
    code, _, err = run(capsys, "verify", wheel, "--keyring", tmp_path / "other")
    assert code == 2
    assert "is a private key" in err
    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "other.pem").write_bytes((tmp_path / "other" / "plugyard.pub.pem").read_bytes())
    code, _, err = run(capsys, "verify", wheel, "--keyring", ring)
    assert code == 1
    assert "unknown-key" in err


def test_sign_with_a_passphrase_from_the_environment(
    tmp_path: Path,
    wheel: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELEASE_PASSPHRASE", "correct horse")
    assert (
        run(capsys, "keygen", "--out", tmp_path / "k", "--passphrase-env", "RELEASE_PASSPHRASE")[0]
        == 0
    )
    assert b"ENCRYPTED" in (tmp_path / "k" / "plugyard.pem").read_bytes()
    code, _, err = run(capsys, "sign", wheel, "--key", tmp_path / "k" / "plugyard.pem")
    assert code == 2
    assert "passphrase" in err
    code, _, _ = run(
        capsys, "sign", wheel, "--key", tmp_path / "k" / "plugyard.pem",
        "--passphrase-env", "RELEASE_PASSPHRASE",
    )  # fmt: skip
    assert code == 0
    monkeypatch.delenv("RELEASE_PASSPHRASE")
    code, _, err = run(
        capsys, "sign", wheel, "--key", tmp_path / "k" / "plugyard.pem",
        "--passphrase-env", "RELEASE_PASSPHRASE",
    )  # fmt: skip
    assert code == 2
    assert "RELEASE_PASSPHRASE" in err


def test_verify_usage_errors(
    keys: Path, wheel: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGYARD_GROUP", raising=False)
    code, _, err = run(capsys, "verify", "--key", keys / "plugyard.pub.pem")
    assert code == 2
    assert "verify needs" in err
    code, _, err = run(capsys, "verify", wheel, "--key", keys / "plugyard.pem")
    assert code == 2
    assert "is a private key" in err
    code, _, err = run(capsys, "verify", wheel)
    assert code == 2
    assert err == "plugyard: error: one of the arguments --keyring --key is required\n"


def test_signing_a_wheel_with_bytecode_is_refused(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = write_wheel(
        tmp_path / "pyc",
        {"demo_pkg/__init__.py": "", "demo_pkg/__pycache__/__init__.cpython-311.pyc": b"x"},
    )
    code, _, err = run(capsys, "sign", wheel, "--key", keys / "plugyard.pem")
    assert code == 1
    assert "forbidden-file" in err


def one_line(err: str) -> str:
    """The one line a failure leaves on stderr, checked to be alone and without a traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("plugyard: ")
    return lines[0]


def test_keygen_where_no_directory_can_be_made_is_one_usage_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("")
    code, out, err = run(capsys, "keygen", "--out", file / "keys")
    assert (code, out) == (2, "")
    assert one_line(err) == (
        f"plugyard: cannot write a key pair in {str(file / 'keys')!r}: Not a directory"
    )


def test_verify_of_a_group_with_a_bad_name_is_one_usage_error_line(
    keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "verify", "--group", "../x", "--key", keys / "plugyard.pub.pem")
    assert code == 2
    assert one_line(err).startswith("plugyard: invalid group name '../x': a group name is ASCII")


@pytest.mark.slow
def test_verify_into_a_pipe_nobody_reads_exits_3_with_one_line(keys: Path, wheel: Path) -> None:
    assert main(["sign", str(wheel), "--key", str(keys / "plugyard.pem")]) == 0
    argv = ["verify", str(wheel), "--key", str(keys / "plugyard.pub.pem")]
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "plugyard", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 3
    assert one_line(done.stderr) == "plugyard: cannot write the output: Broken pipe"


def test_verify_of_a_group_checks_each_installed_distribution_and_its_entry_points(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: a signed distribution of the group verifies, an edited listing does not."""
    from trust_helpers import dist_info_of, install_wheel

    group = "tests.cli.verifygroup"
    info = dist_info_of("demo-pkg", "1.0")
    wheel = write_wheel(
        tmp_path / "dist",
        {
            "demo_pkg/__init__.py": "class Plugin:\n    pass\n",
            f"{info}/entry_points.txt": f"[{group}]\nplugin = demo_pkg:Plugin\n",
        },
    )
    assert run(capsys, "sign", wheel, "--key", keys / "plugyard.pem")[0] == 0
    site = install_wheel(wheel, tmp_path / "root")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PLUGYARD_NO_CACHE", "1")
    ring: list[str | Path] = ["--key", keys / "plugyard.pub.pem"]
    code, out, _ = run(capsys, "verify", "--group", group, *ring)
    assert code == 0
    assert out.startswith("demo-pkg 1.0: ok, signed by ")
    listed = site / info / "entry_points.txt"
    listed.write_text(f"[{group}]\nplugin = demo_pkg:Plugin\nextra = os:system\n")
    code, out, _ = run(capsys, "verify", "--group", group, *ring, "--json")
    assert code == 1
    kinds = [p["kind"] for r in json.loads(out) for p in r["problems"]]
    assert "hash-mismatch" in kinds  # the listing's file itself was changed
