"""The ``plugyard`` command: list, inspect, graph and run plugins; make keys, sign, verify.

Exit codes: 0 success, 1 a plugin failed, 2 a usage error. Errors go to
stderr, one line each, naming the plugin. ``--json`` output is documented in
the CLI reference and kept stable.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._candidate import Candidate
from ._configtypes import plain as _plain
from ._manager import PluginManager
from ._model import PluginInfo, PluginState
from .exceptions import PluginError

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
            from . import _cli_trust

            handlers = {"keygen": _cli_trust.keygen, "sign": _cli_trust.sign}
            if args.command in handlers:
                return handlers[args.command](args, sys.stdout)
            if args.target is None and not args.group:
                _err(f"verify needs a wheel, a distribution, or --group (or ${GROUP_ENV})")
                return EXIT_USAGE
            return _cli_trust.verify(args, sys.stdout)
        if not args.group:
            _err(f"no group: pass --group or set ${GROUP_ENV}")
            return EXIT_USAGE
        if args.command in ("config", "enable", "disable"):
            return _configure(args, sys.stdout)
        handler = {"list": _list, "inspect": _inspect, "graph": _graph, "run": _run}[args.command]
        config = getattr(args, "config_dir", None)
        with PluginManager(group=args.group, config=config) as manager:
            return handler(manager, args, sys.stdout)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours.
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - replaces a closed stdout
        return EXIT_OK


def _err(message: str) -> None:
    print(f"plugyard: {message}", file=sys.stderr)


def _error_line(name: str, error: BaseException) -> str:
    return f"{name}: {type(error).__name__}: {error}"


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    return {
        "name": candidate.name,
        "version": candidate.version,
        "distribution": candidate.distribution,
        "value": candidate.value,
        "kind": candidate.kind,
        "state": candidate.state.value,
        "enabled": candidate.enabled,
    }


def _list(manager: PluginManager, args: argparse.Namespace, out: TextIO) -> int:
    candidates = manager.candidates()
    if args.json:
        json.dump(
            {"group": manager.group, "plugins": [_candidate_json(c) for c in candidates]},
            out,
            indent=2,
        )
        out.write("\n")
    else:
        rows = [("NAME", "VERSION", "DISTRIBUTION", "STATE")]
        rows += [
            (
                c.name,
                c.version,
                c.distribution or f"({c.value})",
                c.state.value + ("" if c.enabled else " (disabled)"),
            )
            for c in candidates
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            out.write("\n")
    errors = manager.errors()
    for name, error in errors.items():
        _err(_error_line(name, error))
    return EXIT_FAILED if errors else EXIT_OK


def _info_json(info: PluginInfo, state: PluginState, error: BaseException | None) -> dict[str, Any]:
    return {
        "name": info.name,
        "group": info.group,
        "version": str(info.version),
        "distribution": info.distribution,
        "origin": info.origin,
        "summary": info.summary,
        "depends_on": [
            {"name": d.name, "specifier": str(d.specifier), "optional": d.optional}
            for d in info.depends_on
        ],
        "state": state.value,
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
    }


def _inspect(manager: PluginManager, args: argparse.Namespace, out: TextIO) -> int:
    name = args.name
    try:
        manager.load(name)
    except PluginError as exc:
        if exc.plugin is None or name not in manager.states():
            _err(_error_line(name, exc))
            return EXIT_FAILED
    info = manager.info(name)
    state = manager.states()[name]
    error = manager.errors().get(name)
    data = _info_json(info, state, error)
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        deps = ", ".join(
            f"{d['name']}{d['specifier'] or ' (any)'}{' (optional)' if d['optional'] else ''}"
            for d in data["depends_on"]
        )
        for label, value in [
            ("name", info.name),
            ("group", info.group),
            ("version", data["version"]),
            ("distribution", info.distribution or "-"),
            ("origin", info.origin),
            ("summary", info.summary or "-"),
            ("depends on", deps or "-"),
            ("state", state.value),
        ]:
            out.write(f"{label + ':':<14}{value}\n")
    if error is not None:
        _err(_error_line(name, error))
        return EXIT_FAILED
    return EXIT_OK


def _graph(manager: PluginManager, args: argparse.Namespace, out: TextIO) -> int:
    plan = manager.plan()
    states = manager.states()
    infos = {name: manager.info(name) for name in states}
    failed: dict[str, BaseException] = dict(plan.failures)
    failed.update(manager.errors())
    edges = [
        (name, dep.name, str(dep.specifier), dep.optional)
        for name in sorted(infos)
        for dep in infos[name].depends_on
    ]

    def broken(name: str, dep: str) -> bool:
        return name in failed and _names(failed[name], dep)

    if args.format == "dot":
        out.write(f'digraph "{manager.group}" {{\n  rankdir=BT;\n')
        for name in sorted(infos):
            style = ", color=red, fontcolor=red" if name in failed else ""
            out.write(f'  "{name}" [label="{name} {infos[name].version}"{style}];\n')
        for name, dep, spec, optional in edges:
            attrs = [f'label="{spec}"'] if spec else []
            if optional:
                attrs.append("style=dashed")
            if broken(name, dep):
                attrs.append("color=red")
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            out.write(f'  "{name}" -> "{dep}"{suffix};\n')
        out.write("}\n")
    elif args.format == "mermaid":
        out.write("graph BT\n")
        ids = {name: f"n{i}" for i, name in enumerate(sorted({*infos, *(e[1] for e in edges)}))}
        for name, node in ids.items():
            version = f" {infos[name].version}" if name in infos else " (missing)"
            out.write(f'  {node}["{name}{version}"]\n')
        for name, dep, spec, optional in edges:
            arrow = "-.->" if optional else "-->"
            label = f"|{spec}|" if spec else ""
            if broken(name, dep):
                label = f"|{spec + ' ' if spec else ''}FAILED|"
            out.write(f"  {ids[name]} {arrow}{label} {ids[dep]}\n")
        for name in sorted(failed):
            if name in ids:
                out.write(f"  style {ids[name]} stroke:#d00,color:#d00\n")
    else:
        out.write("dependencies:\n")
        for name, dep, spec, optional in edges:
            mark = "  [FAILED]" if broken(name, dep) else ""
            opt = " (optional)" if optional else ""
            out.write(f"  {name} -> {dep}{spec}{opt}{mark}\n")
        out.write("load order:\n")
        active = [n for n, s in states.items() if s is PluginState.ACTIVE]
        for i, name in enumerate([*active, *plan.order], 1):
            out.write(f"  {i}. {name} {infos[name].version}\n")
        if failed:
            out.write("failed:\n")
            for name in sorted(failed):
                out.write(f"  {name}: {failed[name]}\n")
    for name in sorted(failed):
        _err(_error_line(name, failed[name]))
    return EXIT_FAILED if failed else EXIT_OK


def _names(error: BaseException, dep: str) -> bool:
    """Whether a dependency error is about ``dep``."""
    return dep in (getattr(error, "dependency", None), getattr(error, "missing", None)) or (
        dep in getattr(error, "cycle", ())
    )


def _run(manager: PluginManager, args: argparse.Namespace, out: TextIO) -> int:
    data: Any = args.data
    if data is not None and not args.raw:
        with contextlib.suppress(ValueError):  # not JSON: DATA is the string itself
            data = json.loads(data)
    try:
        handle = manager.load(args.name)
        result = handle.execute(data)
    except PluginError as exc:
        _err(_error_line(args.name, exc))
        return EXIT_FAILED
    except Exception as exc:
        _err(f"{args.name}: execute() raised {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    try:
        out.write(json.dumps(result) + "\n")
    except (TypeError, ValueError):
        out.write(f"{result!r}\n")
    return EXIT_OK


def _to_json(value: Any) -> Any:
    """Config values as JSON: bytes become ``BYTES_PREFIX`` + base64."""
    if isinstance(value, bytes):
        return BYTES_PREFIX + base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(BYTES_PREFIX):
        return base64.b64decode(value[len(BYTES_PREFIX) :], validate=True)
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _configure(args: argparse.Namespace, out: TextIO) -> int:
    if not args.config_dir:
        _err(f"no config directory: pass --config-dir or set ${CONFIG_ENV}")
        return EXIT_USAGE
    action = args.command if args.command != "config" else args.action
    if action == "set":
        try:
            value = _from_json(json.loads(args.value))
        except (ValueError, binascii.Error) as exc:
            _err(f"{args.name}: VALUE is not a JSON literal (or bad base64): {exc}")
            return EXIT_USAGE
    with PluginManager(group=args.group, config=args.config_dir) as manager:
        try:
            if action == "enable":
                manager.enable(args.name)
            elif action == "disable":
                manager.disable(args.name)
            elif action == "set":
                current = dict(_plain(manager.config(args.name)))
                current[args.key] = value
                manager.configure(args.name, current)
            else:
                config = _plain(manager.config(args.name))
                if args.key is not None and args.key not in config:
                    _err(f"{args.name}: no key {args.key!r} in its config")
                    return EXIT_FAILED
                shown = config if args.key is None else config[args.key]
                out.write(json.dumps(_to_json(shown), indent=2, sort_keys=True) + "\n")
        except PluginError as exc:
            _err(_error_line(args.name, exc))
            return EXIT_FAILED
    return EXIT_OK
