"""The order fresh processes run in: what a ratio compares, back to back.

A *unit* is a tuple of jobs run one right after the other: a pair (a
plugyard probe and the peer it is divided by) or a row's contenders. In each
round every unit runs once, the units in a shuffled order, and the jobs of a
unit forwards in even rounds and backwards in odd ones (plugyard, peer; then
peer, plugyard), so that a slow spell of the machine, or whatever drifts
during a run, lands on both sides of a ratio alike and neither side always
runs first.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

J = TypeVar("J", bound=Hashable)
S = TypeVar("S")


def pairs(divisions: Iterable[tuple[J, J]], jobs: Iterable[J]) -> list[tuple[J, ...]]:
    """A unit per distinct pair ``(mine, peer)`` of ``divisions``, then one per job left alone.

    A pair of a job with itself (two phases of one probe) is not a pair;
    pairs and jobs keep their first order.
    """
    units: list[tuple[J, ...]] = []
    paired: set[J] = set()
    for mine, peer in divisions:
        if mine != peer and (mine, peer) not in units:
            units.append((mine, peer))
            paired.update((mine, peer))
    units += [(job,) for job in dict.fromkeys(jobs) if job not in paired]
    return units


def alternate(
    units: Sequence[tuple[J, ...]],
    rounds: int,
    run: Callable[[J], S | None],
    *,
    limits: Mapping[J, int] | None = None,
    skip: Callable[[J], bool] = lambda job: False,
    progress: Callable[[int], None] = lambda round_: None,
) -> dict[tuple[J, ...], dict[J, list[S]]]:
    """Run every unit ``rounds`` times, alternating as the module says.

    Args:
        units: The units, each a tuple of jobs.
        rounds: How many rounds.
        run: Runs one job and returns its sample, or ``None`` for none (a
            process stopped past its time limit, say).
        limits: The most rounds a job runs in (fewer than ``rounds`` for a
            figure that barely varies, such as memory).
        skip: Whether a job is no longer run (checked before each run).
        progress: Called at the start of each round, with its number from 0.

    Returns:
        By unit, by job, the samples in the order taken: sample ``i`` of
        one job of a pair was taken right before or after sample ``i`` of the
        other, as long as neither skipped a run.
    """
    limits = limits or {}
    results: dict[tuple[J, ...], dict[J, list[S]]] = {u: {j: [] for j in u} for u in units}
    for round_ in range(rounds):
        progress(round_)
        order = list(units)
        random.Random(round_).shuffle(order)
        for unit in order:
            for job in unit if round_ % 2 == 0 else reversed(unit):
                if round_ >= limits.get(job, rounds) or skip(job):
                    continue
                sample = run(job)
                if sample is not None:
                    results[unit][job].append(sample)
    return results
