"""Where the measured environment lives, and whether stevedore's cache works there.

stevedore turns its entry-point cache off when ``sys.executable`` starts
with ``/tmp`` (``sys.executable[0:4] == '/tmp'`` in ``stevedore/_cache.py``:
so also ``/tmpfoo/...``) or when its cache directory holds a ``.disable``
file. Every stevedore figure that lists or loads would then be a cold one,
compared with plugyard's warm: the run refuses to start, unless
``PLUGYARD_BENCH_ANY_CACHE=1`` allows it (the smoke tests, which check the
report's shape and not its figures, run from checkouts under ``/tmp`` too);
the report then says so and judges no target against those figures.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

#: Lets a run go on with stevedore's cache off (its figures are then not judged).
ALLOW = "PLUGYARD_BENCH_ANY_CACHE"

_ASK = "import stevedore._cache as c; print(int(not c._c._disable_caching), c._c._dir)"


def stevedore_cache(env: Mapping[str, str], cwd: Path) -> tuple[bool, str]:
    """Whether stevedore's cache is on in a child run as the probes are, and why not."""
    proc = subprocess.run(
        [sys.executable, "-c", _ASK],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    on, _, directory = proc.stdout.strip().partition(" ")
    if on == "1":
        return True, "on"
    if sys.executable[0:4] == "/tmp":  # noqa: S108 - stevedore's own test
        why = f"the interpreter, `{sys.executable}`, starts with /tmp"
    else:
        why = f"its cache directory `{directory}` holds a `.disable` file"
    return False, f"off: {why}"


def describe() -> dict[str, str]:
    """The report's lines about the environment measured."""
    kind = "a virtual environment" if sys.prefix != sys.base_prefix else "no virtual environment"
    return {"Environment": f"`{sys.prefix}` ({kind}), interpreter `{sys.executable}`"}


def refusal(state: str) -> str:
    """Why a run with stevedore's cache off does not start, and what to do."""
    return (
        f"stevedore's cache is {state}: stevedore then lists and loads without its cache, "
        "and every comparison with it would handicap it. Run the benchmarks from an "
        "environment whose interpreter is not under /tmp (for nox: "
        "`nox --envdir ~/.cache/plugyard-nox -s bench`), or set "
        f"{ALLOW}=1 to measure anyway, the stevedore figures then left unjudged."
    )
