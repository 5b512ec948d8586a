"""Verifying installed distributions (installed here with the ``installer`` library).

The same checks against pip installs in a real virtual environment are in
``test_trust_venv.py``.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from plugyard.trust import ProblemKind, SignatureError, sign_wheel, verify_distribution
from plugyard.trust._manifest import Envelope, Manifest, make_manifest
from trust_helpers import dist_info_of, install_wheel, keyring_of, record_hash, write_wheel

KEY = Ed25519PrivateKey.generate()
RING = keyring_of(KEY)
INFO = dist_info_of("demo-pkg", "1.0")
FILES = {
    "demo/__init__.py": "VALUE = 'genuine'\n",
    "demo/core.py": "def run(): return 1\n",
    "demo/sub/__init__.py": "",
    "demo/sub/deep.py": "DEEP = True\n",
    "demo/data/table.csv": "a,b\n",
    "ns_demo/portion/__init__.py": "",
    "single_demo.py": "SINGLE = 1\n",
    f"{INFO}/entry_points.txt": "[console_scripts]\ndemo-cli = demo:run\n",
}


@pytest.fixture(name="pristine", scope="module")
def fixture_pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One installed copy for the module; tests work on copies of it."""
    root = tmp_path_factory.mktemp("pristine")
    wheel = sign_wheel(write_wheel(root / "dist", FILES), KEY)
    return install_wheel(wheel, root / "install")


@pytest.fixture(name="site")
def fixture_site(pristine: Path, tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(pristine, site)
    return site


def _problems(site: Path) -> set[tuple[ProblemKind, str | None]]:
    return {(p.kind, p.path) for p in verify_distribution("demo-pkg", RING, path=[site]).problems}


def _edit_record(site: Path, rows: list[list[str]]) -> None:
    record = site / INFO / "RECORD"
    buf = io.StringIO()
    existing = list(csv.reader(io.StringIO(record.read_text())))
    csv.writer(buf, lineterminator="\r\n").writerows(existing + rows)
    record.write_text(buf.getvalue())


def test_an_installed_signed_distribution_verifies(site: Path) -> None:
    result = verify_distribution("Demo_Pkg", RING, path=[site])

    assert result.ok, result.problems
    assert result.installed
    assert result.location == site
    assert result.distribution == "demo-pkg"
    assert result.version == "1.0"
    assert result.manifest is not None
    assert result.manifest.dist_info == INFO


def test_a_distribution_object_works_as_well_as_a_name(site: Path) -> None:
    dist = importlib.metadata.PathDistribution(site / INFO)

    assert verify_distribution(dist, RING).ok


def test_a_missing_distribution_is_not_found(site: Path) -> None:
    result = verify_distribution("no-such-dist", RING, path=[site])

    assert [p.kind for p in result.problems] == [ProblemKind.NOT_FOUND]
    with pytest.raises(SignatureError, match="not installed"):
        result.raise_for_problems()


def test_an_egg_info_is_not_verifiable(tmp_path: Path) -> None:
    egg = tmp_path / "demo_pkg-1.0.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n")

    result = verify_distribution("demo-pkg", RING, path=[tmp_path])

    assert [p.kind for p in result.problems] == [ProblemKind.NOT_FOUND]


def test_bytecode_of_listed_sources_is_tolerated_whether_recorded_or_not(site: Path) -> None:
    cache = site / "demo" / "__pycache__"
    cache.mkdir()
    for name in ("__init__.cpython-311.pyc", "core.cpython-312.opt-1.pyc"):
        (cache / name).write_bytes(b"pyc")
    _edit_record(site, [["demo/__pycache__/__init__.cpython-311.pyc", record_hash(b"pyc"), "3"]])

    assert _problems(site) == set()


@pytest.mark.parametrize(
    ("plant", "problem"),
    [
        ("demo/evil.py", "demo/evil.py"),
        ("demo/sub/evil.cpython-311-x86_64-linux-gnu.so", None),
        ("demo/evil.pth", "demo/evil.pth"),
        ("demo/core.pyc", "demo/core.pyc"),
        ("demo/data/evil.py", "demo/data/evil.py"),
        ("single_demo/__init__.py", "single_demo/__init__.py"),
        ("single_demo.pyc", "single_demo.pyc"),
        (f"{INFO}/entry_points2.txt", f"{INFO}/entry_points2.txt"),
    ],
)
def test_planted_importable_files_are_unlisted(site: Path, plant: str, problem: str | None) -> None:
    (site / plant).parent.mkdir(parents=True, exist_ok=True)
    (site / plant).write_text("raise SystemExit('planted')\n")

    problems = _problems(site)

    assert (ProblemKind.UNLISTED_FILE, problem or plant) in problems


@pytest.mark.parametrize("plant", ["ns_demo/__init__.py", "ns_demo.py", "ns_demo.pyc"])
def test_a_module_or_package_planted_over_a_namespace_shadows_it(site: Path, plant: str) -> None:
    (site / plant).write_text("raise SystemExit('planted')\n")

    assert (ProblemKind.SHADOWED, plant) in _problems(site)


def test_a_shadow_elsewhere_on_the_import_path_is_found_too(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ns_demo").mkdir(parents=True)
    (elsewhere / "ns_demo" / "other_portion").mkdir()
    monkeypatch.syspath_prepend(str(elsewhere))
    assert _problems(site) == set()  # another portion is no shadow

    (elsewhere / "ns_demo" / "__init__.py").write_text("")

    assert _problems(site) == {(ProblemKind.SHADOWED, str(elsewhere / "ns_demo" / "__init__.py"))}


def test_bytecode_of_no_listed_source_in_pycache_is_inert_and_not_looked_at(site: Path) -> None:
    """No import system runs ``__pycache__/evil.*.pyc`` without an ``evil.py`` beside it."""
    (site / "demo" / "__pycache__").mkdir()
    (site / "demo" / "__pycache__" / "evil.cpython-311.pyc").write_text("planted")

    assert _problems(site) == set()


def test_unlisted_non_code_files_inside_packages_are_tolerated(site: Path) -> None:
    (site / "demo" / "data" / "cache.json").write_text("{}")

    assert _problems(site) == set()


def test_other_distributions_files_beside_it_are_not_its_business(site: Path) -> None:
    (site / "other_pkg").mkdir()
    (site / "other_pkg" / "__init__.py").write_text("")
    (site / "ns_demo" / "other_portion").mkdir()
    (site / "ns_demo" / "other_portion" / "__init__.py").write_text("")

    assert _problems(site) == set()


def test_a_modified_file_is_a_hash_mismatch(site: Path) -> None:
    (site / "demo" / "sub" / "deep.py").write_text("DEEP = 'evil'\n")

    result = verify_distribution("demo-pkg", RING, path=[site])

    (problem,) = result.problems
    assert problem.kind is ProblemKind.HASH_MISMATCH
    assert problem.path == "demo/sub/deep.py"
    assert problem.expected == record_hash(b"DEEP = True\n")
    assert problem.actual == record_hash(b"DEEP = 'evil'\n")


def test_a_deleted_file_is_missing(site: Path) -> None:
    (site / "demo" / "data" / "table.csv").unlink()

    assert (ProblemKind.MISSING_FILE, "demo/data/table.csv") in _problems(site)


def test_a_directory_in_place_of_a_file_is_unreadable(site: Path) -> None:
    (site / "demo" / "core.py").unlink()
    (site / "demo" / "core.py").mkdir()

    assert (ProblemKind.UNREADABLE, "demo/core.py") in _problems(site)


def test_record_listing_extra_files_is_reported(site: Path) -> None:
    _edit_record(site, [["demo/extra.txt", "", ""]])

    assert _problems(site) == {(ProblemKind.UNLISTED_FILE, "demo/extra.txt")}


def test_record_missing_or_disagreeing_rows_are_reported(site: Path) -> None:
    record = site / INFO / "RECORD"
    lines = record.read_text().splitlines()
    kept = [
        line.replace(record_hash(b"def run(): return 1\n"), record_hash(b"x"))
        for line in lines
        if not line.startswith("demo/sub/deep.py,")
    ]
    record.write_text("\n".join(kept) + "\n")

    assert _problems(site) == {
        (ProblemKind.RECORD_MISMATCH, "demo/sub/deep.py"),
        (ProblemKind.RECORD_MISMATCH, "demo/core.py"),
    }


def test_a_missing_record_is_reported(site: Path) -> None:
    (site / INFO / "RECORD").unlink()

    assert _problems(site) == {(ProblemKind.RECORD_MISMATCH, f"{INFO}/RECORD")}


def test_outside_the_site_directory_only_declared_console_scripts_may_be(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = site.parent / "on_path"
    elsewhere.mkdir()
    (elsewhere / "sneaky.py").write_text("")
    monkeypatch.syspath_prepend(str(elsewhere))
    _edit_record(
        site,
        [
            ["../bin/demo-cli", "", ""],
            ["../on_path/sneaky.py", "", ""],
            ["../bin/undeclared-cli", "", ""],
            ["../share/demo/notes.txt", "", ""],
        ],
    )

    assert _problems(site) == {
        (ProblemKind.OUTSIDE_DISTRIBUTION, "../on_path/sneaky.py"),
        (ProblemKind.OUTSIDE_DISTRIBUTION, "../bin/undeclared-cli"),
        (ProblemKind.OUTSIDE_DISTRIBUTION, "../share/demo/notes.txt"),
    }


def test_a_record_row_back_into_the_site_through_a_symlink_is_resolved(site: Path) -> None:
    """A venv's ``lib64 -> lib``: a ``..`` row can land in site-packages under another name."""
    (site.parent / "lib64").symlink_to(site.name)
    (site / "evil.pth").write_text("import os; os.system('true')\n")
    _edit_record(site, [["../lib64/evil.pth", "", ""], ["../lib64/demo/core.py", "", ""]])

    assert _problems(site) == {(ProblemKind.OUTSIDE_DISTRIBUTION, "../lib64/evil.pth")}


def test_editable_installs_are_refused(site: Path) -> None:
    (site / INFO / "direct_url.json").write_text(
        json.dumps({"url": "file:///src/demo", "dir_info": {"editable": True}})
    )

    assert _problems(site) == {(ProblemKind.EDITABLE_INSTALL, f"{INFO}/direct_url.json")}


def test_a_plain_direct_url_is_fine(site: Path) -> None:
    (site / INFO / "direct_url.json").write_text(
        json.dumps({"url": "file:///dist/demo.whl", "archive_info": {}})
    )

    assert _problems(site) == set()


def _signed_by_hand(site: Path, extra: dict[str, bytes]) -> None:
    """Add files to the installed copy and a manifest signing them, as another signer might.

    ``sign_wheel`` refuses what these tests plant, so the manifest is made here.
    """
    signature = site / INFO / "plugyard-signature.json"
    signed = Manifest.from_payload(Envelope.from_json(signature.read_bytes()).payload)
    files = {f.path: (f.digest, f.size) for f in signed.files}
    for rel, content in extra.items():
        (site / rel).write_bytes(content)
        files[rel] = (record_hash(content), len(content))
    manifest = make_manifest("demo-pkg", "1.0", INFO, files)
    envelope = Envelope(manifest.to_payload(), ()).signed(KEY)
    signature.write_bytes(envelope.to_json())
    _edit_record(site, [[rel, record_hash(c), str(len(c))] for rel, c in extra.items()])


def test_a_signed_pth_file_that_extends_the_path_is_refused(site: Path) -> None:
    _signed_by_hand(site, {"demo.pth": b"/home/dev/src\n"})

    assert _problems(site) == {(ProblemKind.EDITABLE_INSTALL, "demo.pth")}


@pytest.mark.parametrize("module", ["sitecustomize.py", "usercustomize.py"])
def test_a_signed_start_up_module_is_refused(site: Path, module: str) -> None:
    _signed_by_hand(site, {module: b"import os\n"})

    assert _problems(site) == {(ProblemKind.FORBIDDEN_FILE, module)}


def test_a_signature_for_another_version_fails(tmp_path: Path, site: Path) -> None:
    v2_info = dist_info_of("demo-pkg", "2.0")
    v2_files = {p.replace(INFO, v2_info): c for p, c in FILES.items()}
    v2 = sign_wheel(write_wheel(tmp_path, v2_files, version="2.0"), KEY)
    other = install_wheel(v2, tmp_path / "install")
    (site / INFO / "plugyard-signature.json").write_bytes(
        (other / v2_info / "plugyard-signature.json").read_bytes()
    )

    problems = _problems(site)

    assert (ProblemKind.NAME_MISMATCH, f"{INFO}/plugyard-signature.json") in problems
    assert (ProblemKind.VERSION_MISMATCH, f"{INFO}/plugyard-signature.json") in problems


def test_a_fifo_in_place_of_a_file_does_not_hang_verification(site: Path) -> None:
    (site / "demo" / "core.py").unlink()
    os.mkfifo(site / "demo" / "core.py")
    signature = site / INFO / "plugyard-signature.json"
    saved = signature.read_bytes()
    signature.unlink()
    os.mkfifo(signature)

    assert _problems(site) == {(ProblemKind.MISSING_SIGNATURE, f"{INFO}/plugyard-signature.json")}
    signature.unlink()
    signature.write_bytes(saved)
    assert _problems(site) == {(ProblemKind.UNREADABLE, "demo/core.py")}
