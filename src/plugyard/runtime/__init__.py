"""The sandbox: plugins in a supervised child process, in any language.

A plugin runs isolated when the manager is asked to
(``PluginManager(isolation="process")``, for the group or by plugin name),
when its entry point says so (``name = pkg.mod:Plugin [sandbox]``), when the
trust policy sends unsigned plugins there (``TrustPolicy(untrusted="sandbox")``),
or when it is an :func:`external` command. The protocol it speaks is
msgpack-RPC over fds 3 and 4, specified in ``docs/protocol.md``.

The names are imported on first use: the plugin side
(``python -m plugyard.worker``) needs none of the host's machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._public import import_on_first_use

if TYPE_CHECKING:
    from ._host import Command, SandboxedPlugin, external
    from ._isolation import LAYERS, Layer, Sandbox, probe
    from ._protocol import Codes, Limits

__all__ = [
    "LAYERS",
    "Codes",
    "Command",
    "Layer",
    "Limits",
    "Sandbox",
    "SandboxedPlugin",
    "external",
    "probe",
]

_HOMES = {
    "Command": "_host",
    "SandboxedPlugin": "_host",
    "external": "_host",
    "LAYERS": "_isolation",
    "Layer": "_isolation",
    "Sandbox": "_isolation",
    "probe": "_isolation",
    "Codes": "_protocol",
    "Limits": "_protocol",
}


__getattr__, __dir__ = import_on_first_use(__name__, globals(), _HOMES)
