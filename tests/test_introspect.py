"""plugyard._introspect gives inspect's answers, and imports inspect only for unusual objects.

Each check runs in a fresh interpreter, not measured by coverage: pytest
and coverage import inspect, and with inspect imported the functions defer
to it, which would hide a wrong answer of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

OBJECTS = '''
import functools, sys, types

def plain(data): return data
async def coro(data): return data
def gen(): yield 1
async def agen(): yield 1

class Plugin:
    """Exports rows as CSV."""
    def execute(self, data): return data
    async def aexecute(self, data): return data
    @staticmethod
    def static(): pass
    @classmethod
    async def aclass(cls): pass

instance = Plugin()
USUAL = {
    "function": plain,
    "async function": coro,
    "generator function": gen,
    "async generator function": agen,
    "lambda": lambda data: data,
    "class": Plugin,
    "method": instance.execute,
    "async method": instance.aexecute,
    "static method": instance.static,
    "async class method": instance.aclass,
    "partial": functools.partial(plain, 1),
    "partial of async": functools.partial(functools.partial(coro), 1),
    "builtin": len,
    "bound builtin": [].append,
}

class AsyncCall:
    async def __call__(self, data): return data

UNUSUAL = {
    "async callable instance": AsyncCall(),
    "partial of async method": functools.partial(instance.aexecute, 1),
    "method descriptor": str.upper,
    "instance": instance,
}
'''

PARITY = (
    OBJECTS
    + """
from plugyard._introspect import iscoroutinefunction, isawaitable, summary
assert "inspect" not in sys.modules
ours = {name: iscoroutinefunction(obj) for name, obj in USUAL.items()}
assert "inspect" not in sys.modules, "asked inspect about a usual object"
ours.update({name: iscoroutinefunction(obj) for name, obj in UNUSUAL.items()})
import inspect
theirs = {name: inspect.iscoroutinefunction(obj) for name, obj in {**USUAL, **UNUSUAL}.items()}
assert ours == theirs, {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs[k]}
assert ours["async function"] and ours["async method"] and ours["partial of async"]
assert ours["async class method"] and ours["partial of async method"]
assert not ours["function"] and not ours["async generator function"]
print("ok")
"""
)


def _run(code: str) -> str:
    # Unmeasured under coverage's patch = ["subprocess"]: coverage imports
    # inspect as it starts, which is the one thing these checks must not see.
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_iscoroutinefunction_answers_as_inspect_does() -> None:
    """Same answer as inspect for every object; inspect imported only for the unusual ones."""
    assert _run(PARITY).strip() == "ok"


def test_isawaitable_answers_as_inspect_does() -> None:
    """Coroutines, generator-based coroutines and ``__await__`` objects are awaitable, only they."""
    code = """
    import sys, types
    from plugyard._introspect import isawaitable

    async def coro(): pass
    @types.coroutine
    def old_style(): yield
    def gen(): yield
    class Future:
        def __await__(self): yield

    values = {"coroutine": coro(), "generator coroutine": old_style(), "generator": gen(),
              "awaitable": Future(), "int": 1, "None": None, "class": Future}
    ours = {name: isawaitable(v) for name, v in values.items()}
    assert "inspect" not in sys.modules
    import inspect
    theirs = {name: inspect.isawaitable(v) for name, v in values.items()}
    values["coroutine"].close()
    assert ours == theirs, (ours, theirs)
    yes = [name for name, awaitable in ours.items() if awaitable]
    assert yes == ["coroutine", "generator coroutine", "awaitable"]
    print("ok")
    """
    assert _run(code).strip() == "ok"


DOCS = [
    "Exports rows as CSV.",
    "Exports rows as CSV.\n\n    More about it.\n    ",
    "   Indented first line.  \n  second",
    "\tTabbed first line.",
    "\n    Summary on the second line.\n\n    Body.\n    ",
    "\n\n\n",
    "",
    "\x0c Form feed first.",
    "  \n\t\tTabbed summary below a blank line.\n",
]


@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_summary_is_the_first_line_cleandoc_gives(doc: str) -> None:
    """The first line of ``inspect.cleandoc(doc)``, for classes and functions alike."""
    code = f"""
    import sys
    from plugyard._introspect import summary

    class Plugin:
        pass
    def function():
        pass
    Plugin.__doc__ = function.__doc__ = {doc!r}
    ours = (summary(Plugin), summary(function))
    import inspect
    theirs = inspect.cleandoc({doc!r}).partition("\\n")[0] if {doc!r} else ""
    assert ours == (theirs, theirs), (ours, theirs)
    print("ok")
    """
    assert _run(code).strip() == "ok"


def test_summary_of_what_is_not_a_class_or_routine_is_empty() -> None:
    """An instance's docstring is its class's: it is not a summary of the plugin."""
    code = '''
    from plugyard._introspect import summary

    class Plugin:
        """Exports rows as CSV."""
    assert summary(Plugin) == "Exports rows as CSV."
    assert summary(Plugin()) == ""
    assert summary(len).startswith("Return the number of items")
    print("ok")
    '''
    assert _run(code).strip() == "ok"


def test_a_first_line_with_text_is_answered_without_inspect() -> None:
    """The usual docstring (text on its first line) needs no inspect."""
    code = '''
    import sys
    from plugyard._introspect import summary

    def function():
        """Exports rows as CSV.

        More.
        """
    assert summary(function) == "Exports rows as CSV."
    assert "inspect" not in sys.modules
    print("ok")
    '''
    assert _run(code).strip() == "ok"
