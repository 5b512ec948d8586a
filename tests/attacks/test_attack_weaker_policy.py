"""Class 6: a plugin admitted under a weaker trust mode reaching into a stricter group.

The host requires signatures for the group but lets ``legacy`` in under
``warn``: ``atk-legacy`` is unsigned, so its module is imported the ordinary
way, and it then registers ``evil`` into the group, replaces the signed
installed plugin ``victim`` and the signed registered plugin ``provided``
with ``register(replace=True)``, and registers ``claimed`` from a class that
claims to come from ``atk-broken``, a signed distribution whose files were
changed (so it failed verification). Its plugins mark when set up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attacks.attackkit import Env, Report
from attacks.conftest import MakeEnv

pytestmark = pytest.mark.slow

POLICY = {"legacy": "warn"}


@pytest.fixture(name="env", scope="module")
def fixture_env(make_env: MakeEnv) -> Env:
    env = make_env("atk-victim", "atk-dependent", "atk-provider", "atk-broken", "atk-legacy")
    broken = env.site / "atkbroken" / "__init__.py"
    broken.write_text(broken.read_text() + "# changed after signing\n")
    return env


@pytest.fixture(name="report", scope="module")
def fixture_report(env: Env, tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    marker = tmp_path_factory.mktemp("weaker") / "attacker-code-ran"
    return env.host(marker, plugins=POLICY), marker


def test_legacy_itself_is_admitted_unverified_as_the_policy_says(
    report: tuple[Report, Path],
) -> None:
    outcome, _ = report
    assert outcome.results["legacy"] == "legacy"
    assert outcome.loaders["atklegacy"] == "SourceFileLoader"
    assert "plugin 'legacy' imported unverified (trust mode 'warn')" in outcome.stderr


def test_unverified_code_cannot_register_a_plugin_into_the_stricter_group(
    report: tuple[Report, Path],
) -> None:
    outcome, marker = report
    assert not marker.exists(), marker.read_text()
    error = outcome.refused("evil", "unverified-code", "atklegacy")
    assert error["distribution"] == "atk-legacy"
    assert "imported unverified (trust mode 'warn')" in error["message"]
    outcome.dependents_failed("evil-dependent")


def test_unverified_code_cannot_replace_a_signed_registered_plugin(
    report: tuple[Report, Path],
) -> None:
    outcome, marker = report
    assert not marker.exists(), marker.read_text()
    assert outcome.results["provided"] == "genuine"
    assert outcome.credited["provided"] == "atk-provider"
    assert "ignoring the re-registration of 'provided'" in outcome.stderr
    assert outcome.results["victim"] == "genuine"
    assert outcome.results["dependent"] == "dependent uses victim"


def test_unverified_code_registering_first_cannot_stand_in_for_signed_plugins(
    env: Env, tmp_path: Path
) -> None:
    """``legacy`` is loaded first, so its registrations are there before the signed ones.

    The signed installed plugin is imported and runs, the registration in its
    way ignored. The signed provider's own ``register`` then finds its name
    taken and fails: unverified code can deny a plugin, never run as it
    (docs/security.md lists this).
    """
    marker = tmp_path / "marker"
    outcome = env.host(marker, plugins=POLICY, ready="manager.load('legacy')")

    assert not marker.exists(), marker.read_text()
    assert outcome.results["victim"] == "genuine"
    assert outcome.credited["victim"] == "atk-victim"
    assert "ignoring the registration of 'victim'" in outcome.stderr
    assert outcome.states["provided"] == "failed"
    assert outcome.errors["provider"]["type"] == "PluginLoadError"
    assert "DuplicatePluginError" in outcome.errors["provider"]["message"]


def test_unverified_code_cannot_claim_a_distribution_that_failed_verification(
    report: tuple[Report, Path],
) -> None:
    outcome, marker = report
    assert not marker.exists(), marker.read_text()
    outcome.refused("broken", "hash-mismatch", "atkbroken/__init__.py")
    error = outcome.refused("claimed", "unverified-code", "atklegacy")
    assert error["distribution"] == "atk-legacy"  # not credited to atk-broken
    outcome.dependents_failed("claimed-dependent")


def test_verify_reports_the_unsigned_and_the_changed_distribution(env: Env) -> None:
    verify = env.verify_group()

    verify.reports("atk-legacy", "missing-signature")
    verify.reports("atk-broken", "hash-mismatch", "atkbroken/__init__.py")


def test_the_same_registrations_pass_where_the_plugins_own_mode_is_as_weak(
    env: Env, tmp_path: Path
) -> None:
    """A mode is per plugin: ``evil`` under ``warn`` too is let in, with a warning, and runs."""
    marker = tmp_path / "marker"
    outcome = env.host(marker, plugins={**POLICY, "evil": "warn"})

    assert outcome.states["evil"] == "active"
    assert outcome.credited["evil"] == "atk-legacy"
    assert "evil registered into the group" in marker.read_text()
    assert "plugin 'evil' registered by atklegacy, code of 'atk-legacy'" in outcome.stderr
