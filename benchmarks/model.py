"""What a benchmark figure is: a probe, a contender, a row.

A :class:`Probe` is a snippet run in fresh processes; a :class:`Contender`
is one figure (a phase of a probe, or a key of a script timing in one
process); a :class:`Row` is a plugyard figure and the peers it is divided by.
The rows themselves are in ``rows.py`` and ``scalerows.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

TARGET_N = 1000  # the targets are set at this N


@dataclass(frozen=True)
class Probe:
    """A snippet run in fresh processes, and the state of the caches it runs with.

    ``cache`` is ``"cold"`` (a new, empty ``XDG_CACHE_HOME`` for every
    process), ``"warm"`` (one ``XDG_CACHE_HOME`` per probe, filled by an
    untimed first run), or ``"off"`` (cold, and ``PLUGYARD_NO_CACHE=1``).
    A probe without ``site`` runs with no synthetic distributions, once
    whatever ``N``; a ``signed`` one runs once, on the signed distribution
    of ``signing.py`` instead.
    """

    code: str
    cache: str = "warm"
    site: bool = True
    signed: bool = False
    rounds: int | None = None  # at most this many timed rounds (a figure that barely varies)


@dataclass(frozen=True)
class Contender:
    """One figure: a phase of a probe, or a ``percall.py`` key.

    Attributes:
        label: How the table names it.
        how: What exactly is timed, for the legend.
        probe: The probe (fresh processes), or ``None`` for a figure timed
            in one process by ``script``.
        phase: The probe's phase (``import``, ``call``, ``total``) or the
            script's key.
        script: What times a figure without a probe: ``percall.py`` (per
            ``N``) or ``signing.py`` (once).
        unit: What the samples count: ``ns``, ``B`` (bytes, a memory figure) or ``count``.
    """

    label: str
    how: str
    probe: str | None
    phase: str
    script: str = "percall.py"
    unit: str = "ns"  # or "B", bytes (a memory figure), or "count"


def _c(
    label: str,
    how: str,
    probe: str | None,
    phase: str,
    script: str = "percall.py",
    *,
    unit: str = "ns",
) -> Contender:
    return Contender(label, how, probe, phase, script, unit)


@dataclass(frozen=True)
class Row:
    """A plugyard figure and the peers it is compared with, one table line per peer.

    Attributes:
        id: A stable name, ``section.what``.
        what: What is measured.
        plugyard: The plugyard contender.
        peers: The contenders it is divided by.
        targets: The issue's targets: the highest plugyard/peer ratio, by peer.
        per_n: Whether the figure depends on ``N`` (else it is measured once).
    """

    id: str
    what: str
    plugyard: str
    peers: tuple[str, ...]
    targets: Mapping[str, float] = field(default_factory=dict)
    per_n: bool = True
