"""The attacks of the first trust review, through the manager, installed with ``installer``.

``tests/test_trust_venv.py`` checks each of these against
``verify_distribution`` and the importer; here the signed victim is
installed into the venv with the ``installer`` library, each attack is a copy
of that installation changed one way, and one host process runs a manager
under ``require`` over each copy in turn: the victim must fail with the
problem, its dependent with it, and the planted code never run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from attacks.attackkit import GROUP, Env, evil, plugyard_cli
from attacks.conftest import Keys, MakeEnv, Wheels
from trust_helpers import forge_pyc, install_wheel

pytestmark = pytest.mark.slow

INFO = "atk_victim-1.0.dist-info"
SIG = f"{INFO}/plugyard-signature.json"

HOST = """
import json, os, sys
import plugyard
from plugyard.trust import Keyring
config = json.loads(os.environ["ATTACK_CONFIG"])
policy = plugyard.TrustPolicy(mode="require", keyring=Keyring.from_directory(config["keyring"]))
outcomes = {}
for case, site in config["cases"].items():
    for name in [m for m in sys.modules if m.startswith(("atkvictim", "atkdependent"))]:
        del sys.modules[name]
    path = [site, config["site"]]
    manager = plugyard.PluginManager(group=config["group"], trust=policy, path=path)
    states = manager.load_all()
    errors = manager.errors()
    victim = errors.get("victim")
    outcomes[case] = {
        "victim": str(states["victim"]),
        "dependent": str(states["dependent"]),
        "problems": [[p.kind.value, p.path] for p in getattr(victim, "problems", ())],
        "error": type(victim).__name__ if victim else None,
        "dependent_error": type(errors["dependent"]).__name__ if "dependent" in errors else None,
        "result": manager.execute("victim") if str(states["victim"]) == "active" else None,
        "loader": type(sys.modules["atkvictim.core"].__spec__.loader).__name__
        if "atkvictim.core" in sys.modules else None,
    }
    manager.shutdown()
print("REPORT " + json.dumps(outcomes))
"""


def _copy(site: Path, to: Path) -> Path:
    for name in ("atkvictim", INFO):
        shutil.copytree(site / name, to / name, symlinks=True)
    return to


@pytest.fixture(name="world", scope="module")
def fixture_world(
    make_env: MakeEnv,
    attack_wheels: Wheels,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Env, dict[str, Path]]:
    env = make_env("atk-dependent", "atk-provider", installer=("atk-victim",))
    root = tmp_path_factory.mktemp("earlier-cases")
    site = env.site
    cases: dict[str, Path] = {}

    def case(name: str) -> Path:
        cases[name] = _copy(site, root / name)
        return cases[name]

    case("genuine")
    (case("modified-py") / "atkvictim" / "core.py").write_text(evil("modified core.py ran"))
    (case("added-py") / "atkvictim" / "extra.py").write_text(evil("added extra.py ran"))
    forge_pyc(case("planted-pyc") / "atkvictim" / "core.py", evil("planted pyc ran"))
    eps = case("entry-points") / INFO / "entry_points.txt"
    eps.write_text(eps.read_text().replace("atkvictim:Victim", "atkvictim.core:VALUE"))
    (case("deleted") / "atkvictim" / "lazy.py").unlink()
    provider_sig = site / "atk_provider-1.0.dist-info" / "plugyard-signature.json"
    shutil.copy(provider_sig, case("copied-signature") / SIG)
    rogue = root / "rogue"
    plugyard_cli(
        "sign", attack_wheels.unsigned["atk-victim"], "--key", keys.vendor, "--out", f"{rogue}/"
    )
    rogue_site = install_wheel(
        rogue / attack_wheels.unsigned["atk-victim"].name, root / "rogue-install"
    )
    shutil.copy(rogue_site / SIG, case("rogue-key") / SIG)
    sig = case("truncated") / SIG
    sig.write_bytes(sig.read_bytes()[:200])
    (case("garbage") / SIG).write_bytes(b"\x89PNG\r\n\x1a\n not a signature")
    unsigned = install_wheel(attack_wheels.unsigned["atk-victim"], root / "unsigned-install")
    cases["unsigned"] = _copy(unsigned, root / "unsigned")
    planted = root / "attacker-owned" / "plugins"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text(evil("a package through a symlink ran"))
    (case("symlinked-dir") / "atkvictim" / "plugins").symlink_to(planted)
    (case("case-variant") / "atkvictim" / "Core.py").write_text(evil("Core.py ran"))
    (case("editable") / INFO / "direct_url.json").write_text(
        json.dumps({"url": "file:///src/atk-victim", "dir_info": {"editable": True}})
    )
    return env, cases


@pytest.fixture(name="outcomes", scope="module")
def fixture_outcomes(
    world: tuple[Env, dict[str, Path]], keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, Any]], Path]:
    env, cases = world
    marker = tmp_path_factory.mktemp("earlier-marker") / "attacker-code-ran"
    config = {
        "group": GROUP,
        "keyring": str(keys.ring),
        "site": str(env.site),
        "cases": {name: str(site) for name, site in cases.items()},
    }
    done = env.venv.run(
        HOST, env={"ATTACK_CONFIG": json.dumps(config), "ATTACK_MARKER": str(marker)}
    )
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")]
    return json.loads(line.removeprefix("REPORT ")), marker


def test_installer_installed_the_victim(world: tuple[Env, dict[str, Path]]) -> None:
    env, _ = world
    assert (env.site / INFO / "INSTALLER").read_text() == "installer\n"


@pytest.mark.parametrize("case", ["genuine", "planted-pyc"])
def test_genuine_installations_load_through_the_verified_importer(
    outcomes: tuple[dict[str, dict[str, Any]], Path], case: str
) -> None:
    found, marker = outcomes
    assert found[case]["victim"] == "active", found[case]
    assert found[case]["result"] == "genuine"
    assert found[case]["loader"] == "_VerifiedLoader"
    assert found[case]["dependent"] == "active"
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize(
    ("case", "kind", "path"),
    [
        ("modified-py", "hash-mismatch", "atkvictim/core.py"),
        ("added-py", "unlisted-file", "atkvictim/extra.py"),
        ("entry-points", "hash-mismatch", f"{INFO}/entry_points.txt"),
        ("deleted", "missing-file", "atkvictim/lazy.py"),
        ("copied-signature", "name-mismatch", SIG),
        ("rogue-key", "unknown-key", SIG),
        ("truncated", "malformed-signature", SIG),
        ("garbage", "malformed-signature", SIG),
        ("unsigned", "missing-signature", SIG),
        ("editable", "editable-install", f"{INFO}/direct_url.json"),
        # Beyond the first review: a directory symlinked into the package, a case variant.
        ("symlinked-dir", "unlisted-file", "atkvictim/plugins"),
        ("case-variant", "unlisted-file", "atkvictim/Core.py"),
    ],
)
def test_tampered_installations_fail_with_their_dependents_and_verify_says_so(
    world: tuple[Env, dict[str, Path]],
    outcomes: tuple[dict[str, dict[str, Any]], Path],
    keys: Keys,
    case: str,
    kind: str,
    path: str,
) -> None:
    env, cases = world
    found, marker = outcomes
    outcome = found[case]

    assert not marker.exists(), marker.read_text()
    assert outcome["victim"] == "failed"
    assert outcome["error"] == "SignatureError"
    assert [kind, path] in outcome["problems"]
    assert outcome["dependent"] == "failed"
    assert outcome["dependent_error"] == "DependencyFailedError"
    verify = env.cli("verify", cases[case] / INFO, "--keyring", keys.ring)
    assert verify.code == 1
    assert f"{kind}: {path}" in verify.stderr


def test_verify_agrees_the_installer_installation_is_genuine(
    world: tuple[Env, dict[str, Path]],
) -> None:
    env, _ = world
    verify = env.verify_group()

    assert verify.code == 0, verify.stderr
    assert {r["distribution"] for r in json.loads(verify.stdout)} >= {"atk-victim", "atk-dependent"}
