"""The parser, the dispatch to each command, the exit codes and the error printer.

Every failure is one line on standard error, starting ``plugyard: ``, and
ends the command with one of the exit codes below; no traceback is printed
unless ``PLUGYARD_DEBUG`` is set. Log records and warnings that plugyard or a
plugin emits while a command runs are one line each too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import stat
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from .._model import check_name
from ..exceptions import InvalidPluginError, PluginError
from ._output import (
    BYTES_PREFIX,
    CONFIG_ENV,
    DEBUG_ENV,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_USAGE,
    GROUP_ENV,
    Output,
    OutputError,
    UsageError,
    debug,
    err,
    report,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

_EPILOG = (
    f"Exit codes: {EXIT_OK} success, {EXIT_FAILED} a plugin failed, {EXIT_USAGE} a usage "
    f"error, {EXIT_OUTPUT} the output could not be written, {EXIT_INTERNAL} an internal "
    f"error, {EXIT_INTERRUPTED} interrupted. Set {DEBUG_ENV}=1 to see tracebacks."
)


class _LogLines(logging.Handler):
    """Log records as one error line each, while a command runs.

    A record that carries a :class:`PluginError` is a failure the command
    reports itself, in its own line, so it is left out rather than said twice.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(arg, PluginError) for arg in args):
            return
        try:
            message = record.getMessage()
        except Exception:  # a malformed logging call in a plugin
            message = str(record.msg)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            message = f"{message}: {type(error).__name__}: {error}"
        err(f"{record.levelname.lower()}: {message}", error)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Drop the record: logging's own report would be a traceback."""


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    err(f"warning: {category.__name__}: {message}")


@contextlib.contextmanager
def _one_line_streams() -> Iterator[None]:
    """For the command's duration: streams that escape what they cannot encode; one-line logs.

    Text the streams' encoding cannot carry (an ``é`` under ``LC_ALL=C`` or
    ``PYTHONIOENCODING=ascii``) is written as a backslash escape instead of
    failing the command. Log records and warnings become one line each.
    """
    restore: list[tuple[io.TextIOWrapper, str | None]] = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors != "backslashreplace":
            errors = stream.errors
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors="backslashreplace")
                restore.append((stream, errors))
    handler = _LogLines()
    root = logging.getLogger()
    root.addHandler(handler)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        yield
    finally:
        warnings.showwarning = shown
        root.removeHandler(handler)
        for stream, errors in restore:
            with contextlib.suppress(OSError, ValueError):
                stream.reconfigure(errors=errors)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        err(f"error: {message}")
        raise SystemExit(EXIT_USAGE)

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        if file is not None:
            super().print_help(file)
        else:  # --help: argparse would drop a failed write silently and exit 0
            Output(sys.stdout).write(self.format_help())


def _common(
    sub: argparse.ArgumentParser, *, config_dir: bool = False, plugin_dirs: bool = False
) -> None:
    sub.add_argument(
        "--group",
        "-g",
        default=os.environ.get(GROUP_ENV),
        help=f"the plugin group (default: ${GROUP_ENV})",
    )
    if plugin_dirs:
        sub.add_argument(
            "--plugin-dir",
            action="append",
            default=[],
            metavar="DIR",
            help="a directory of wheels and single-file plugins (repeat for more)",
        )
        sub.add_argument(
            "--keyring",
            type=Path,
            metavar="DIR",
            help="verify plugins before import against the keys in this directory",
        )
    if config_dir:
        sub.add_argument(
            "--config-dir",
            default=os.environ.get(CONFIG_ENV),
            help=f"the config store's directory (default: ${CONFIG_ENV})",
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="plugyard",
        description="List, inspect, graph and run plugins; check the sandbox.",
        epilog=_EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common(sub, config_dir=name != "verify", plugin_dirs=name != "verify")
        if name != "verify":
            sub.add_argument(
                "--trust",
                choices=["off", "warn", "require"],
                help="what an unverified plugin gets: refused (require, the default with "
                "--keyring), imported with a warning (warn), or no check (off)",
            )
        return sub

    from importlib.metadata import version

    parser.add_argument("--version", action="version", version=f"plugyard {version('plugyard')}")
    groups = commands.add_parser(
        "groups",
        help="List every entry-point group installed, with how many entry points each has.",
    )
    groups.add_argument("--json", action="store_true", help="print JSON")

    listing = command("list", "List the plugins of a group without importing them.")
    listing.add_argument("--json", action="store_true", help="print JSON")

    inspect = command("inspect", "Load one plugin and show what is known of it.")
    inspect.add_argument("name")
    inspect.add_argument("--json", action="store_true", help="print JSON")

    graph = command("graph", "Show the dependency graph and the load order.")
    graph.add_argument("--format", choices=["text", "dot", "mermaid", "json"], default="text")
    graph.add_argument("--json", action="store_true", help="print JSON (as --format json)")

    metrics = command("metrics", "Load a group's plugins and print their metrics.")
    metrics.add_argument("--json", action="store_true", help="print JSON, not Prometheus text")

    run = command("run", "Load a plugin with its dependencies and execute it once.")
    run.add_argument("name")
    run.add_argument(
        "data",
        nargs="?",
        help="the argument: parsed as JSON when it is valid JSON, else passed as a string",
    )
    run.add_argument("--raw", action="store_true", help="pass DATA as a string, never as JSON")

    reload = command(
        "reload", "Load a plugin, then reload it to another version, as a running process would."
    )
    reload.add_argument("name")
    reload.add_argument(
        "--to", metavar="VERSION|FILE", help="a version, or a wheel or .py file (default: newest)"
    )

    config = commands.add_parser("config", help="Read or change a plugin's stored config.")
    config_commands = config.add_subparsers(dest="action", required=True, parser_class=_Parser)
    get = config_commands.add_parser("get", help="Print a plugin's config, or one key, as JSON.")
    get.add_argument("name")
    get.add_argument("key", nargs="?")
    put = config_commands.add_parser("set", help="Set one key of a plugin's config.")
    put.add_argument("name")
    put.add_argument("key")
    put.add_argument("value", help=f"a JSON literal; bytes as a string starting {BYTES_PREFIX!r}")
    for sub in (get, put):
        _common(sub, config_dir=True)
    for name, text in (
        ("enable", "Let a plugin load again."),
        ("disable", "Keep a plugin from loading."),
    ):
        toggle = commands.add_parser(name, help=text, description=text)
        toggle.add_argument("name")
        _common(toggle, config_dir=True)

    env_help = "read the private key's passphrase from this environment variable"
    keygen = commands.add_parser("keygen", help="Create an Ed25519 key pair for signing.")
    keygen.add_argument("--out", required=True, type=Path, help="the directory to write to")
    keygen.add_argument("--id", dest="key_name", default="plugyard", help="the files' name")
    keygen.add_argument("--passphrase-env", metavar="VAR", help=env_help)

    sign = commands.add_parser(
        "sign",
        help="Sign a wheel, or a single-file plugin (FILE.py.sig); again, with another key, "
        "to add a signature.",
    )
    sign.add_argument("wheel", type=Path, metavar="WHEEL|FILE.py")
    sign.add_argument("--key", required=True, type=Path, help="the private key (PEM)")
    sign.add_argument(
        "--out",
        help="the signed wheel's path, or a directory (created when the path ends with /); "
        "by default the wheel is replaced",
    )
    sign.add_argument("--passphrase-env", metavar="VAR", help=env_help)

    verify = command(
        "verify", "Verify a wheel, a single-file plugin, an installed distribution, or a group's."
    )
    verify.add_argument(
        "target", nargs="?", help="a .whl or .py file, or an installed distribution"
    )
    keys = verify.add_mutually_exclusive_group(required=True)
    keys.add_argument("--keyring", type=Path, help="a directory of trusted public keys")
    keys.add_argument("--key", type=Path, help="one trusted public key (PEM)")
    verify.add_argument("--json", action="store_true", help="print JSON")

    sandbox = commands.add_parser("sandbox", help="The sandbox: its layers, a plugin's protocol.")
    actions = sandbox.add_subparsers(dest="action", required=True, parser_class=_Parser)
    check = actions.add_parser("check", help="Show the isolation layers this machine offers.")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument(
        "--require", nargs="+", metavar="LAYER", help="fail unless these layers are available"
    )
    conform = actions.add_parser(
        "conformance", help="Check that a command speaks the sandbox protocol."
    )
    env_help = "add NAME=VALUE to the plugin's scrubbed environment (repeatable)"
    conform.add_argument("--env", "-e", action="append", metavar="NAME=VALUE", help=env_help)
    conform.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    run_one = actions.add_parser("run", help="Run a command as a sandboxed plugin, execute once.")
    run_one.add_argument("--data", help="the argument: JSON when it is valid JSON, else a string")
    run_one.add_argument("--name", default="plugin", help="the plugin's name (default: plugin)")
    run_one.add_argument("--env", "-e", action="append", metavar="NAME=VALUE", help=env_help)
    run_one.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Every failure is reported as one line on stderr and turned into an exit
    code; nothing is raised, not even for ``--help`` or a usage error.
    """
    with _one_line_streams():
        out = Output(sys.stdout)
        code = _main(argv, out)
        if code != EXIT_OUTPUT:  # else reported already
            try:
                out.flush()
            except OutputError as exc:
                code = _output_failed(exc)
    return code


def _main(argv: Sequence[str] | None, out: Output) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except OutputError as exc:  # writing --help
        return _output_failed(exc)
    try:
        return _dispatch(args, out)
    except UsageError as exc:
        err(str(exc))
        return EXIT_USAGE
    except OutputError as exc:
        return _output_failed(exc)
    except PluginError as exc:  # one the command leaves to here, such as an unreadable store
        if exc.plugin is not None:
            report(exc.plugin, exc)
        else:
            err(f"{type(exc).__name__}: {exc}", exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # only plugin code runs here that could raise it
        name = getattr(args, "name", None)
        err(f"{name + ': ' if name else ''}a plugin called sys.exit({exc.code!r})", exc)
        return EXIT_FAILED
    except BaseException as exc:
        hint = "" if debug() else f"; run with {DEBUG_ENV}=1 for the traceback"
        err(f"internal error: {type(exc).__name__}: {exc}{hint}", exc)
        return EXIT_INTERNAL


def _output_failed(error: OutputError) -> int:
    err(f"cannot write the output: {error}")
    # What could not be written stays buffered, and Python flushes it again
    # at exit, which would fail again ("Exception ignored ..."): point the
    # file descriptor at devnull, as the Python docs on SIGPIPE do.
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_OUTPUT


def _dispatch(args: argparse.Namespace, out: Output) -> int:
    command = args.command
    if command == "sandbox":
        # The sandbox's machinery (msgpack, ctypes) is imported only for it.
        from . import _sandbox

        if args.action == "check" and args.require:
            _check_layers(args.require)
        return _sandbox.command(args, out)
    if command in ("keygen", "sign", "verify"):
        # Only these need cryptography: imported when used.
        from . import _trust

        if command == "verify" and args.target is None:
            _check_group(
                args, f"verify needs a wheel, a distribution, or --group (or ${GROUP_ENV})"
            )
        handlers = {"keygen": _trust.keygen, "sign": _trust.sign, "verify": _trust.verify}
        return handlers[command](args, out)
    if command == "groups":
        from . import _plugins

        return _plugins.groups(args, out)
    _check_group(args, f"no group: pass --group or set ${GROUP_ENV}")
    if getattr(args, "config_dir", None):
        _check_config_dir(args.config_dir)
    if getattr(args, "name", None) is not None:
        _check_name(args.name, "plugin name")
    if command in ("config", "enable", "disable"):
        from ._config import configure

        return configure(args, out)
    from . import _plugins

    return _plugins.run_command(args, out)


def _check_layers(names: Sequence[str]) -> None:
    from ..runtime import LAYERS

    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise UsageError(f"unknown layers {unknown}; the layers are {', '.join(LAYERS)}")


def _check_group(args: argparse.Namespace, missing: str) -> None:
    group = args.group
    if not group:
        raise UsageError(missing)
    _check_name(group, "group name")


def _check_name(value: str, what: str) -> None:
    """Refuse a name plugyard would refuse, before anything is built from it."""
    try:
        check_name(value, what=what)
    except InvalidPluginError as exc:
        raise UsageError(f"invalid {what} {value!r}: {exc.reason}") from None


def _check_config_dir(directory: str) -> None:
    """Refuse a config directory that cannot be one, before any plugin is touched.

    A directory that does not exist yet is fine: it is created on the first save.
    """
    try:
        mode = Path(directory).stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:  # a file on the way, a symlink loop, no permission
        raise UsageError(
            f"cannot use config directory {directory!r}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISDIR(mode):
        raise UsageError(f"cannot use config directory {directory!r}: Not a directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise UsageError(f"cannot use config directory {directory!r}: Permission denied")
