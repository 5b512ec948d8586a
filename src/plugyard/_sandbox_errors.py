"""The errors of the sandbox: isolated plugins in child processes (see :mod:`plugyard.runtime`).

They are part of :mod:`plugyard.exceptions`, which re-exports them; they live
here to keep that module to one screenful of concepts each.
"""

from __future__ import annotations

from ._errorbase import PluginError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import typing
    from collections.abc import Sequence


class SandboxError(PluginError):
    """An isolated plugin's process could not be started, or failed while serving."""


class IsolationError(SandboxError):
    """An isolation layer the sandbox policy requires is not available; nothing was started.

    Attributes:
        missing: The layers that are required and not available.
        reasons: Why each is missing, by layer.
    """

    def __init__(
        self,
        missing: Sequence[str],
        reasons: typing.Mapping[str, str],
        *,
        plugin: str | None = None,
    ) -> None:
        why = "; ".join(f"{name}: {reasons.get(name, '?')}" for name in missing)
        who = f"plugin {plugin!r}: " if plugin else ""
        super().__init__(
            f"{who}the sandbox policy requires {', '.join(missing)}, which this machine cannot "
            f"apply ({why}); nothing was started. Run 'plugyard sandbox check' to see the "
            "layers, or drop them from Sandbox(require=...).",
            plugin=plugin,
        )
        self.missing = tuple(missing)
        self.reasons = dict(reasons)


class PluginCrashedError(SandboxError):
    """An isolated plugin's process died, hung or broke the protocol during the call.

    Attributes:
        returncode: The exit status (negative: the signal that killed it), or
            ``None`` if it had not exited when the call was failed.
        reason: What happened: ``"killed by SIGSEGV"``, ``"exited with status 3"``,
            the protocol violation and what was received...
        stderr: The last lines the process wrote to its standard error.
    """

    def __init__(
        self, plugin: str, reason: str, *, returncode: int | None = None, stderr: str = ""
    ) -> None:
        tail = f"; its stderr ended with: {stderr.strip()[-500:]!r}" if stderr.strip() else ""
        super().__init__(f"plugin {plugin!r} crashed: {reason}{tail}", plugin=plugin)
        self.returncode = returncode
        self.reason = reason
        self.stderr = stderr


class CallTimeoutError(SandboxError, TimeoutError):
    """A call to an isolated plugin did not answer within its timeout.

    The call was cancelled (``$/cancel``); a process that did not answer the
    cancellation in time was killed, and is restarted as a crash would be.

    Attributes:
        method: The method called.
        timeout: The timeout, in seconds.
        killed: Whether the process was killed for it.
    """

    def __init__(self, plugin: str, method: str, timeout: float, *, killed: bool) -> None:
        then = "; the process did not answer the cancellation and was killed" if killed else ""
        super().__init__(
            f"plugin {plugin!r}: {method}() did not answer within {timeout:g} s{then}. "
            "Raise the timeout (Sandbox(call_timeout=...)) if the call is meant to take longer.",
            plugin=plugin,
        )
        self.method = method
        self.timeout = timeout
        self.killed = killed


class RemoteError(SandboxError):
    """An isolated plugin's method raised in its own process.

    Attributes:
        code: The protocol's error code (``-32000`` for an exception in the plugin).
        remote_message: The error message the plugin sent.
        data: The error's data, as sent: for the Python worker a mapping with
            ``type`` (the exception's class name) and ``traceback``.
    """

    def __init__(self, plugin: str, method: str, code: int, message: str, data: object) -> None:
        kind = data.get("type") if isinstance(data, dict) else None
        what = f"{kind}: {message}" if kind else message
        super().__init__(f"plugin {plugin!r} raised in {method}(): {what}", plugin=plugin)
        self.code = code
        self.remote_message = message
        self.data: typing.Any = data
