"""Plugin directories: real signed wheels and single-file plugins, installed and imported."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from plugin_projects import GROUP, SignedWheels, cli
from plugyard import PluginManager, TrustPolicy, register
from plugyard.exceptions import (
    PluginConflictError,
    PluginNotActiveError,
    SignatureError,
    UnmetRequirementError,
)
from plugyard.trust import Keyring, load_private_key, load_public_key, sign_file
from trust_helpers import install_wheel


def loader_of(module: str) -> str:
    spec = sys.modules[module].__spec__
    assert spec is not None
    return type(spec.loader).__name__


def file_of(module: str) -> Path:
    where = sys.modules[module].__file__
    assert where is not None
    return Path(where)


def data_home() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "plugyard" / "plugins"


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` with its mode, modification time and content."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(root))] = (st.st_mode, st.st_mtime_ns, path.read_bytes())
    return found


def test_listing_reads_the_wheels_and_imports_nothing(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0", "pd-echo-1.0")
    before = set(data_home().rglob("*")) if data_home().exists() else set()
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
    listed = {c.name: c for c in manager.candidates()}
    assert set(listed) == {"echo", "tok"}
    tok = listed["tok"]
    assert (tok.version, tok.distribution, tok.kind, tok.state) == (
        "1.0",
        "pd-tok",
        "entry point",
        "discovered",
    )
    assert tok.location == str(plugin_dir / plugin_wheels.wheels["pd-tok-1.0"].name)
    assert not [m for m in sys.modules if m.startswith("pd_")]
    assert (set(data_home().rglob("*")) if data_home().exists() else set()) == before


def test_a_signed_wheel_is_verified_installed_and_imported_from_its_own_directory(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    (wheel,) = plugin_wheels.copy(plugin_dir, "pd-tok-1.1")
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy()
    ) as manager:
        assert manager.execute("tok", "a b") == {"tok": ["1.1"] * 10, "words": ["a", "b"]}
        assert loader_of("pd_tok") == "_VerifiedLoader"
    site = file_of("pd_tok").parent.parent
    assert site.name == "site"
    assert site.parent.parent == data_home() / "pd-tok"
    assert site.parent.name.startswith("1.1-")
    # Read-only, no bytecode, nothing on sys.path, and the wheel itself untouched.
    assert not list(site.rglob("__pycache__"))
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in site.rglob("*"))
    assert all(p.stat().st_mode & 0o222 == 0 for p in site.rglob("*"))
    assert str(site) not in sys.path
    assert wheel.read_bytes() == plugin_wheels.wheels["pd-tok-1.1"].read_bytes()


def test_without_verification_a_wheel_is_imported_from_its_installation_without_bytecode(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        assert manager.execute("tok", "x")["tok"] == ["1.0"] * 10
        assert loader_of("pd_tok.part3") == "_SourceLoader"
        assert file_of("pd_tok.part3").is_relative_to(data_home())
    assert not list(data_home().rglob("__pycache__"))


def test_installing_twice_reuses_the_installation_and_changes_no_file(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        manager.load("tok")
    installed = snapshot(data_home() / "pd-tok")
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy()
    ) as manager:
        manager.load("tok")
    assert snapshot(data_home() / "pd-tok") == installed


def test_an_unsigned_wheel_fails_alone_under_a_requiring_policy(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    shutil.copy2(plugin_wheels.unsigned["pd-tok-1.0"], plugin_dir)
    plugin_wheels.copy(plugin_dir, "pd-needs-1.0")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy())
    with pytest.raises(SignatureError) as exc:
        manager.load("tok")
    assert (exc.value.plugin, exc.value.distribution) == ("tok", "pd-tok")
    assert [p.kind.value for p in exc.value.problems] == ["missing-signature"]
    assert "pd_tok" not in sys.modules
    digest = hashlib.sha256(plugin_wheels.unsigned["pd-tok-1.0"].read_bytes()).hexdigest()
    assert not (data_home() / "pd-tok" / f"1.0-{digest[:16]}").exists()


def test_unmet_requirements_fail_the_plugin_alone_naming_each(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-needs-1.0", "pd-tok-1.0")
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        states = manager.load_all()
        assert states == {"needs": "failed", "tok": "active"}
        error = manager.errors()["needs"]
    assert isinstance(error, UnmetRequirementError)
    packaging = __import__("packaging").__version__
    assert sorted(error.requirements) == [
        f"packaging<1 ({packaging} installed)",
        "pd-no-such-distribution>=1 (not installed)",
    ]
    assert "plugyard installs no requirements" in str(error)
    assert "pd_needs" not in sys.modules


def test_a_half_copied_wheel_is_skipped_and_read_again_once_complete(
    plugin_wheels: SignedWheels, plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = plugin_wheels.wheels["pd-echo-1.0"].read_bytes()
    target = plugin_dir / plugin_wheels.wheels["pd-echo-1.0"].name
    target.write_bytes(data[: len(data) // 2])
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        assert manager.states() == {"tok": "discovered"}
    assert any("skipping" in r.message and target.name in r.message for r in caplog.records)
    target.write_bytes(data)
    os.utime(target, ns=(1, 1))  # a size and time of its own, as a finished copy has
    assert manager.rescan() == ["echo"]
    assert manager.execute("echo", "hi") == {"echo": "1.0", "tok": ["1.0"] * 10, "words": ["hi"]}


YELL = '''\
__version__ = "{version}"


class Yell:
    """Shouts what it is given."""

    def execute(self, data):
        return str(data).upper() + "{suffix}"


plugin = Yell
'''


def write_yell(directory: Path, version: str = "1.0", suffix: str = "!") -> Path:
    path = directory / "yell.py"
    path.write_text(YELL.format(version=version, suffix=suffix), encoding="utf-8")
    return path


def test_a_single_file_plugin_is_signed_verified_and_imported_under_its_own_name(
    plugin_wheels: SignedWheels, plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yell(plugin_dir)
    cli("sign", path, "--key", plugin_wheels.private_key)
    assert Path(f"{path}.sig").is_file()
    cli("verify", path, "--keyring", plugin_wheels.keyring)
    assert "plugyard-file-yell 1.0: ok, signed by" in capsys.readouterr().out
    with PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy()
    ) as manager:
        (candidate,) = manager.candidates()
        assert (candidate.name, candidate.version, candidate.distribution) == (
            "yell",
            "1.0",
            "plugyard-file-yell",
        )
        assert manager.execute("yell", "hey") == "HEY!"
        assert loader_of("plugyard_file_yell") == "_VerifiedLoader"
        assert "yell" not in sys.modules


def test_a_changed_single_file_plugin_fails_verification_and_is_not_run(
    plugin_wheels: SignedWheels, plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_yell(plugin_dir)
    sign_file(path, load_private_key(plugin_wheels.private_key))
    marker = plugin_dir.parent / "ran"
    path.write_text(
        path.read_text() + f"\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\n",
        encoding="utf-8",
    )
    from plugyard.cli import main

    assert main(["verify", str(path), "--keyring", str(plugin_wheels.keyring)]) == 1
    assert "hash-mismatch: yell.py: content differs from the signed manifest" in (
        capsys.readouterr().err
    )
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], trust=plugin_wheels.policy())
    with pytest.raises(SignatureError) as exc:
        manager.load("yell")
    assert [p.kind.value for p in exc.value.problems] == ["hash-mismatch"]
    assert not marker.exists()
    with pytest.raises(PluginNotActiveError):
        manager.execute("yell", "x")


def test_a_renamed_single_file_plugin_no_longer_matches_its_signature(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    path = write_yell(plugin_dir)
    sign_file(path, load_private_key(plugin_wheels.private_key))
    path.rename(plugin_dir / "holler.py")
    Path(f"{path}.sig").rename(plugin_dir / "holler.py.sig")
    ring = Keyring.from_keys([load_public_key(plugin_wheels.keyring / "tests.pem")])
    manager = PluginManager(
        group=GROUP, plugin_dirs=[plugin_dir], trust=TrustPolicy(mode="require", keyring=ring)
    )
    with pytest.raises(SignatureError) as exc:
        manager.load("holler")
    assert {p.kind.value for p in exc.value.problems} == {"name-mismatch"}


def test_two_distributions_providing_one_name_conflict(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    (plugin_dir / "tok.py").write_text("plugin = print\n", encoding="utf-8")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
    assert manager.states() == {"tok": "failed"}
    error = manager.errors()["tok"]
    assert isinstance(error, PluginConflictError)
    assert error.providers == ("pd-tok 1.0", "plugyard-file-tok 0")


def test_code_registering_a_directory_plugin_s_name_conflicts_at_import(plugin_dir: Path) -> None:
    write_yell(plugin_dir)

    @register(group=GROUP, name="yell")
    class Impostor:
        pass

    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
    with pytest.raises(PluginConflictError) as exc:
        manager.load("yell")
    assert exc.value.providers == ("plugyard-file-yell 1.0", f"{__name__}:{Impostor.__qualname__}")


def test_the_installed_distribution_and_a_directory_copy_are_two_versions(
    plugin_wheels: SignedWheels, plugin_dir: Path, tmp_path: Path
) -> None:
    """Not a conflict: the newest wins, and a tie goes to the plugin directory."""
    site = install_wheel(plugin_wheels.wheels["pd-tok-1.1"], tmp_path / "env")
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], path=[str(site)])
    listed = [(c.version, c.location, c.chosen) for c in manager.candidates()]
    assert listed == [
        ("1.1", None, True),
        ("1.0", str(plugin_dir / plugin_wheels.wheels["pd-tok-1.0"].name), False),
    ]
    del manager

    plugin_wheels.copy(plugin_dir, "pd-tok-1.1")
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir], path=[str(site)])
    chosen = [c for c in manager.candidates() if c.chosen]
    assert [(c.version, c.location) for c in chosen] == [
        ("1.1", str(plugin_dir / plugin_wheels.wheels["pd-tok-1.1"].name))
    ]


def test_the_cli_lists_and_runs_directory_plugins(
    plugin_wheels: SignedWheels, plugin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from plugyard.cli import main

    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    write_yell(plugin_dir)
    assert main(["list", "--group", GROUP, "--plugin-dir", str(plugin_dir), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["plugins"]
    assert [(p["name"], p["version"], Path(p["location"]).name) for p in listed] == [
        ("tok", "1.0", plugin_wheels.wheels["pd-tok-1.0"].name),
        ("yell", "1.0", "yell.py"),
    ]
    assert main(["run", "yell", "quiet", "--group", GROUP, "--plugin-dir", str(plugin_dir)]) == 0
    assert capsys.readouterr().out == '"QUIET!"\n'
    code = main(
        ["run", "yell", "x", "--group", GROUP, "--plugin-dir", str(plugin_dir), "--keyring",
         str(plugin_wheels.keyring)]
    )  # fmt: skip
    assert code == 1
    assert "yell.py.sig: not signed" in capsys.readouterr().err


def test_single_file_listing_reads_the_version_without_running_the_file(plugin_dir: Path) -> None:
    marker = plugin_dir.parent / "ran"
    (plugin_dir / "quiet.py").write_text(
        textwrap.dedent(
            f"""\
            import pathlib
            pathlib.Path({str(marker)!r}).touch()
            __version__: str = "2.5"
            plugin = print
            """
        ),
        encoding="utf-8",
    )
    manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
    (candidate,) = manager.candidates()
    assert (candidate.name, candidate.version) == ("quiet", "2.5")
    assert not marker.exists()


def test_a_second_key_adds_its_signature_and_a_changed_file_cannot_be_cosigned(
    plugin_wheels: SignedWheels, plugin_dir: Path, tmp_path: Path
) -> None:
    from plugyard.exceptions import InvalidWheelError
    from plugyard.trust import TrustedKey, generate_key, verify_file

    path = write_yell(plugin_dir)
    first = load_private_key(plugin_wheels.private_key)
    second_private, second_public = generate_key(tmp_path / "second", "second")
    second = load_private_key(second_private)
    sign_file(path, first)
    sign_file(path, second)
    ring = Keyring.from_keys(
        [TrustedKey(first.public_key()), TrustedKey(load_public_key(second_public))],
        threshold=2,
    )
    result = verify_file(path, ring)
    assert result.ok
    assert len(result.signers) == 2
    path.write_text(path.read_text() + "# changed\n", encoding="utf-8")
    with pytest.raises(InvalidWheelError) as exc:
        sign_file(path, second)
    assert [p.kind.value for p in exc.value.problems] == ["hash-mismatch"]


def test_a_single_file_plugin_declares_its_dependencies_by_registering(
    plugin_wheels: SignedWheels, plugin_dir: Path
) -> None:
    plugin_wheels.copy(plugin_dir, "pd-tok-1.0")
    (plugin_dir / "count.py").write_text(
        textwrap.dedent(
            f"""\
            import plugyard

            __version__ = "3.1"


            @plugyard.register(group={GROUP!r}, name="count", depends_on=["tok>=1"])
            class Count:
                def setup(self, ctx):
                    self.tok = ctx.dependency("tok")

                def execute(self, data):
                    return len(self.tok.execute(data)["words"])


            plugin = Count
            """
        ),
        encoding="utf-8",
    )
    with PluginManager(group=GROUP, plugin_dirs=[plugin_dir]) as manager:
        assert manager.execute("count", "one two three") == 3
        info = manager.info("count")
        assert (str(info.version), info.distribution) == ("3.1", "plugyard-file-count")
        assert [str(d) for d in info.depends_on] == ["tok>=1"]


def test_module_entry_points_in_a_plugin_directory_are_ignored_with_a_warning(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from trust_helpers import dist_info_of, write_wheel

    info = dist_info_of("pd-mixed", "1.0")
    write_wheel(
        plugin_dir,
        {
            "pd_mixed.py": "class Thing:\n    def execute(self, data):\n        return 'thing'\n",
            f"{info}/entry_points.txt": f"[{GROUP}]\nthing = pd_mixed:Thing\nall = pd_mixed\n",
        },
        name="pd-mixed",
    )
    with caplog.at_level(logging.WARNING, logger="plugyard"):
        manager = PluginManager(group=GROUP, plugin_dirs=[plugin_dir])
        assert [c.name for c in manager.candidates()] == ["thing"]
    assert any("module entry point 'all'" in r.getMessage() for r in caplog.records)
    assert manager.execute("thing") == "thing"


@pytest.mark.parametrize(
    ("dist_info", "name", "implied"),
    [
        ("plugyard_file_yell-1.0.dist-info", "yell", ["plugyard_file_yell:plugin"]),
        ("plugyard_file_a_b-2.dist-info", "a.b", ["plugyard_file_a_b:plugin"]),
        # Another plugin's name, or a wheel's dist-info: nothing is implied.
        ("plugyard_file_yell-1.0.dist-info", "other", []),
        ("yell-1.0.dist-info", "yell", []),
    ],
)
def test_a_single_file_signature_implies_its_own_entry_point_only(
    dist_info: str, name: str, implied: list[str]
) -> None:
    """The one entry point a signed single file may be imported through, and no other."""
    from plugyard.trust._entrypoints import _implied

    assert _implied(dist_info, name) == implied
