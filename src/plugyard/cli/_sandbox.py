"""The ``sandbox check``, ``sandbox conformance`` and ``sandbox run`` commands."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from ..exceptions import PluginError
from ..runtime import Sandbox, _conformance as conformance, probe
from ._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Output, err


def command(args: argparse.Namespace, out: Output) -> int:
    """Dispatch ``plugyard sandbox ACTION``."""
    if args.action == "check":
        return check(args, out)
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        err(f"sandbox {args.action} needs a command after --")
        return EXIT_USAGE
    env = {}
    for item in args.env or ():
        name, equals, value = item.partition("=")
        if not equals or not name:
            err(f"--env takes NAME=VALUE, not {item!r}")
            return EXIT_USAGE
        env[name] = value
    if args.action == "conformance":
        return conform(argv, env, out)
    return run(argv, env, args, out)


def check(args: argparse.Namespace, out: Output) -> int:
    """Print every isolation layer and whether this machine offers it."""
    layers = probe()
    if args.json:
        json.dump([{"layer": x.name, "available": x.available, "detail": x.detail} for x in layers],
                  out, indent=2)  # fmt: skip
        out.write("\n")
    else:
        width = max(len(x.name) for x in layers)
        for layer in layers:
            mark = "yes" if layer.available else "no "
            out.write(f"{layer.name:<{width}}  {mark}  {layer.detail}\n")
    found = {x.name: x for x in layers}
    missing = [name for name in args.require or () if not found[name].available]
    for name in missing:
        err(f"required layer {name} is not available: {found[name].detail}")
    return EXIT_FAILED if missing else EXIT_OK


def conform(argv: list[str], env: dict[str, str], out: Output) -> int:
    """Run the conformance checks against ``argv``; one line per check."""
    checks = conformance.run(argv, env=env)
    for item in checks:
        out.write(f"{'ok  ' if item.ok else 'FAIL'}  {item.name}: {item.detail}\n")
    failed = [c for c in checks if not c.ok]
    passed = len(checks) - len(failed)
    out.write(f"{passed} passed, {len(failed)} failed\n")
    return EXIT_FAILED if failed else EXIT_OK


def run(argv: list[str], env: dict[str, str], args: argparse.Namespace, out: Output) -> int:
    """Start ``argv`` in the sandbox, call its ``execute`` once, print the result."""
    from .._manager import PluginManager
    from .._registry import Registry
    from ..runtime import external

    data: Any = args.data
    if data is not None:
        with contextlib.suppress(ValueError):  # not JSON: DATA is the string itself
            data = json.loads(data)
    registry = Registry("plugyard.sandbox")
    plugin = external(conformance.absolute(argv), env=env, readable=conformance.readable_dirs(argv))
    registry.register(plugin, name=args.name)
    with PluginManager(registry, entry_points=False, sandbox=Sandbox()) as manager:
        try:
            result = manager.execute(args.name, data)
        except PluginError as exc:
            err(f"{args.name}: {type(exc).__name__}: {exc}", exc)
            return EXIT_FAILED
    try:
        out.write(json.dumps(result) + "\n")
    except (TypeError, ValueError):
        out.write(repr(result) + "\n")
    return EXIT_OK
