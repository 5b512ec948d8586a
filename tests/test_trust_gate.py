"""The trust gate in this process: the policy's checks, and whose code may register what.

Distributions are installed in this process, signed (a wheel signed and
installed with ``installer``) or not (``make_distribution``). The same
attacks against real pip installs in a real venv are in
``tests/attacks/test_attack_weaker_policy.py``.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plugyard import PluginManager, TrustPolicy, _policy
from plugyard.exceptions import SignatureError
from plugyard.testing import MakeDistribution
from plugyard.trust import ProblemKind, sign_wheel
from trust_helpers import dist_info_of, install_wheel, keyring_of, write_wheel

KEY = Ed25519PrivateKey.generate()
RING = keyring_of(KEY)
_numbers = itertools.count()
#: Installs a signed distribution: its name, group, entry points and files.
InstallSigned = Callable[[str, str, dict[str, str], dict[str, str]], None]

# One of each kind of plugin module the tests install; {group} and the
# names of the modules it imports are filled in per test.
MAIN = """\
import plugyard

class Main:
    def execute(self, data=None):
        return "main"

@plugyard.register(group={group!r}, name="extra")
class Extra:
    def execute(self, data=None):
        return "extra"
"""
LEGACY = """\
import plugyard

class Legacy:
    def execute(self, data=None):
        return "legacy"

@plugyard.register(group={group!r}, name="evil")
class Evil:
    def setup(self, ctx):
        {setup}

    def execute(self, data=None):
        return "evil"
"""
#: Evil's setup where it must never run, and where it may.
NEVER = 'raise AssertionError("unverified code registered into a stricter plugin and ran")'
MAY = "pass"
CLAIMS = """\
import plugyard
from {other} import Other

class Claims:
    def execute(self, data=None):
        return "claims"

plugyard.register(group={group!r}, name="claimed")(Other)
"""
OTHER = """\
class Other:
    def execute(self, data=None):
        return "other"
"""


STAND_IN = """\
import plugyard

class Legacy:
    def execute(self, data=None):
        return "legacy"

@plugyard.register(group={group!r}, name="main")
class StandIn:
    def setup(self, ctx):
        raise AssertionError("unverified code stood in for a signed plugin and ran")

    def execute(self, data=None):
        return "stand-in"
"""


@pytest.fixture(name="group")
def fixture_group() -> str:
    return f"tests.gate{next(_numbers)}"


@pytest.fixture(autouse=True)
def _fresh_gate_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh process-wide importer and admissions for the test, removed after it."""
    monkeypatch.setattr(_policy, "_importer", None)
    monkeypatch.setattr(_policy, "_admissions", {})
    monkeypatch.setattr(_policy, "_admission_modules", {})
    before = set(sys.modules)
    yield
    importer = _policy._importer
    if importer is not None:
        importer.uninstall()
    for name in set(sys.modules) - before:
        if name.startswith("gatemod"):
            del sys.modules[name]
    importlib.invalidate_caches()


def _module() -> str:
    return f"gatemod{next(_numbers)}"


def _install_legacy(make_distribution: MakeDistribution, group: str, setup: str) -> str:
    """Install ``gate-legacy``, whose ``legacy`` plugin's module registers ``evil``; its module."""
    module = _module()
    make_distribution(
        "gate-legacy",
        entry_points={group: {"legacy": f"{module}:Legacy"}},
        files={f"{module}.py": LEGACY.format(group=group, setup=setup)},
    )
    return module


@pytest.fixture(name="install_signed")
def fixture_install_signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InstallSigned:
    """Install a signed distribution of ``files`` whose entry points are ``points``."""

    def install(dist: str, group: str, points: dict[str, str], files: dict[str, str]) -> None:
        n = next(_numbers)
        info = dist_info_of(dist, "1.0")
        lines = "".join(f"{name} = {value}\n" for name, value in points.items())
        members = {**files, f"{info}/entry_points.txt": f"[{group}]\n{lines}"}
        wheel = sign_wheel(write_wheel(tmp_path / f"w{n}", members, name=dist), KEY)
        monkeypatch.syspath_prepend(str(install_wheel(wheel, tmp_path / f"i{n}")))
        importlib.invalidate_caches()

    return install


def _load(manager: PluginManager) -> dict[str, str]:
    """Load everything twice: the second picks up what the first one's imports registered."""
    manager.load_all()
    return {name: str(state) for name, state in manager.load_all().items()}


def _unverified_code(error: BaseException | None, module: str) -> SignatureError:
    assert isinstance(error, SignatureError), error
    assert [(p.kind, p.path) for p in error.problems] == [(ProblemKind.UNVERIFIED_CODE, module)]
    return error


# -- the policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [{"mode": "strict"}, {"groups": {"g": "verify"}}, {"plugins": {"p": "Require"}}],
    ids=["mode", "group", "plugin"],
)
def test_a_mode_that_does_not_exist_is_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"trust mode '\w+' is not one of \('off', 'warn'"):
        TrustPolicy(keyring=RING, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [{"mode": "warn"}, {"groups": {"g": "require"}}, {"plugins": {"p": "warn"}}],
    ids=["mode", "group", "plugin"],
)
def test_a_policy_that_verifies_needs_a_keyring(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"a trust policy that verifies needs a keyring"):
        TrustPolicy(**arguments)  # type: ignore[arg-type]


def test_a_policy_of_off_alone_needs_no_keyring_and_verifies_nothing() -> None:
    policy = TrustPolicy(groups={"g": "off"}, plugins={"p": "off"})
    assert not policy.verifies
    assert policy.mode_for("g", "p") == "off"


# -- whose code registered a plugin ---------------------------------------------------


def test_a_plugin_that_verified_code_registers_is_credited_to_its_distribution(
    install_signed: InstallSigned, group: str
) -> None:
    module = _module()
    install_signed(
        "gate-main", group, {"main": f"{module}:Main"}, {f"{module}.py": MAIN.format(group=group)}
    )
    with PluginManager(group=group, trust=TrustPolicy(mode="require", keyring=RING)) as manager:
        assert _load(manager) == {"main": "active", "extra": "active"}
        assert manager.execute("extra") == "extra"
        assert manager.info("extra").distribution == "gate-main"
        assert str(manager.info("extra").version) == "1.0"
    loader = sys.modules[module].__spec__.loader  # type: ignore[union-attr]
    assert type(loader).__name__ == "_VerifiedLoader"


@pytest.mark.parametrize(
    ("mode", "how"),
    [
        ("warn", "imported unverified (trust mode 'warn')"),
        ("off", "imported unchecked (trust mode 'off')"),
    ],
)
def test_code_let_in_under_a_weaker_mode_cannot_register_a_plugin_that_must_verify(
    make_distribution: MakeDistribution, group: str, mode: str, how: str
) -> None:
    module = _install_legacy(make_distribution, group, NEVER)
    policy = TrustPolicy(mode="require", keyring=RING, plugins={"legacy": mode})  # type: ignore[dict-item]
    with PluginManager(group=group, trust=policy) as manager:
        assert _load(manager) == {"legacy": "active", "evil": "failed"}
        assert manager.execute("legacy") == "legacy"
        error = _unverified_code(manager.errors()["evil"], module)
    assert error.distribution == "gate-legacy"
    assert error.plugin == "evil"
    assert f"plugin 'evil' was registered by {module}, code of 'gate-legacy' {how}" in str(error)
    assert "(trust mode 'require')" in str(error)


def test_under_warn_the_plugin_runs_credited_to_the_unverified_code_and_is_logged(
    make_distribution: MakeDistribution, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    module = _install_legacy(make_distribution, group, MAY)
    policy = TrustPolicy(mode="require", keyring=RING, plugins={"legacy": "warn", "evil": "warn"})
    with (
        caplog.at_level(logging.WARNING, logger="plugyard"),
        PluginManager(group=group, trust=policy) as manager,
    ):
        assert _load(manager) == {"legacy": "active", "evil": "active"}
        assert manager.execute("evil") == "evil"
        assert manager.info("evil").distribution == "gate-legacy"
    assert "plugin 'legacy' imported unverified (trust mode 'warn')" in caplog.text
    assert (
        f"plugin 'evil' registered by {module}, code of 'gate-legacy' imported unverified "
        "(trust mode 'warn') (trust mode 'warn')"
    ) in caplog.text


def test_under_off_the_plugin_runs_credited_to_the_unchecked_code_without_a_word(
    make_distribution: MakeDistribution, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    _install_legacy(make_distribution, group, MAY)
    policy = TrustPolicy(mode="require", keyring=RING, plugins={"legacy": "off", "evil": "off"})
    with (
        caplog.at_level(logging.WARNING, logger="plugyard"),
        PluginManager(group=group, trust=policy) as manager,
    ):
        assert _load(manager) == {"legacy": "active", "evil": "active"}
        assert manager.info("evil").distribution == "gate-legacy"
    assert caplog.text == ""


def test_a_class_of_refused_code_registered_by_unverified_code_names_both(
    make_distribution: MakeDistribution, group: str
) -> None:
    """Unverified code registers a class from the module of a distribution the gate refused.

    The refusal is the gate's record that the refused distribution's code is
    not verified, although nothing stops other code from importing it the
    ordinary way.
    """
    claims, other = _module(), _module()
    make_distribution(
        "gate-refused",
        entry_points={group: {"other": f"{other}:Other"}},
        files={f"{other}.py": OTHER},
    )
    make_distribution(
        "gate-claims",
        entry_points={group: {"claims": f"{claims}:Claims"}},
        files={f"{claims}.py": CLAIMS.format(group=group, other=other)},
    )
    policy = TrustPolicy(mode="require", keyring=RING, plugins={"claims": "warn"})
    with PluginManager(group=group, trust=policy) as manager:
        with pytest.raises(SignatureError):
            manager.load("other")  # refused: unsigned
        assert other not in sys.modules
        assert _load(manager) == {"other": "failed", "claims": "active", "claimed": "failed"}
        error = _unverified_code(manager.errors()["claimed"], claims)
    assert error.distribution == "gate-claims"
    assert (
        f"registered by {claims}, code of 'gate-claims' imported unverified (trust mode 'warn'), "
        f"from a class of {other} (code of 'gate-refused' refused by the trust gate)"
    ) in str(error)


class Ownership:
    def execute(self, data: object = None) -> str:
        return "own"


def test_application_code_registering_under_a_verifying_policy_is_its_own(group: str) -> None:
    policy = TrustPolicy(mode="require", keyring=RING)
    with PluginManager(group=group, trust=policy, entry_points=False) as manager:
        manager.registry.register(Ownership, name="own")
        assert manager.execute("own") == "own"
        assert manager.info("own").distribution is None


def test_unverified_code_registering_first_cannot_stand_in_for_a_signed_plugin(
    install_signed: InstallSigned,
    make_distribution: MakeDistribution,
    group: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    main, legacy = _module(), _module()
    install_signed(
        "gate-main", group, {"main": f"{main}:Main"}, {f"{main}.py": MAIN.format(group=group)}
    )
    make_distribution(
        "gate-legacy",
        entry_points={group: {"legacy": f"{legacy}:Legacy"}},
        files={f"{legacy}.py": STAND_IN.format(group=group)},
    )
    policy = TrustPolicy(mode="require", keyring=RING, plugins={"legacy": "warn"})
    with (
        caplog.at_level(logging.WARNING, logger="plugyard"),
        PluginManager(group=group, trust=policy) as manager,
    ):
        manager.load("legacy")  # its import registers "main" before the signed one is imported
        assert manager.execute("main") == "main"
        assert manager.info("main").distribution == "gate-main"
    assert "ignoring the registration of 'main'" in caplog.text
    assert f"registered by {legacy}, code of 'gate-legacy' imported unverified" in caplog.text
