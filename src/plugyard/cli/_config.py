"""The commands that change what is stored: ``config get``/``set``, ``enable``, ``disable``."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .. import PluginManager
from .._configtypes import plain
from ..exceptions import PluginError
from ._output import (
    BYTES_PREFIX,
    CONFIG_ENV,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    err,
    report,
)


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


def configure(args: argparse.Namespace, out: Output) -> int:
    """Run ``config get``, ``config set``, ``enable`` or ``disable``."""
    if not args.config_dir:
        err(f"no config directory: pass --config-dir or set ${CONFIG_ENV}")
        return EXIT_USAGE
    action = args.command if args.command != "config" else args.action
    if action == "set":
        try:
            value = _from_json(json.loads(args.value))
        except (ValueError, binascii.Error) as exc:
            err(f"{args.name}: VALUE is not a JSON literal (or bad base64): {exc}")
            return EXIT_USAGE
    with PluginManager(group=args.group, config=args.config_dir) as manager:
        if action == "set":
            return _set(manager, args.name, args.key, value)
        try:
            if action == "enable":
                manager.enable(args.name)
            elif action == "disable":
                manager.disable(args.name)
            else:
                config = plain(manager.config(args.name))
                if args.key is not None and args.key not in config:
                    err(f"{args.name}: no key {args.key!r} in its config")
                    return EXIT_FAILED
                shown = config if args.key is None else config[args.key]
                out.write(json.dumps(_to_json(shown), indent=2, sort_keys=True) + "\n")
        except PluginError as exc:
            report(args.name, exc)
            return EXIT_FAILED
    return EXIT_OK


def _set(manager: PluginManager, name: str, key: str, value: Any) -> int:
    """Change one key of plugin ``name``'s config, saved only if the plugin accepts it.

    The plugin is loaded first, set up with the config it has now, so that
    :meth:`PluginManager.configure` validates the new one into its
    ``config_type`` and hands it to its own ``configure`` check; the store
    is written only when both pass. The caller's ``with`` shuts it down.
    """
    try:
        manager.load(name)
    except PluginError as exc:
        err(f"{name}: config not saved: cannot load the plugin: {type(exc).__name__}: {exc}", exc)
        return EXIT_FAILED
    config = plain(manager.config(name))
    config[key] = value
    try:
        manager.configure(name, config)
    except PluginError as exc:
        err(f"{name}: config not saved: {type(exc).__name__}: {exc}", exc)
        return EXIT_FAILED
    return EXIT_OK
