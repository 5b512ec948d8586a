"""The commands that work on plugins: ``list``, ``inspect``, ``graph``, ``run`` and ``reload``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
from typing import Any

from .. import Candidate, PluginInfo, PluginManager, PluginState, TrustPolicy
from .._discovery import entry_points, read_index
from .._policy import Mode
from .._registry import origin_of
from .._value import asdict
from ..exceptions import InvalidKeyError, PluginError, PluginInterfaceError
from ._output import EXIT_FAILED, EXIT_OK, Output, UsageError, err, report


def run_command(args: argparse.Namespace, out: Output) -> int:
    """Run ``list``, ``inspect``, ``graph``, ``run``, ``metrics`` or ``reload`` with a manager."""
    handler = {
        "list": list_plugins,
        "inspect": inspect,
        "graph": graph,
        "run": run,
        "metrics": metrics,
        "reload": reload,
    }[args.command]
    interface = _declared_interface(args.group) if args.command == "inspect" else None
    with PluginManager(
        group=args.group,
        config=args.config_dir or None,
        plugin_dirs=args.plugin_dir or None,
        interface=interface,
        trust=_trust_policy(args),
    ) as manager:
        return handler(manager, args, out)


def _trust_policy(args: argparse.Namespace) -> TrustPolicy | None:
    """The policy ``--keyring`` and ``--trust`` ask for; ``None`` checks nothing."""
    mode: Mode = args.trust or ("require" if args.keyring else "off")
    if mode == "off":
        return None
    if args.keyring is None:
        raise UsageError(f"--trust {mode} needs --keyring DIR: the keys to verify against")
    from ..trust import Keyring

    try:
        keyring = Keyring.from_directory(args.keyring)
    except (OSError, InvalidKeyError) as exc:
        raise UsageError(f"cannot use keyring {str(args.keyring)!r}: {exc}") from None
    return TrustPolicy(mode=mode, keyring=keyring)


#: The entry-point group where a host declares the interface of its plugin
#: groups: ``<plugin group> = module:Protocol``.
INTERFACES = "plugyard.interfaces"


def _declared_interface(group: str) -> type[Any] | None:
    """The interface a host declares for ``group`` under ``plugyard.interfaces``, imported."""
    declared = [ep for ep in entry_points(INTERFACES) if ep.name == group]
    if not declared:
        return None
    ep = declared[0]
    try:
        found: Any = importlib.import_module(ep.module)
        for part in (ep.attr or "").split("."):
            found = getattr(found, part)
    except Exception as exc:
        raise UsageError(
            f"the interface of group {group!r} declared by {ep.distribution} "
            f"({ep.value}) cannot be imported: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(found, type):
        raise UsageError(f"the interface of group {group!r} ({ep.value}) is not a class")
    return found


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    return {
        "name": candidate.name,
        "version": candidate.version,
        "distribution": candidate.distribution,
        "value": candidate.value,
        "kind": candidate.kind,
        "state": candidate.state.value,
        "enabled": candidate.enabled,
        "location": candidate.location,
        "chosen": candidate.chosen,
        "why": candidate.why,
    }


def list_plugins(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
    candidates = manager.candidates()
    if args.json:
        json.dump(
            {"group": manager.group, "plugins": [_candidate_json(c) for c in candidates]},
            out,
            indent=2,
        )
        out.write("\n")
    else:
        # Where a plugin has several versions, a column says which is chosen and why.
        choices = any(c.why for c in candidates)
        rows = [("NAME", "VERSION", "DISTRIBUTION", "STATE", *(("CHOSEN",) if choices else ()))]
        rows += [
            (
                c.name,
                c.version,
                c.distribution or f"({c.value})",
                c.state.value + ("" if c.enabled else " (disabled)"),
                *((("yes: " if c.chosen else "no: ") + c.why if c.why else "",) if choices else ()),
            )
            for c in candidates
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
            out.write(line.rstrip() + "\n")
    errors = manager.errors()
    for name, error in errors.items():
        report(name, error)
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


def inspect(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
    name = args.name
    try:
        manager.load(name)
    except PluginError as exc:
        if exc.plugin is None or name not in manager.states():
            report(name, exc)
            return EXIT_FAILED
    info = manager.info(name)
    state = manager.states()[name]
    error = manager.errors().get(name)
    data = _info_json(info, state, error)
    interface = manager.interface
    if interface is not None:
        wrong = list(error.problems) if isinstance(error, PluginInterfaceError) else []
        data["interface"] = {"name": origin_of(interface), "fits": not wrong, "problems": wrong}
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
        if interface is not None:
            fits = "fits" if data["interface"]["fits"] else "does not fit"
            out.write(f"{'interface:':<14}{data['interface']['name']} ({fits})\n")
    if error is not None:
        report(name, error)
        return EXIT_FAILED
    return EXIT_OK


def groups(args: argparse.Namespace, out: Output) -> int:
    """Every entry-point group on ``sys.path``, with how many entry points each has."""
    counts = read_index().groups()
    if args.json:
        json.dump({"groups": {g: counts[g] for g in sorted(counts)}}, out, indent=2)
        out.write("\n")
    else:
        width = max((len(g) for g in counts), default=5)
        out.write(f"{'GROUP':<{width}}  ENTRY POINTS\n")
        for group in sorted(counts):
            out.write(f"{group:<{width}}  {counts[group]}\n")
    return EXIT_OK


def metrics(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
    """Load the group's plugins; print their metrics (import and setup times, calls so far)."""
    manager.load_all()
    snapshots = manager.metrics()
    if args.json:
        document = {
            name: {**asdict(s), "versions": dict(s.versions)} for name, s in snapshots.items()
        }
        json.dump(document, out, indent=2)
        out.write("\n")
        return EXIT_OK
    try:
        from ..prometheus import to_prometheus
    except ImportError:
        raise UsageError(
            "Prometheus text needs prometheus_client: pip install 'plugyard[prometheus]', "
            "or pass --json"
        ) from None
    out.write(to_prometheus(snapshots))
    return EXIT_OK


def graph(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
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

    if args.json or args.format == "json":
        document = {
            "group": manager.group,
            "order": list(plan.order),
            "plugins": {
                n: {"version": str(i.version), "state": states[n].value} for n, i in infos.items()
            },
            "edges": [
                {"from": n, "to": d, "range": spec, "optional": opt, "broken": broken(n, d)}
                for n, d, spec, opt in edges
            ],
            "failures": {n: f"{type(e).__name__}: {e}" for n, e in sorted(failed.items())},
        }
        json.dump(document, out, indent=2)
        out.write("\n")
    elif args.format == "dot":
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
        report(name, failed[name])
    return EXIT_FAILED if failed else EXIT_OK


def _names(error: BaseException, dep: str) -> bool:
    """Whether a dependency error is about ``dep``."""
    return dep in (getattr(error, "dependency", None), getattr(error, "missing", None)) or (
        dep in getattr(error, "cycle", ())
    )


def run(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
    name = args.name
    data: Any = args.data
    if data is not None and not args.raw:
        with contextlib.suppress(ValueError):  # not JSON: DATA is the string itself
            data = json.loads(data)
    try:
        handle = manager.load(name)
    except PluginError as exc:
        report(name, exc)
        return EXIT_FAILED
    except SystemExit as exc:  # from a setup(): the plugin's failure, not a reason to stop
        err(f"{name}: loading it called sys.exit({exc.code!r})", exc)
        return EXIT_FAILED
    try:
        result = handle.execute(data)
    except PluginError as exc:
        report(name, exc)
        return EXIT_FAILED
    except SystemExit as exc:
        err(f"{name}: execute() called sys.exit({exc.code!r})", exc)
        return EXIT_FAILED
    except Exception as exc:
        err(f"{name}: execute() raised {type(exc).__name__}: {exc}", exc)
        return EXIT_FAILED
    try:
        shown = _shown(result)
    except Exception as exc:  # the result's own __repr__ raised
        err(f"{name}: its result cannot be shown: {type(exc).__name__}: {exc}", exc)
        return EXIT_FAILED
    out.write(shown + "\n")
    return EXIT_OK


def reload(manager: PluginManager, args: argparse.Namespace, out: Output) -> int:
    """Load a plugin, then reload it: whether the new version would take over in place."""
    name = args.name
    try:
        manager.load(name)
        event = manager.reload(name, args.to)
    except PluginError as exc:
        report(name, exc)
        return EXIT_FAILED
    if event is None:
        out.write(f"{name} {manager.info(name).version} is active already\n")
    else:
        out.write(f"reloaded {name} {event.old_version} -> {event.new_version}\n")
    return EXIT_OK


def _shown(result: Any) -> str:
    """The result as JSON when it can be, else its ``repr``."""
    try:
        return json.dumps(result)
    except (TypeError, ValueError, RecursionError):
        return repr(result)
