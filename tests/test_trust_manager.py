"""The trust gate in a real venv: signed contrib wheels, tampering, policies, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wheelhouse import MakeVenv, Venv

pytestmark = pytest.mark.slow

SIGNED = ["plugyard-demo-tokenize", "plugyard-demo-normalize", "plugyard-demo-stats"]


def plugyard(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugyard", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(name="signed", scope="module")
def fixture_signed(
    wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Path]]:
    """A keyring directory, and the contrib wheels signed (extras left unsigned)."""
    root = tmp_path_factory.mktemp("signing")
    made = plugyard("keygen", "--out", root / "keys", "--id", "release")
    assert made.returncode == 0, made.stderr
    ring = root / "ring"
    ring.mkdir()
    (ring / "release.pem").write_bytes((root / "keys" / "release.pub.pem").read_bytes())
    out: dict[str, Path] = {}
    for name in SIGNED:
        done = plugyard(
            "sign", wheels[name], "--key", root / "keys" / "release.pem", "--out", f"{root}/signed/"
        )
        assert done.returncode == 0, done.stderr
        out[name] = root / "signed" / wheels[name].name
    out["plugyard-demo-extras"] = wheels["plugyard-demo-extras"]
    return ring, out


@pytest.fixture(name="venv")
def fixture_venv(make_venv: MakeVenv, signed: tuple[Path, dict[str, Path]]) -> Venv:
    return make_venv(*signed[1].values())


LOAD = """
import json, logging, sys
import plugyard
from plugyard.trust import Keyring
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
policy = plugyard.TrustPolicy(mode={mode!r}, keyring=Keyring.from_directory({ring!r}))
manager = plugyard.PluginManager(group="plugyard.demo", trust=policy)
states = manager.load_all()
errors = {{
    name: [type(e).__name__, getattr(e, "distribution", None),
           [p.kind.value for p in getattr(e, "problems", ())]]
    for name, e in manager.errors().items()
}}
loaders = {{
    m: type(sys.modules[m].__spec__.loader).__name__
    for m in sorted(sys.modules) if m.startswith("plugyard_demo")
}}
report = manager.execute("report", "Signed and sealed") if states["report"] == "active" else None
print(json.dumps([{{k: str(v) for k, v in states.items()}}, errors, loaders, report]))
"""


def load(venv: Venv, ring: Path, mode: str) -> list[Any]:
    result = venv.run(LOAD.format(mode=mode, ring=str(ring)))
    return [*json.loads(result.stdout), result.stderr]


def test_require_imports_verified_plugins_only(
    venv: Venv, signed: tuple[Path, dict[str, Path]]
) -> None:
    states, errors, loaders, report, _ = load(venv, signed[0], "require")
    assert states == {
        "charcount": "active",
        "extras": "failed",
        "normalize": "active",
        "report": "active",
        "tokenize": "active",
        "wordcount": "active",
    }
    assert errors == {"extras": ["SignatureError", "plugyard-demo-extras", ["missing-signature"]]}
    # Nothing of the unsigned distribution ran; the signed ones came through the verifier.
    assert loaders == {
        "plugyard_demo_normalize": "_VerifiedLoader",
        "plugyard_demo_stats": "_VerifiedLoader",
        "plugyard_demo_tokenize": "_VerifiedLoader",
    }
    assert report == {"words": 3, "chars": 15}


def test_tampered_file_is_refused_before_import_and_fails_dependents(
    venv: Venv, signed: tuple[Path, dict[str, Path]]
) -> None:
    module = venv.site_packages / "plugyard_demo_normalize" / "__init__.py"
    marker = venv.path / "pwned"
    module.write_text(
        module.read_text() + f"\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    )
    states, errors, loaders, report, _ = load(venv, signed[0], "require")
    assert not marker.exists(), "the tampered module ran"
    assert states["tokenize"] == "active"
    assert states["normalize"] == "failed"
    assert errors["normalize"] == [
        "SignatureError",
        "plugyard-demo-normalize",
        ["hash-mismatch"],
    ]
    for dependent in ("wordcount", "charcount", "report"):
        assert states[dependent] == "failed"
        assert errors[dependent][0] == "DependencyFailedError"
    assert "plugyard_demo_normalize" not in loaders
    assert report is None

    listed = subprocess.run(
        [venv.python.parent / "plugyard", "verify", "--group", "plugyard.demo",
         "--keyring", signed[0]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.returncode == 1
    lines = listed.stderr.splitlines()
    assert any(
        line.startswith("plugyard: plugyard-demo-normalize 1.0.0: hash-mismatch: "
                        "plugyard_demo_normalize/__init__.py")
        and "(expected sha256=" in line
        for line in lines
    ), lines  # fmt: skip
    assert any("plugyard-demo-extras 0.3.0: missing-signature" in line for line in lines)
    assert "plugyard-demo-tokenize 1.2.0: ok, signed by" in listed.stdout


def test_warn_imports_unverified_plugins_and_says_so(
    venv: Venv, signed: tuple[Path, dict[str, Path]]
) -> None:
    states, errors, loaders, _, stderr = load(venv, signed[0], "warn")
    assert set(states.values()) == {"active"}
    assert errors == {}
    assert loaders["plugyard_demo_extras"] == "SourceFileLoader"
    assert "plugin 'extras' imported unverified" in str(stderr)
    assert "missing-signature" in str(stderr)


def test_policy_per_group_and_plugin(venv: Venv, signed: tuple[Path, dict[str, Path]]) -> None:
    """A mode for a module entry point covers importing it; what it registers has its own."""
    code = textwrap.dedent(
        f"""
        import json
        import plugyard
        from plugyard.trust import Keyring
        policy = plugyard.TrustPolicy(
            mode="require",
            keyring=Keyring.from_directory({str(signed[0])!r}),
            plugins={{"extras": "off", "shout": "off"}},
        )
        manager = plugyard.PluginManager(group="plugyard.demo", trust=policy)
        states = {{k: str(v) for k, v in manager.load_all().items()}}
        errors = {{
            k: [p.kind.value for p in getattr(e, "problems", ())]
            for k, e in manager.errors().items()
        }}
        print(json.dumps([states, errors, manager.info("shout").distribution]))
        """
    )
    states, errors, credited = json.loads(venv.run(code).stdout)
    assert states["shout"] == "active"
    assert credited == "plugyard-demo-extras"
    assert states["tokenize"] == "active"
    # "reverse" is registered by the same unchecked code, but must be verified.
    assert states["reverse"] == "failed"
    assert errors == {"reverse": ["unverified-code"]}
