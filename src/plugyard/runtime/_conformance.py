"""A minimal conformance test any plugin implementation can run against itself.

``plugyard sandbox conformance -- <command>`` starts the command as the
host would (in the sandbox, with a token) and checks what
``docs/protocol.md`` requires of a plugin: the handshake, ``$/ping``,
pipelined requests answered by msgid, an error triple for an unknown method,
unknown notifications and a ``$/cancel`` of nothing ignored, an
``execute`` that answers, ``$/shutdown`` answered and obeyed, and an exit on
EOF of fd 3.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..exceptions import PluginError, RemoteError
from . import _protocol as wire
from ._isolation import Sandbox
from ._process import Child


@attrs.frozen
class Check:
    """The outcome of one conformance check.

    Attributes:
        name: What was checked.
        ok: Whether the implementation passed.
        detail: What was seen, or why it failed.
    """

    name: str
    ok: bool
    detail: str = ""


def absolute(argv: Sequence[str]) -> list[str]:
    """``argv`` with relative paths that exist made absolute: the child runs elsewhere."""
    # absolute(), not resolve(): a venv's python must keep its own path.
    return [
        str(Path(arg).absolute()) if os.sep in arg and Path(arg).exists() else arg for arg in argv
    ]


def readable_dirs(argv: Sequence[str]) -> list[str]:
    """The directories of the command's arguments that are files here (its code)."""
    return [
        str(Path(arg).absolute().parent) for arg in argv if os.sep in arg and Path(arg).exists()
    ]


@contextlib.contextmanager
def _started(argv: Sequence[str], policy: Sandbox) -> Iterator[Child]:
    child = Child(
        "conformance",
        "plugyard.conformance",
        absolute(argv),
        policy,
        readable=readable_dirs(argv),
        expect_name=False,
    )
    try:
        child.start()
        yield child
    finally:
        child.stop()


def run(
    argv: Sequence[str],
    policy: Sandbox | None = None,
    sample: Any = "conformance",
    env: Mapping[str, str] | None = None,
) -> list[Check]:
    """Run every check against the implementation that ``argv`` starts.

    Args:
        argv: The command serving the plugin.
        policy: The sandbox it runs in (short timeouts by default).
        sample: The argument of the ``execute`` call.
        env: Variables added to its environment.
    """
    policy = policy or Sandbox(call_timeout=5.0, start_timeout=10.0, stop_timeout=2.0)
    if env:
        policy = attrs.evolve(policy, env={**policy.env, **env})
    checks: list[Check] = []
    try:
        with _started(argv, policy) as child:
            hello = child.hello
            assert hello is not None  # noqa: S101 - started
            checks.append(
                Check(
                    "handshake",
                    True,
                    f"plugin {hello.name!r} {hello.version}, protocol {hello.protocol}, "
                    f"methods {list(hello.methods)}",
                )
            )
            for name, check in _CHECKS:
                checks.append(_one(name, check, child, sample))
    except PluginError as exc:
        checks.append(Check("handshake", False, str(exc)))
        return checks
    checks.append(_exits_on_eof(argv, policy))
    return checks


def _one(name: str, check: Callable[[Child, Any], str], child: Child, sample: Any) -> Check:
    if not child.alive:
        return Check(name, False, "the process had ended already")
    try:
        return Check(name, True, check(child, sample))
    except Exception as exc:  # every failure is a failed check, reported
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _ping(child: Child, sample: Any) -> str:
    return f"answered in {child.ping() * 1e3:.2f} ms"


def _pipelining(child: Child, sample: Any) -> str:
    calls = [child.submit(wire.PING, []) for _ in range(16)]
    for call in calls:
        if not call.done.acquire(timeout=child.policy.call_timeout):
            raise AssertionError(f"no answer to msgid {call.msgid}")
        child.outcome(call)
    return "16 requests in flight, each answered by its msgid"


def _unknown_method(child: Child, sample: Any) -> str:
    try:
        child.call("no-such-method", [])
    except RemoteError as exc:
        if exc.code != wire.Codes.METHOD_NOT_FOUND:
            wanted = wire.Codes.METHOD_NOT_FOUND
            raise AssertionError(f"error code {exc.code}, not {wanted}") from None
        return f"[{exc.code}, {exc.remote_message!r}, ...]"
    raise AssertionError("an unknown method got a result, not an error")


def _ignored(child: Child, sample: Any) -> str:
    child._send(wire.notification("no-such-notification", [1, 2]))
    child._send(wire.notification(wire.CANCEL, [wire.MAX_MSGID]))
    child.ping()
    return "an unknown notification and a $/cancel of no call were ignored"


def _execute(child: Child, sample: Any) -> str:
    hello = child.hello
    if hello is None or "execute" not in hello.methods:
        return "no execute method: skipped"
    try:
        result = child.call("execute", [sample])
    except RemoteError as exc:  # a well-formed error is an answer too
        return f"answered with error [{exc.code}, {exc.remote_message!r}]"
    return f"answered {wire.quote(result, 60)}"


def _shutdown(child: Child, sample: Any) -> str:
    started = time.monotonic()
    child.call(wire.SHUTDOWN, [])
    if not child._exited(child.policy.stop_timeout):
        raise AssertionError(f"still running {child.policy.stop_timeout:g} s after $/shutdown")
    return f"answered and exited in {(time.monotonic() - started) * 1e3:.0f} ms"


_CHECKS: list[tuple[str, Callable[[Child, Any], str]]] = [
    ("$/ping", _ping),
    ("pipelining", _pipelining),
    ("unknown method", _unknown_method),
    ("ignored notifications", _ignored),
    ("execute", _execute),
    ("$/shutdown", _shutdown),
]


def _exits_on_eof(argv: Sequence[str], policy: Sandbox) -> Check:
    name = "EOF on fd 3"
    try:
        with _started(argv, policy) as child:
            child.close_input()
            if not child._exited(policy.stop_timeout):
                return Check(name, False, f"still running {policy.stop_timeout:g} s after EOF")
    except PluginError as exc:
        return Check(name, False, str(exc))
    return Check(name, True, "exited when the host closed its pipe")
