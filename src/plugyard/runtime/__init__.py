"""The sandbox: plugins in a supervised child process, in any language.

A plugin runs isolated when the manager is asked to
(``PluginManager(isolation="process")``, for the group or by plugin name),
when its entry point says so (``name = pkg.mod:Plugin [sandbox]``), when the
trust policy sends unsigned plugins there (``TrustPolicy(untrusted="sandbox")``),
or when it is an :func:`external` command. The protocol it speaks is
msgpack-RPC over fds 3 and 4, specified in ``docs/protocol.md``.
"""

from __future__ import annotations

from .._public import present_as
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

present_as(__name__, globals(), __all__)
