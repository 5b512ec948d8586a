"""The plugyard command, run in this process against plugins registered in code."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import itertools
import json
import os
import subprocess
import sys
import typing
import warnings
from pathlib import Path
from typing import Any

import attrs
import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugyard import ConfigStore, PluginContext, PluginManager, register
from plugyard.cli import main
from plugyard.testing import write_distribution

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


def only_line(err: str) -> str:
    """The one line a failure leaves on stderr, checked to be alone and without a traceback."""
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err == lines[0] + "\n"
    assert lines[0].startswith("plugyard: ")
    return lines[0]


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
        "location": None,
        "chosen": True,
        "why": "",
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
    code, _, err = run(capsys, "list")
    assert (code, only_line(err)) == (2, "plugyard: no group: pass --group or set $PLUGYARD_GROUP")
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert only_line(err).startswith("plugyard: error: argument command: invalid choice:")
    code, _, err = run(capsys, "graph", "--group", "g", "--format", "svg")
    assert code == 2
    assert only_line(err).startswith("plugyard: error: argument --format: invalid choice:")


def test_help_returns_0_instead_of_raising(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: plugyard")
    assert "Exit codes: 0 success, 1 a plugin failed" in out


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


# -- every failure is one line on stderr, with its exit code --------------------

NAME_RULE = "ASCII letters, digits, '.', '_' and '-', starting and ending with a letter or digit"


@pytest.mark.parametrize("bad", ["a\n", "../x", "a/b", "a-", "a b", "é"])
def test_a_bad_group_name_is_one_usage_error_line_and_touches_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str
) -> None:
    config = tmp_path / "config"
    for argv in (["list"], ["disable", "echo"], ["config", "set", "echo", "k", "1"]):
        code, out, err = run(capsys, *argv, "--group", bad, "--config-dir", str(config))
        assert (code, out) == (2, "")
        assert (
            only_line(err) == f"plugyard: invalid group name {bad!r}: a group name is {NAME_RULE}"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_bad_plugin_name_is_one_usage_error_line(
    capsys: pytest.CaptureFixture[str], group: str
) -> None:
    code, _, err = run(capsys, "run", "echo\n", "--group", group)
    assert code == 2
    assert (
        only_line(err) == f"plugyard: invalid plugin name 'echo\\n': a plugin name is {NAME_RULE}"
    )


def test_a_config_dir_that_is_a_file_is_one_usage_error_line(
    capsys: pytest.CaptureFixture[str], group: str, tmp_path: Path
) -> None:
    file = tmp_path / "file"
    file.write_text("not a directory")
    for config in (file, file / "below"):
        for argv in (["list"], ["run", "echo"], ["config", "get", "echo"], ["enable", "echo"]):
            code, out, err = run(capsys, *argv, "--group", group, "--config-dir", str(config))
            assert (code, out) == (2, "")
            assert only_line(err) == (
                f"plugyard: cannot use config directory {str(config)!r}: Not a directory"
            )
    assert file.read_text() == "not a directory"


def test_a_config_dir_in_a_symlink_loop_is_one_usage_error_line(
    capsys: pytest.CaptureFixture[str], group: str, tmp_path: Path
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    code, _, err = run(capsys, "list", "--group", group, "--config-dir", str(loop))
    assert code == 2
    assert only_line(err) == (
        f"plugyard: cannot use config directory {str(loop)!r}: {os.strerror(errno.ELOOP)}"
    )


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any directory")
def test_an_unreadable_config_dir_is_one_usage_error_line(
    capsys: pytest.CaptureFixture[str], group: str, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    config.chmod(0)
    try:
        code, _, err = run(capsys, "list", "--group", group, "--config-dir", str(config))
    finally:
        config.chmod(0o700)
    assert code == 2
    assert (
        only_line(err)
        == f"plugyard: cannot use config directory {str(config)!r}: Permission denied"
    )


def test_a_config_dir_that_does_not_exist_yet_is_fine(
    capsys: pytest.CaptureFixture[str], group: str, tmp_path: Path
) -> None:
    config = tmp_path / "not" / "yet"
    assert run(capsys, "disable", "echo", "--group", group, "--config-dir", str(config))[0] == 0
    assert (config / group / "echo.disabled").is_file()


def test_a_corrupt_disabled_record_is_one_failure_line_and_is_left_alone(
    capsys: pytest.CaptureFixture[str], configured: str
) -> None:
    record = Path(os.environ["PLUGYARD_CONFIG_DIR"]) / configured / "echo.disabled"
    record.parent.mkdir(parents=True)
    record.write_bytes(b"\xc1 not msgpack")
    code, out, err = run(capsys, "run", "echo", "x", "--group", configured)
    assert (code, out) == (1, "")
    line = only_line(err)
    assert line.startswith("plugyard: ")
    assert "ConfigError" in line
    assert repr(str(record)) in line
    assert record.read_bytes() == b"\xc1 not msgpack"


def test_stdout_closed_before_start_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    code, _, err = run(capsys, "list", "--group", group)
    assert code == 3
    assert only_line(err) == "plugyard: cannot write the output: standard output is closed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_stdout_on_a_full_disk_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Path("/dev/full").open("w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run(capsys, "list", "--group", group, "--json")
        assert code == 3
        assert only_line(err) == (f"plugyard: cannot write the output: {os.strerror(errno.ENOSPC)}")


@pytest.fixture(name="unruly")
def fixture_unruly(group: str) -> str:
    """Plugins that exit, are interrupted, or fail with a message over several lines."""

    @register(group=group, name="exits-in-setup")
    class ExitsInSetup:
        def setup(self, ctx: PluginContext) -> None:
            sys.exit(5)

        def execute(self, data: object) -> object:
            return data

    @register(group=group, name="exits-in-execute")
    def exits_in_execute(data: object) -> object:
        sys.exit(7)

    @register(group=group, name="interrupted-in-setup")
    class InterruptedInSetup:
        def setup(self, ctx: PluginContext) -> None:
            raise KeyboardInterrupt

        def execute(self, data: object) -> object:
            return data

    @register(group=group, name="interrupted-in-execute")
    def interrupted_in_execute(data: object) -> object:
        raise KeyboardInterrupt

    @register(group=group, name="multiline")
    class Multiline:
        def setup(self, ctx: PluginContext) -> None:
            raise ValueError("first line\nsecond line\r\x1b[31mred")

    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    @register(group=group, name="unprintable")
    def unprintable(data: object) -> object:
        return Unprintable()

    return group


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("exits-in-setup", "plugyard: exits-in-setup: loading it called sys.exit(5)"),
        ("exits-in-execute", "plugyard: exits-in-execute: execute() called sys.exit(7)"),
        (
            "multiline",
            "plugyard: multiline: PluginSetupError: plugin 'multiline' failed in setup(): "
            "ValueError: first line\\nsecond line\\r\\x1b[31mred",
        ),
        (
            "unprintable",
            "plugyard: unprintable: its result cannot be shown: RuntimeError: no repr",
        ),
    ],
)
def test_a_plugin_that_exits_or_fails_oddly_is_a_failure_on_one_line(
    capsys: pytest.CaptureFixture[str], unruly: str, name: str, line: str
) -> None:
    code, out, err = run(capsys, "run", name, "--group", unruly)
    assert (code, out) == (1, "")
    assert only_line(err) == line


@pytest.mark.parametrize("name", ["interrupted-in-setup", "interrupted-in-execute"])
def test_keyboard_interrupt_in_a_plugin_exits_130_with_one_line(
    capsys: pytest.CaptureFixture[str], unruly: str, name: str
) -> None:
    code, out, err = run(capsys, "run", name, "--group", unruly)
    assert (code, out) == (130, "")
    assert only_line(err) == "plugyard: interrupted"


def test_sys_exit_while_inspecting_is_a_failure_on_one_line(
    capsys: pytest.CaptureFixture[str], unruly: str
) -> None:
    code, _, err = run(capsys, "inspect", "exits-in-setup", "--group", unruly)
    assert code == 1
    assert only_line(err) == "plugyard: exits-in-setup: a plugin called sys.exit(5)"


def test_an_internal_error_is_one_line_with_its_own_exit_code(
    capsys: pytest.CaptureFixture[str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLUGYARD_DEBUG", raising=False)

    def broken(self: PluginManager) -> list[object]:
        raise RuntimeError("a bug\nin plugyard")

    monkeypatch.setattr(PluginManager, "candidates", broken)
    code, out, err = run(capsys, "list", "--group", group)
    assert (code, out) == (4, "")
    assert only_line(err) == (
        "plugyard: internal error: RuntimeError: a bug\\nin plugyard; "
        "run with PLUGYARD_DEBUG=1 for the traceback"
    )


def test_plugyard_debug_prints_the_traceback_before_the_line(
    capsys: pytest.CaptureFixture[str], unruly: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUGYARD_DEBUG", "1")
    code, _, err = run(capsys, "run", "multiline", "--group", unruly)
    assert code == 1
    assert err.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("first line\\nsecond line\\r\\x1b[31mred")' in err
    assert err.splitlines()[-1].startswith("plugyard: multiline: PluginSetupError:")
    monkeypatch.setenv("PLUGYARD_DEBUG", "0")
    assert "Traceback" not in run(capsys, "run", "multiline", "--group", unruly)[2]


def test_logs_and_warnings_while_running_are_one_line_each(
    capsys: pytest.CaptureFixture[str], group: str
) -> None:
    @register(group=group, name="chatty")
    class Chatty:
        def setup(self, ctx: PluginContext) -> None:
            self.log = ctx.logger

        def execute(self, data: object) -> object:
            self.log.warning("careful:\n%s", "really")
            self.log.info("not shown")
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("old\nway", UserWarning, stacklevel=1)
            return "ok"

        def teardown(self) -> None:
            raise OSError("teardown broke")

    code, out, err = run(capsys, "run", "chatty", "--group", group)
    assert (code, out) == (0, '"ok"\n')
    assert "Traceback" not in err
    assert err.splitlines() == [
        "plugyard: warning: careful:\\nreally",
        "plugyard: warning: UserWarning: old\\nway",
        "plugyard: error: plugin 'chatty' raised in teardown(); it is unloaded anyway: "
        "OSError: teardown broke",
    ]


# -- the same, seen from outside: python -m plugyard in a child process ----------

PLUGINS = '''
import logging
import sys


class ExitsInSetup:
    def setup(self, ctx):
        sys.exit(5)

    def execute(self, data):
        return data


class Interrupted:
    def execute(self, data):
        raise KeyboardInterrupt


class FailsInSetup:
    def setup(self, ctx):
        raise ValueError("bad\\nvalue")


class Cafe:
    """Caf\u00e9 cr\u00e8me, the summary says."""

    def execute(self, data):
        print("printed: \u00e9")
        return "\u00e9"


class Complains:
    def execute(self, data):
        raise ValueError("no caf\u00e9 today")
'''


@pytest.fixture(name="installed")
def fixture_installed(tmp_path: Path) -> dict[str, str]:
    """An environment for ``python -m plugyard`` with a distribution named ``café-plugins``."""
    site = tmp_path / "site"
    names = ["ExitsInSetup", "Interrupted", "FailsInSetup", "Cafe", "Complains"]
    write_distribution(
        site,
        "café-plugins",
        entry_points={"tests.proc": {name.lower(): f"cli_proc_plugins:{name}" for name in names}},
        files={"cli_proc_plugins.py": PLUGINS},
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGYARD_")}
    env["PYTHONPATH"] = str(site)
    return env


def plugyard(
    *argv: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run(
        [sys.executable, "-m", "plugyard", *argv],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        env=env,
        **kwargs,
    )


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["a\n", "../x"])
def test_a_bad_group_name_from_outside(bad: str) -> None:
    done = plugyard("list", "--group", bad)
    assert (done.returncode, done.stdout) == (2, "")
    assert only_line(done.stderr) == (
        f"plugyard: invalid group name {bad!r}: a group name is {NAME_RULE}"
    )


@pytest.mark.slow
def test_a_config_dir_that_is_a_file_from_outside(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    done = plugyard("list", "--group", "g", "--config-dir", str(file))
    assert done.returncode == 2
    assert only_line(done.stderr) == (
        f"plugyard: cannot use config directory {str(file)!r}: Not a directory"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv", [["list", "--group", "g"], ["list", "--group", "g", "--json"], ["--help"]]
)
def test_a_pipe_nobody_reads_exits_3_with_one_line(argv: list[str]) -> None:
    read, write = os.pipe()
    os.close(read)  # as `| head -c0` does, but before the first write
    try:
        done = plugyard(*argv, stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 3
    assert only_line(done.stderr) == "plugyard: cannot write the output: Broken pipe"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_exits_3_with_one_line() -> None:
    with Path("/dev/full").open("w") as full:
        done = plugyard("list", "--group", "g", stdout=full)
    assert done.returncode == 3
    assert only_line(done.stderr) == (
        f"plugyard: cannot write the output: {os.strerror(errno.ENOSPC)}"
    )


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX shell")
def test_a_closed_stdout_exits_3_with_one_line() -> None:
    script = 'exec "$0" -m plugyard list --group g >&-'
    done = subprocess.run(
        ["sh", "-c", script, sys.executable], capture_output=True, text=True, check=False
    )
    assert done.returncode == 3
    assert only_line(done.stderr) == "plugyard: cannot write the output: standard output is closed"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "code", "line"),
    [
        ("exitsinsetup", 1, "plugyard: exitsinsetup: loading it called sys.exit(5)"),
        ("interrupted", 130, "plugyard: interrupted"),
        (
            "failsinsetup",
            1,
            "plugyard: failsinsetup: PluginSetupError: plugin 'failsinsetup' failed in "
            "setup(): ValueError: bad\\nvalue",
        ),
    ],
)
def test_a_failing_plugin_is_one_line_from_outside(
    installed: dict[str, str], name: str, code: int, line: str
) -> None:
    """The manager's own log record of the failure is not printed as a second line."""
    done = plugyard("run", name, "--group", "tests.proc", env=installed)
    assert (done.returncode, done.stdout) == (code, "")
    assert only_line(done.stderr) == line


@pytest.mark.slow
def test_non_ascii_metadata_under_an_ascii_locale_is_escaped(installed: dict[str, str]) -> None:
    env = {**installed, "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
    listing = plugyard("list", "--group", "tests.proc", env=env)
    assert (listing.returncode, listing.stderr) == (0, "")
    assert "caf\\xe9-plugins" in listing.stdout
    shown = plugyard("inspect", "cafe", "--group", "tests.proc", env=env)
    assert (shown.returncode, shown.stderr) == (0, "")
    assert "summary:      Caf\\xe9 cr\\xe8me, the summary says." in shown.stdout
    ran = plugyard("run", "cafe", "--group", "tests.proc", env=env)
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == 'printed: \\xe9\n"\\u00e9"\n'
    failed = plugyard("run", "complains", "--group", "tests.proc", env=env)
    assert failed.returncode == 1
    assert only_line(failed.stderr) == (
        "plugyard: complains: execute() raised ValueError: no caf\\xe9 today"
    )


BROKEN_MAIN = """
import sys
import plugyard
from plugyard.cli import main
from plugyard.testing import write_distribution

def candidates(self):
    raise RuntimeError("a bug")

plugyard.PluginManager.candidates = candidates
sys.exit(main(["list", "--group", "g"]))
"""


@pytest.mark.slow
def test_plugyard_debug_shows_an_internal_error_traceback_from_outside() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PLUGYARD_DEBUG"}
    quiet = subprocess.run(
        [sys.executable, "-c", BROKEN_MAIN], capture_output=True, text=True, check=False, env=env
    )
    assert quiet.returncode == 4
    assert only_line(quiet.stderr) == (
        "plugyard: internal error: RuntimeError: a bug; run with PLUGYARD_DEBUG=1 for the traceback"
    )
    loud = subprocess.run(
        [sys.executable, "-c", BROKEN_MAIN],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PLUGYARD_DEBUG": "1"},
    )
    assert loud.returncode == 4
    assert loud.stderr.startswith("Traceback (most recent call last):")
    assert ", in candidates\nRuntimeError: a bug\n" in loud.stderr
    assert loud.stderr.splitlines()[-1] == "plugyard: internal error: RuntimeError: a bug"


# -- config set: validated by the plugin before anything is saved ---------------


@attrs.frozen
class ServerConfig:
    port: int = 8080
    host: str = "localhost"


@pytest.fixture(name="server")
def fixture_server(configured: str) -> str:
    """A plugin with a ``config_type`` whose ``configure()`` refuses ports below 1024."""

    @register(group=configured, name="server")
    class Server:
        config_type = ServerConfig

        def setup(self, ctx: PluginContext) -> None:
            self.config = typing.cast("ServerConfig", ctx.config)

        def configure(self, config: ServerConfig) -> None:
            if config.port < 1024:
                raise ValueError(f"port {config.port} needs root; use 1024 or above")
            self.config = config

        def execute(self, data: object) -> object:
            return attrs.asdict(self.config)

    @register(group=configured, name="crashes")
    class Crashes:
        config_type = ServerConfig

        def setup(self, ctx: PluginContext) -> None:
            raise RuntimeError("no socket")

    return configured


def stored(group: str, name: str) -> Path:
    return Path(os.environ["PLUGYARD_CONFIG_DIR"]) / group / f"{name}.msgpack"


def test_config_set_saves_what_the_plugin_accepts(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    assert run(capsys, "config", "set", "server", "port", "9000", "--group", server) == (0, "", "")
    code, out, _ = run(capsys, "config", "get", "server", "--group", server)
    assert (code, json.loads(out)) == (0, {"host": "localhost", "port": 9000})
    code, out, _ = run(capsys, "run", "server", "--group", server)
    assert (code, json.loads(out)) == (0, {"host": "localhost", "port": 9000})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("port", "80", ": the plugin rejected it: port 80 needs root; use 1024 or above"),
        ("port", '"high"', ", field 'port': expected int, got str 'high'"),
        (
            "colour",
            '"red"',
            ", field 'colour': unknown field 'colour'; ServerConfig has 'port', 'host'",
        ),
    ],
)
def test_config_set_refused_leaves_the_file_byte_for_byte(
    capsys: pytest.CaptureFixture[str], server: str, key: str, value: str, reason: str
) -> None:
    assert (
        run(capsys, "config", "set", "server", "host", '"example.org"', "--group", server)[0] == 0
    )
    before = stored(server, "server").read_bytes()
    code, out, err = run(capsys, "config", "set", "server", key, value, "--group", server)
    assert (code, out) == (1, "")
    assert only_line(err) == (
        f"plugyard: server: config not saved: ConfigError: config of plugin 'server'{reason}"
    )
    assert stored(server, "server").read_bytes() == before


def test_config_set_refused_creates_no_file(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    code, _, err = run(capsys, "config", "set", "server", "port", "22", "--group", server)
    assert code == 1
    assert only_line(err).startswith("plugyard: server: config not saved: ConfigError:")
    assert not stored(server, "server").exists()


def test_config_set_of_a_plugin_that_cannot_load_saves_nothing(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    code, _, err = run(capsys, "config", "set", "crashes", "port", "2000", "--group", server)
    assert code == 1
    assert only_line(err) == (
        "plugyard: crashes: config not saved: cannot load the plugin: PluginSetupError: "
        "plugin 'crashes' failed in setup(): RuntimeError: no socket"
    )
    assert not stored(server, "crashes").exists()
    assert run(capsys, "disable", "server", "--group", server)[0] == 0
    code, _, err = run(capsys, "config", "set", "server", "port", "2000", "--group", server)
    assert code == 1
    assert only_line(err) == (
        "plugyard: server: config not saved: cannot load the plugin: PluginNotActiveError: "
        "plugin 'server' is disabled; enable('server') to load it"
    )
    assert not stored(server, "server").exists()


@pytest.mark.slow
def test_config_set_refused_from_outside(tmp_path: Path) -> None:
    """The same check when plugyard runs as a command, on an installed plugin."""
    site = tmp_path / "site"
    write_distribution(
        site,
        "limits",
        entry_points={"tests.limits": {"limit": "cli_limit:Limit"}},
        files={"cli_limit.py": LIMIT_PLUGIN},
    )
    config = tmp_path / "config"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGYARD_")}
    env.update(PYTHONPATH=str(site), PLUGYARD_CONFIG_DIR=str(config), PLUGYARD_GROUP="tests.limits")
    assert plugyard("config", "set", "limit", "most", "5", env=env).returncode == 0
    before = (config / "tests.limits" / "limit.msgpack").read_bytes()
    done = plugyard("config", "set", "limit", "most", "500", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert only_line(done.stderr) == (
        "plugyard: limit: config not saved: ConfigError: config of plugin 'limit': "
        "the plugin rejected it: at most 100"
    )
    assert (config / "tests.limits" / "limit.msgpack").read_bytes() == before
    assert json.loads(plugyard("config", "get", "limit", env=env).stdout) == {"most": 5}


LIMIT_PLUGIN = """
import attrs


@attrs.frozen
class LimitConfig:
    most: int = 10


class Limit:
    config_type = LimitConfig

    def configure(self, config):
        if config.most > 100:
            raise ValueError("at most 100")
"""


# -- version, groups, metrics, graph as JSON ---------------------------------------


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"plugyard {importlib.metadata.version('plugyard')}\n")


def test_groups_counts_the_entry_points_of_every_group(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "groups-demo",
        entry_points={"tests.groups.a": {"x": "m:X", "y": "m:Y"}, "tests.groups.b": {"z": "m"}},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PLUGYARD_NO_CACHE", "1")
    code, out, _ = run(capsys, "groups", "--json")
    assert code == 0
    counts = json.loads(out)["groups"]
    assert (counts["tests.groups.a"], counts["tests.groups.b"]) == (2, 1)
    code, out, _ = run(capsys, "groups")
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()[1:]}
    assert (rows["tests.groups.a"], rows["tests.groups.b"]) == ("2", "1")


def test_graph_as_json_has_order_edges_and_failures(
    capsys: pytest.CaptureFixture[str], broken_group: str
) -> None:
    code, out, _ = run(capsys, "graph", "--group", broken_group, "--json")
    assert code == 1  # a plugin of the graph cannot start

    graph = json.loads(out)
    assert graph["order"].index("base") < graph["order"].index("upper")
    assert {
        "from": "upper",
        "to": "base",
        "range": "<2,>=1",
        "optional": False,
        "broken": False,
    } in graph["edges"]
    assert graph["failures"]["needy"].startswith("DependencyVersionError: ")
    assert run(capsys, "graph", "--group", broken_group, "--format", "json")[1] == out


def test_metrics_prints_prometheus_text_or_json(
    capsys: pytest.CaptureFixture[str], group: str
) -> None:
    code, out, _ = run(capsys, "metrics", "--group", group)
    assert code == 0
    families = {f.name for f in text_string_to_metric_families(out)}
    assert {"plugyard_plugin_calls", "plugyard_plugin_setup_duration_seconds"} <= families
    code, out, _ = run(capsys, "metrics", "--group", group, "--json")
    snapshots = json.loads(out)
    assert snapshots["upper"]["calls"] == 0
    assert snapshots["upper"]["setup_time"] is not None


def test_inspect_checks_the_interface_a_host_declares_for_the_group(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = f"tests.cli{next(_groups)}"
    write_distribution(
        tmp_path,
        "the-host",
        entry_points={"plugyard.interfaces": {group: "host_interface:Exporter"}},
        files={
            "host_interface.py": (
                "from typing import Protocol\n"
                "class Exporter(Protocol):\n"
                "    def export(self, rows, /): ...\n"
            )
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PLUGYARD_NO_CACHE", "1")

    @register(group=group, name="fits")
    class Fits:
        def export(self, rows: list[str]) -> str:
            return ""

    @register(group=group, name="misfit")
    class Misfit:
        def execute(self, data: object) -> object:
            return data

    code, out, _ = run(capsys, "inspect", "fits", "--group", group)
    assert code == 0
    assert "interface:    host_interface:Exporter (fits)\n" in out
    code, out, err = run(capsys, "inspect", "misfit", "--group", group, "--json")
    assert code == 1
    assert json.loads(out)["interface"] == {
        "name": "host_interface:Exporter",
        "fits": False,
        "problems": ["it has no method export()"],
    }
    assert only_line(err).startswith("plugyard: misfit: PluginInterfaceError: ")


def test_trust_without_a_keyring_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], group: str, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "run", "echo", "x", "--group", group, "--trust", "require")
    assert code == 2
    assert (
        only_line(err)
        == "plugyard: --trust require needs --keyring DIR: the keys to verify against"
    )
    code, _, err = run(capsys, "list", "--group", group, "--keyring", str(tmp_path / "nothing"))
    assert code == 2
    assert only_line(err).startswith(
        f"plugyard: cannot use keyring {str(tmp_path / 'nothing')!r}: "
    )


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[str, argparse.ArgumentParser]:
    """Every command the parser runs (``"config get"``, not ``"config"``), by its words."""
    found = {}
    for action in parser._actions:  # argparse lists subcommands nowhere else
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, (*prefix, name)))
            return found
    return {" ".join(prefix): parser}


#: The commands that list or show something, and so print JSON with --json.
LISTING = {"groups", "list", "inspect", "graph", "metrics", "verify", "sandbox check"}
#: The others: they act, or print one result (as JSON already where it can be).
ACTING = {
    "run",
    "reload",
    "config get",
    "config set",
    "enable",
    "disable",
    "keygen",
    "sign",
    "sandbox conformance",
    "sandbox run",
}


def test_every_listing_command_takes_json() -> None:
    from plugyard.cli._app import _parser

    commands = _commands(_parser())
    # A new command is one or the other: a listing command without --json fails here.
    assert set(commands) == LISTING | ACTING
    for name in sorted(LISTING):
        options = {o for action in commands[name]._actions for o in action.option_strings}
        assert "--json" in options, name


def test_each_listing_command_prints_json(capsys: pytest.CaptureFixture[str], group: str) -> None:
    grouped = ["--group", group]
    for argv in (
        ["groups"],
        ["list", *grouped],
        ["inspect", "upper", *grouped],
        ["graph", *grouped],
        ["metrics", *grouped],
    ):
        code, out, err = run(capsys, *argv, "--json")
        assert (code, err) == (0, ""), argv
        assert isinstance(json.loads(out), dict), argv
    # verify --json and sandbox check --json: tests/test_cli_trust.py, tests/test_cli_sandbox.py
