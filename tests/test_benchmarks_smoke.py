"""The benchmark suite runs end to end and reports every row with a ratio.

Only the shape of the report is checked, never the timings: they depend on
the machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
N = 10
RATIO = re.compile(r"^\d+\.\d\dx$")
CELL = re.compile(r"(?<!\\)\|")  # a cell border, not an escaped "|"


def _rows() -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--list-rows"], capture_output=True, text=True, check=True
    )
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return rows


def _table(report: str, heading: str) -> list[list[str]]:
    """The body cells of the Markdown table under ``heading``."""
    section = report.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in CELL.split(line.strip()[1:-1])] for line in lines[2:]]


@pytest.fixture(name="report", scope="module")
def fixture_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report of one small run: N=10, two processes per figure."""
    out = tmp_path_factory.mktemp("bench") / "report.md"
    subprocess.run(
        [
            sys.executable,
            str(RUN),
            *("--n", str(N), "--repeat", "2", "--min-time", "0.005", "--out", str(out)),
        ],
        check=True,
        timeout=600,
    )
    return out.read_text(encoding="utf-8")


def test_the_suite_defines_the_rows_of_issue_6() -> None:
    ids = {row["id"] for row in _rows()}
    sections = {row_id.partition(".")[0] for row_id in ids}
    assert {"1", "2", "3", "4", "5", "6"} <= sections
    targeted = {row["id"] for row in _rows() if row["targets"]}
    assert targeted == {
        "1.import",
        "2.list-cold",
        "2.list-warm",
        "3.first-call",
        "5.handle",
        "5.execute-metrics",
        "6.verify",
        "6.import",
    }


def test_every_row_has_a_line_per_peer_each_with_a_ratio(report: str) -> None:
    cells = _table(report, "Results")
    assert all(len(line) == 8 for line in cells)
    counts = Counter((line[0], line[1]) for line in cells)
    for row in _rows():
        n = str(N) if row["per_n"] else "any"
        assert counts[row["id"], n] == len(row["peers"]), row["id"]
    assert all(RATIO.match(line[6]) for line in cells), [line[6] for line in cells]


def test_targets_are_shown_next_to_their_ratios(report: str) -> None:
    cells = _table(report, "Results")
    for row in _rows():
        targeted = [line for line in cells if line[0] == row["id"] and line[7]]
        assert len(targeted) == len(row["targets"]), row["id"]
    # At N=10 only the targets that do not depend on N are judged: the
    # framework's import and the signing rows, measured on one distribution.
    judged = [line for line in _table(report, "Targets (issue 6, at N=1000)") if line[1]]
    assert [line[0].partition(":")[0] for line in judged] == ["1.import", "6.verify", "6.import"]
    assert all(line[2] in ("**met**", "**missed**") for line in judged)


def test_the_report_names_the_machine_and_the_versions(report: str) -> None:
    for field in ("Platform", "CPU", "Python", "plugyard", "stevedore", "pluggy", "Date"):
        assert f"- **{field}**: " in report
