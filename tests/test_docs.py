"""Every Python example in README.md and docs/ runs as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[Path, list[str]]]:
    return [(doc, BLOCK.findall(doc.read_text())) for doc in DOCS if BLOCK.search(doc.read_text())]


@pytest.mark.parametrize(("doc", "blocks"), examples(), ids=lambda v: getattr(v, "name", ""))
def test_examples_run(doc: Path, blocks: list[str], request: pytest.FixtureRequest) -> None:
    """The blocks of one file run in order in one namespace, as a reader would type them.

    Example test functions (``def test_...``) are called too, with the
    fixtures they name.
    """
    namespace: dict[str, object] = {"__name__": f"docs.{doc.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{doc.name} example {number}", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            params = inspect.signature(value).parameters
            value(*(request.getfixturevalue(param) for param in params))


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[3].endswith("# the demo")
    assert lines[4].endswith("# the whole test suite")
    assert "nox -s demo" in lines[3]
    assert "nox -s tests" in lines[4]
    ci = (ROOT / ".ci" / "run").read_text()
    assert lines[4].split("#")[0].strip() in ci
