"""plugyard's loggers: nothing is paid before logging is imported, nothing is lost after."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from plugyard import _log


def test_records_carry_the_callers_place(caplog: pytest.LogCaptureFixture) -> None:
    log = _log.Logger("plugyard.test")
    with caplog.at_level(logging.DEBUG, logger="plugyard"):
        log.debug("one %s", "arg")
        log.info("two")
        log.warning("three")
        log.error("four")
        try:
            raise ValueError("five")
        except ValueError:
            log.exception("five")
        log.log(logging.WARNING, "six")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "one arg"),
        ("INFO", "two"),
        ("WARNING", "three"),
        ("ERROR", "four"),
        ("ERROR", "five"),
        ("WARNING", "six"),
    ]
    assert {(r.module, r.funcName) for r in caplog.records} == {
        ("test_log", "test_records_carry_the_callers_place")
    }
    assert caplog.records[4].exc_info is not None
    assert caplog.records[4].exc_info[0] is ValueError


def test_plugyards_logger_has_a_null_handler() -> None:
    _log.Logger("plugyard.x").warning("made")
    handlers = logging.getLogger("plugyard").handlers
    assert sum(isinstance(h, logging.NullHandler) for h in handlers) == 1


CODE = """
import sys, warnings
warnings.simplefilter("ignore")
import plugyard

@plugyard.register(name="bad", group="g")
class Bad:
    def setup(self, context):
        raise RuntimeError("setup broke")

manager = plugyard.PluginManager(group="g")
print(manager.load_all()["bad"].value)
{after}
"""


def test_a_failure_without_logging_imported_does_not_import_it() -> None:
    after = "print('logging' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(after=after)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["failed", "False"]
    assert done.stderr == ""


def test_logging_set_up_later_receives_records() -> None:
    after = (
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s %(levelname)s %(message)s')\n"
        "plugyard.PluginManager(group='g').load_all()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(after=after)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["failed"]
    assert "plugyard" in done.stderr
    assert "setup broke" in done.stderr


def test_logging_imported_but_not_set_up_prints_nothing() -> None:
    after = "import logging\nplugyard.PluginManager(group='g').load_all()\n"
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(after=after)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["failed"]
    assert done.stderr == ""
