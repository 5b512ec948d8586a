"""The commands that change what is stored: ``config get``/``set``, ``enable``, ``disable``."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .. import PluginManager
from .._configstore import unstructure
from ..exceptions import PluginError
from ._app import BYTES_PREFIX, CONFIG_ENV, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Output, err, report


def _plain(config: Any) -> dict[str, Any]:
    """A config as a plain dict: a mapping as it is, a ``config_type`` instance unstructured."""
    if isinstance(config, Mapping):
        return dict(config)
    return unstructure(config)


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
                    err(f"{args.name}: no key {args.key!r} in its config")
                    return EXIT_FAILED
                shown = config if args.key is None else config[args.key]
                out.write(json.dumps(_to_json(shown), indent=2, sort_keys=True) + "\n")
        except PluginError as exc:
            report(args.name, exc)
            return EXIT_FAILED
    return EXIT_OK
