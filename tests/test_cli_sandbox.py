"""``plugyard sandbox check``, ``conformance`` and ``run``, against real processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from plugyard.cli import main
from plugyard.runtime import LAYERS, probe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]

ROOT = Path(__file__).resolve().parents[1]
NODE = ["node", str(ROOT / "contrib_plugins" / "node-wordfreq" / "index.js"), "wordfreq"]
WORKER = [sys.executable, "-m", "plugyard.worker", "sandbox_plugins.basic:Echo"]
TESTS_ON_PATH = ["--env", f"PYTHONPATH={ROOT / 'tests'}"]


def test_check_lists_every_layer_with_its_availability(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "check", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [row["layer"] for row in shown] == list(LAYERS)
    assert {row["layer"]: row["available"] for row in shown} == {
        layer.name: layer.available for layer in probe()
    }


def test_check_fails_when_a_required_layer_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    missing = [layer.name for layer in probe() if not layer.available]
    code = main(["sandbox", "check", "--require", "rlimits", *missing])
    assert code == (1 if missing else 0)
    assert main(["sandbox", "check", "--require", "chroot"]) == 2
    assert "unknown layers ['chroot']" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env"), [(WORKER, TESTS_ON_PATH), (NODE, [])], ids=["python", "node"]
)
def test_conformance_passes_for_both_implementations(
    argv: list[str], env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sandbox", "conformance", *env, "--", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "8 passed, 0 failed"
    assert all(line.startswith("ok") for line in lines[:-1])


def test_conformance_reports_what_an_implementation_gets_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "half.py"
    script.write_text(
        "import os, time, msgpack\n"
        "hello = {'token': os.environ['PLUGYARD_TOKEN'], 'protocol': [1], 'name': 'half',"
        " 'methods': []}\n"
        "os.write(4, msgpack.packb([0, 0, '$/hello', [hello]]))\n"
        "time.sleep(30)\n"
    )
    env = ["--env", f"PYTHONPATH={':'.join(sys.path)}"]
    assert main(["sandbox", "conformance", *env, "--", sys.executable, str(script)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("ok    handshake: plugin 'half' 0")
    assert "FAIL  $/ping: CallTimeoutError" in out
    assert "FAIL  EOF on fd 3: still running" in out


def test_run_executes_a_command_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "run", "--name", "wordfreq", "--data", "a b a", "--", *NODE]) == 0
    assert json.loads(capsys.readouterr().out) == {"a": 2, "b": 1}


def test_conformance_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "conformance"]) == 2
    assert "needs a command after --" in capsys.readouterr().err
