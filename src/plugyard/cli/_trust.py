"""The ``keygen``, ``sign`` and ``verify`` commands; imported only when used.

They need cryptography, which the plugin commands do not.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from .._discovery import EntryPoint, entry_points
from .._value import evolve
from ..exceptions import InvalidKeyError, InvalidWheelError
from ..trust import (
    Keyring,
    VerificationResult,
    check_entry_point,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    sign_file,
    sign_wheel,
    verify_distribution,
    verify_file,
    verify_wheel,
)
from ._output import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Output, err


def _passphrase(args: argparse.Namespace) -> str | None:
    var = args.passphrase_env
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise InvalidKeyError(f"the environment variable {var} (--passphrase-env) is not set")
    return value


def keygen(args: argparse.Namespace, out: Output) -> int:
    """Create a key pair; refuse to overwrite."""
    try:
        private, public = generate_key(args.out, args.key_name, passphrase=_passphrase(args))
    except (FileExistsError, InvalidKeyError) as exc:  # refusing to overwrite, or no passphrase
        err(str(exc), exc)
        return EXIT_USAGE
    except OSError as exc:
        err(f"cannot write a key pair in {str(args.out)!r}: {exc.strerror or exc}", exc)
        return EXIT_USAGE
    out.write(f"private key: {private}  (keep it secret; mode 0600)\n")
    out.write(f"public key:  {public}  (give it to verifiers)\n")
    out.write(f"key id:      {key_id(load_public_key(public))}\n")
    return EXIT_OK


def sign(args: argparse.Namespace, out: Output) -> int:
    """Sign one wheel."""
    try:
        key = load_private_key(args.key, _passphrase(args))
        if args.out is not None and args.out.endswith(("/", os.sep)):
            Path(args.out).mkdir(parents=True, exist_ok=True)
        if args.wheel.suffix == ".py":
            signed = sign_file(args.wheel, key, _signature_out(args.wheel, args.out))
        else:
            signed = sign_wheel(args.wheel, key, args.out)
    except InvalidWheelError as exc:
        for problem in exc.problems:
            err(f"{args.wheel.name}: {problem.kind}: {problem}")
        return EXIT_FAILED
    except (OSError, InvalidKeyError) as exc:
        err(str(exc))
        return EXIT_USAGE
    out.write(f"signed {signed} with key {key_id(key.public_key())}\n")
    return EXIT_OK


def _signature_out(source: Path, out: str | None) -> Path | None:
    """Where ``--out`` puts a detached signature: a file, or ``<name>.sig`` in a directory."""
    if out is None:
        return None
    target = Path(out)
    return target / f"{source.name}.sig" if target.is_dir() else target


def _keyring(args: argparse.Namespace) -> Keyring:
    if args.keyring is not None:
        return Keyring.from_directory(args.keyring)
    return Keyring.from_keys([load_public_key(args.key)])


def _results(args: argparse.Namespace, keyring: Keyring) -> list[VerificationResult]:
    """The verification of each target; for a group, of each distribution listing entry points.

    Each entry point listed for the group must also be one the verified
    ``entry_points.txt`` declares, naming a module of the signed manifest:
    a listing (or its cache) can say otherwise, and the manager checks the same.
    """
    if args.target is not None:
        return [_verify_one(args.target, keyring)]
    listed: dict[str, list[EntryPoint]] = {}
    by_distribution: dict[str, str] = {}
    for ep in entry_points(args.group):
        path = by_distribution.setdefault(ep.distribution, ep.path)
        listed.setdefault(path, []).append(ep)
    results = []
    for path in sorted(listed):
        result = _verify_one(path, keyring)
        if result.ok:
            problems = [
                problem
                for ep in listed[path]
                for problem in check_entry_point(
                    result, ep.group, ep.name, ep.value, ep.distribution
                )
            ]
            if problems:
                result = evolve(result, problems=(*result.problems, *problems))
        results.append(result)
    return results


def _verify_one(target: str, keyring: Keyring) -> VerificationResult:
    if target.endswith(".whl"):
        return verify_wheel(target, keyring)
    if target.endswith(".py"):
        return verify_file(target, keyring)
    if Path(target).is_dir() and target.endswith(".dist-info"):
        from importlib.metadata import PathDistribution

        return verify_distribution(PathDistribution(Path(target)), keyring)
    return verify_distribution(target, keyring)


def _result_json(result: VerificationResult) -> dict[str, Any]:
    return {
        "distribution": result.distribution,
        "version": result.version,
        "ok": result.ok,
        "signers": list(result.signers),
        "problems": [
            {
                "kind": p.kind.value,
                "path": p.path,
                "message": p.message,
                "expected": p.expected,
                "actual": p.actual,
            }
            for p in result.problems
        ],
    }


def verify(args: argparse.Namespace, out: Output) -> int:
    """Verify each target; one line per problem on stderr."""
    try:
        keyring = _keyring(args)
    except (OSError, InvalidKeyError) as exc:
        err(str(exc))
        return EXIT_USAGE
    results = _results(args, keyring)
    if not results:
        err(f"no installed distribution declares entry points in group {args.group!r}")
        return EXIT_FAILED
    if args.json:
        json.dump([_result_json(r) for r in results], out, indent=2)
        out.write("\n")
    for result in results:
        label = f"{result.distribution} {result.version or ''}".strip()
        if result.ok and not args.json:
            out.write(f"{label}: ok, signed by {', '.join(result.signers)}\n")
        for problem in result.problems:
            detail = ""
            if problem.expected is not None or problem.actual is not None:
                detail = f" (expected {problem.expected}, actual {problem.actual})"
            err(f"{label}: {problem.kind}: {problem}{detail}")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
