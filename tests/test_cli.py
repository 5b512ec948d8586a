"""The plugyard command, run in this process against plugins registered in code."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugyard import ConfigStore, PluginContext, register
from plugyard.cli import main

_groups = itertools.count()


@pytest.fixture(name="group")
def fixture_group() -> str:
    """A group holding a small chain, a diamond top, a broken plugin and a function."""
    group = f"tests.cli{next(_groups)}"

    @register(group=group, name="base", version="1.5")
    class Base:
        """The base of everything."""

        def execute(self, data: str) -> str:
            return data.strip()

    @register(group=group, name="upper", depends_on={"base": ">=1,<2"})
    class Upper:
        def setup(self, ctx: PluginContext) -> None:
            self.base = ctx.dependency("base")

        def execute(self, data: str) -> str:
            return str(self.base.execute(data)).upper()

    @register(group=group, name="echo")
    def echo(data: object) -> object:
        return data

    return group


@pytest.fixture(name="broken_group")
def fixture_broken_group(group: str) -> str:
    @register(group=group, name="needy", depends_on={"base": ">=2"})
    def needy(data: object) -> object:
        return data

    return group


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_shows_each_plugin(capsys: pytest.CaptureFixture[str], group: str) -> None:
    code, out, err = run(capsys, "list", "--group", group)
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "DISTRIBUTION", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == ["base", "echo", "upper"]
    assert lines[1].split()[1] == "1.5"
    assert lines[1].split()[-1] == "discovered"


def test_list_json_is_stable(capsys: pytest.CaptureFixture[str], group: str) -> None:
    code, out, _ = run(capsys, "list", "--group", group, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["group"] == group
    assert data["plugins"][0] == {
        "name": "base",
        "version": "1.5",
        "distribution": None,
        "value": f"{__name__}:fixture_group.<locals>.Base",
        "kind": "registered",
        "state": "discovered",
        "enabled": True,
    }


def test_inspect_shows_dependencies_and_state(
    capsys: pytest.CaptureFixture[str], group: str
) -> None:
    code, out, _ = run(capsys, "inspect", "upper", "--group", group)
    assert code == 0
    assert "depends on:   base<2,>=1" in out
    assert "state:        active" in out
    code, out, _ = run(capsys, "inspect", "upper", "--group", group, "--json")
    data = json.loads(out)
    assert data["depends_on"] == [{"name": "base", "specifier": "<2,>=1", "optional": False}]
    assert data["error"] is None
    assert data["version"] == "0"


def test_inspect_failed_plugin_exits_1_with_error(
    capsys: pytest.CaptureFixture[str], broken_group: str
) -> None:
    code, out, err = run(capsys, "inspect", "needy", "--group", broken_group, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["state"] == "failed"
    assert data["error"]["type"] == "DependencyVersionError"
    assert err.startswith("plugyard: needy: DependencyVersionError:")
    assert len(err.splitlines()) == 1


def test_graph_text_shows_edges_and_order(capsys: pytest.CaptureFixture[str], group: str) -> None:
    code, out, _ = run(capsys, "graph", "--group", group)
    assert code == 0
    assert "  upper -> base<2,>=1\n" in out
    order = out.split("load order:\n")[1].split()
    assert order == ["1.", "base", "1.5", "2.", "echo", "0", "3.", "upper", "0"]


def test_graph_marks_failed_edges(capsys: pytest.CaptureFixture[str], broken_group: str) -> None:
    code, out, err = run(capsys, "graph", "--group", broken_group)
    assert code == 1
    assert "needy -> base>=2  [FAILED]" in out
    assert "needy" in err
    code, out, _ = run(capsys, "graph", "--group", broken_group, "--format", "dot")
    assert '"needy" -> "base" [label=">=2", color=red];' in out
    assert out.startswith(f'digraph "{broken_group}"')
    code, out, _ = run(capsys, "graph", "--group", broken_group, "--format", "mermaid")
    assert out.startswith("graph BT\n")
    assert "-->|>=2 FAILED|" in out


def test_run_executes_with_json_or_string_data(
    capsys: pytest.CaptureFixture[str], group: str
) -> None:
    assert run(capsys, "run", "upper", "  hi there ", "--group", group) == (0, '"HI THERE"\n', "")
    assert run(capsys, "run", "echo", '{"a": [1, 2]}', "--group", group)[1] == '{"a": [1, 2]}\n'
    assert run(capsys, "run", "echo", "12", "--raw", "--group", group)[1] == '"12"\n'
    assert run(capsys, "run", "echo", "--group", group)[1] == "null\n"


def test_run_failures_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str], broken_group: str
) -> None:
    code, out, err = run(capsys, "run", "needy", "--group", broken_group)
    assert (code, out) == (1, "")
    assert err.startswith("plugyard: needy: DependencyVersionError")
    code, _, err = run(capsys, "run", "ghost", "--group", broken_group)
    assert code == 1
    assert "no plugin named 'ghost'" in err
    code, _, err = run(capsys, "run", "upper", "123", "--group", broken_group)
    assert code == 1
    assert err.startswith("plugyard: upper: execute() raised AttributeError")


def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGYARD_GROUP", raising=False)
    assert run(capsys, "list")[0] == 2
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["graph", "--group", "g", "--format", "svg"])
    assert exc.value.code == 2


def test_group_from_environment(
    capsys: pytest.CaptureFixture[str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGYARD_GROUP", group)
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    assert json.loads(out)["group"] == group


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "plugyard", "list", "--group", "tests.nothing-here", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"group": "tests.nothing-here", "plugins": []}


@pytest.fixture(name="configured")
def fixture_configured(group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PLUGYARD_CONFIG_DIR", str(tmp_path / "config"))
    return group


def test_config_set_and_get_with_json_and_bytes(
    capsys: pytest.CaptureFixture[str], configured: str
) -> None:
    g = ["--group", configured]
    assert run(capsys, "config", "set", "echo", "retries", "3", *g)[0] == 0
    assert run(capsys, "config", "set", "echo", "key", '"base64:AP8="', *g)[0] == 0
    assert run(capsys, "config", "set", "echo", "hosts", '["a", "b"]', *g)[0] == 0
    code, out, _ = run(capsys, "config", "get", "echo", *g)
    assert code == 0
    assert json.loads(out) == {"hosts": ["a", "b"], "key": "base64:AP8=", "retries": 3}
    assert json.loads(run(capsys, "config", "get", "echo", "retries", *g)[1]) == 3
    code, _, err = run(capsys, "config", "get", "echo", "nope", *g)
    assert code == 1
    assert "no key 'nope'" in err
    store = ConfigStore(os.environ["PLUGYARD_CONFIG_DIR"])
    assert store.load(configured, "echo")["key"] == b"\x00\xff"


def test_config_set_rejects_bad_values_and_unknown_plugins(
    capsys: pytest.CaptureFixture[str], configured: str
) -> None:
    g = ["--group", configured]
    code, _, err = run(capsys, "config", "set", "echo", "k", "not json", *g)
    assert code == 2
    assert "not a JSON literal" in err
    code, _, err = run(capsys, "config", "set", "ghost", "k", "1", *g)
    assert code == 1
    assert "no plugin named 'ghost'" in err


def test_config_commands_need_a_config_dir(
    capsys: pytest.CaptureFixture[str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGYARD_CONFIG_DIR", raising=False)
    code, _, err = run(capsys, "disable", "echo", "--group", group)
    assert code == 2
    assert "no config directory" in err


def test_disable_and_enable_are_persisted_and_listed(
    capsys: pytest.CaptureFixture[str], configured: str
) -> None:
    g = ["--group", configured]
    assert run(capsys, "disable", "base", *g)[0] == 0
    code, out, _ = run(capsys, "list", "--json", *g)
    enabled = {p["name"]: p["enabled"] for p in json.loads(out)["plugins"]}
    assert enabled == {"base": False, "echo": True, "upper": True}
    table = run(capsys, "list", *g)[1]
    assert "discovered (disabled)" in table
    code, _, err = run(capsys, "run", "upper", "x", *g)
    assert code == 1
    assert "disabled" in err
    assert run(capsys, "enable", "base", *g)[0] == 0
    assert run(capsys, "run", "upper", "x", *g) == (0, '"X"\n', "")
