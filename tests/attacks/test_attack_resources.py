"""Class 9: package data changed or added after verification, read by the plugin.

The victim's ``setup`` runs the code snippets its package data lists: the
``hooks`` of ``data/settings.json``, and every file of ``hooks/`` (as a
plugin would render templates or apply rules it ships). Read through
``importlib.resources``, they come from verified bytes: a changed file is
refused, an added one is not listed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from attacks.attackkit import Env, evil
from attacks.conftest import MakeEnv

pytestmark = pytest.mark.slow


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    return make_env("atk-victim", "atk-dependent")


@pytest.fixture(name="package")
def fixture_package(env: Env) -> Iterator[Path]:
    """The victim's package directory; its data files restored after the test."""
    package = env.site / "atkvictim"
    settings = package / "data" / "settings.json"
    saved = settings.read_bytes()
    yield package
    settings.write_bytes(saved)
    for hook in (package / "hooks").iterdir():
        if hook.name != "00-hello.txt":
            hook.unlink()


def _evil_settings() -> str:
    return json.dumps({"hooks": [evil("a changed resource ran")]})


def test_a_resource_changed_after_verification_is_refused(
    env: Env, package: Path, marker: Path
) -> None:
    settings = package / "data" / "settings.json"

    report = env.host(marker, attack=f"open({str(settings)!r}, 'w').write({_evil_settings()!r})")
    verify = env.verify_group()

    assert not marker.exists(), marker.read_text()
    report.refused("victim", "hash-mismatch", str(settings))
    report.dependents_failed("dependent")
    verify.reports("atk-victim", "hash-mismatch", "atkvictim/data/settings.json")


def test_a_resource_changed_before_verification_is_refused(
    env: Env, package: Path, marker: Path
) -> None:
    (package / "data" / "settings.json").write_text(_evil_settings())

    report = env.host(marker)

    assert not marker.exists(), marker.read_text()
    report.refused("victim", "hash-mismatch", "atkvictim/data/settings.json")
    report.dependents_failed("dependent")


def test_a_resource_added_after_verification_is_not_listed(
    env: Env, package: Path, marker: Path
) -> None:
    """``hooks/`` lists its signed files only; the added one is never read."""
    added = package / "hooks" / "99-added.txt"

    report = env.host(
        marker, attack=f"open({str(added)!r}, 'w').write({evil('an added hook ran')!r})"
    )

    assert not marker.exists(), marker.read_text()
    assert report.results["victim"] == "genuine"
    assert report.results["dependent"] == "dependent uses victim"


def test_reading_an_added_resource_by_name_is_refused(
    env: Env, package: Path, marker: Path
) -> None:
    added = package / "hooks" / "99-added.txt"
    added.write_text(evil("an added hook ran"))

    report = env.host(
        marker,
        after=(
            "from importlib import resources\n"
            "try:\n"
            "    resources.files('atkvictim').joinpath('hooks/99-added.txt').read_text()\n"
            "except Exception as exc:\n"
            "    extra['read'] = [type(exc).__name__, [p.kind.value for p in exc.problems]]\n"
        ),
    )

    assert not marker.exists(), marker.read_text()
    assert report.extra["read"] == ["SignatureError", ["unlisted-file"]]
