"""The parser, the dispatch to each command, the exit codes and the error printer."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .. import PluginManager

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
GROUP_ENV = "PLUGYARD_GROUP"
CONFIG_ENV = "PLUGYARD_CONFIG_DIR"
#: How ``config get`` shows bytes and ``config set`` reads them: the prefix, then base64.
BYTES_PREFIX = "base64:"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"plugyard: error: {message}\n")


def _common(sub: argparse.ArgumentParser, *, config_dir: bool = False) -> None:
    sub.add_argument(
        "--group",
        "-g",
        default=os.environ.get(GROUP_ENV),
        help=f"the plugin group (default: ${GROUP_ENV})",
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
        description="List, inspect, graph and run plugins.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common(sub, config_dir=name != "verify")
        return sub

    listing = command("list", "List the plugins of a group without importing them.")
    listing.add_argument("--json", action="store_true", help="print JSON")

    inspect = command("inspect", "Load one plugin and show what is known of it.")
    inspect.add_argument("name")
    inspect.add_argument("--json", action="store_true", help="print JSON")

    graph = command("graph", "Show the dependency graph and the load order.")
    graph.add_argument("--format", choices=["text", "dot", "mermaid"], default="text")

    run = command("run", "Load a plugin with its dependencies and execute it once.")
    run.add_argument("name")
    run.add_argument(
        "data",
        nargs="?",
        help="the argument: parsed as JSON when it is valid JSON, else passed as a string",
    )
    run.add_argument("--raw", action="store_true", help="pass DATA as a string, never as JSON")

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

    sign = commands.add_parser("sign", help="Sign a wheel (again, with another key, to add one).")
    sign.add_argument("wheel", type=Path)
    sign.add_argument("--key", required=True, type=Path, help="the private key (PEM)")
    sign.add_argument(
        "--out",
        help="the signed wheel's path, or a directory (created when the path ends with /); "
        "by default the wheel is replaced",
    )
    sign.add_argument("--passphrase-env", metavar="VAR", help=env_help)

    verify = command("verify", "Verify a wheel, an installed distribution, or a group's.")
    verify.add_argument("target", nargs="?", help="a .whl file or an installed distribution")
    keys = verify.add_mutually_exclusive_group(required=True)
    keys.add_argument("--keyring", type=Path, help="a directory of trusted public keys")
    keys.add_argument("--key", type=Path, help="one trusted public key (PEM)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command in ("keygen", "sign", "verify"):
            # Only these need cryptography: imported when used.
            from . import _trust

            handlers = {"keygen": _trust.keygen, "sign": _trust.sign}
            if args.command in handlers:
                return handlers[args.command](args, sys.stdout)
            if args.target is None and not args.group:
                err(f"verify needs a wheel, a distribution, or --group (or ${GROUP_ENV})")
                return EXIT_USAGE
            return _trust.verify(args, sys.stdout)
        if not args.group:
            err(f"no group: pass --group or set ${GROUP_ENV}")
            return EXIT_USAGE
        if args.command in ("config", "enable", "disable"):
            from ._config import configure

            return configure(args, sys.stdout)
        from . import _plugins

        handler = {
            "list": _plugins.list_plugins,
            "inspect": _plugins.inspect,
            "graph": _plugins.graph,
            "run": _plugins.run,
        }[args.command]
        config = getattr(args, "config_dir", None)
        with PluginManager(group=args.group, config=config) as manager:
            return handler(manager, args, sys.stdout)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours.
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - replaces a closed stdout
        return EXIT_OK


def err(message: str) -> None:
    """Print one error line on stderr."""
    print(f"plugyard: {message}", file=sys.stderr)


def error_line(name: str, error: BaseException) -> str:
    """``NAME: ErrorType: message``, the shape of a plugin's error line."""
    return f"{name}: {type(error).__name__}: {error}"
