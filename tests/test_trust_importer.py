"""The verified importer, in this process, on distributions installed with ``installer``."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.resources
import importlib.util
import inspect
import itertools
import marshal
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import plugyard
from plugyard.trust import (
    ProblemKind,
    SignatureError,
    VerificationResult,
    VerifiedImporter,
    _codecache,
    _importer,
    default_cache_dir,
    sign_wheel,
    verify_distribution,
    verify_wheel,
)
from plugyard.trust._layout import layout_of
from trust_helpers import dist_info_of, forge_pyc, install_wheel, keyring_of, write_wheel

KEY = Ed25519PrivateKey.generate()
RING = keyring_of(KEY)
_numbers = itertools.count()


@attrs.frozen
class Installed:
    """A signed distribution installed under a unique package name."""

    name: str
    package: str
    site: Path
    result: VerificationResult


@pytest.fixture(name="clean_imports")
def fixture_clean_imports() -> Iterator[None]:
    """Undo what a test imports and puts on sys.meta_path."""
    before_modules = set(sys.modules)
    before_path = list(sys.meta_path)
    yield
    for name in set(sys.modules) - before_modules:
        del sys.modules[name]
    sys.meta_path[:] = before_path
    importlib.invalidate_caches()


@pytest.fixture(name="install")
def fixture_install(tmp_path: Path, clean_imports: None) -> Callable[..., Installed]:
    def install(
        files: dict[str, str], *, on_path: bool = False, entry_points: str | None = None
    ) -> Installed:
        n = next(_numbers)
        package, name = f"vpkg{n}", f"vdist{n}"
        concrete = {p.replace("PKG", package): c for p, c in files.items()}
        if entry_points is not None:
            concrete[f"{dist_info_of(name, '1.0')}/entry_points.txt"] = entry_points.replace(
                "PKG", package
            )
        root = tmp_path / f"d{n}"
        wheel = sign_wheel(write_wheel(root / "dist", concrete, name=name), KEY)
        site = install_wheel(wheel, root / "install")
        if on_path:
            sys.path.insert(0, str(site))
        result = verify_distribution(name, RING, path=[site])
        assert result.ok, result.problems
        return Installed(name, package, site, result)

    return install


PACKAGE = {
    "PKG/__init__.py": "VALUE = 'genuine'\nfrom . import helper\n",
    "PKG/helper.py": "def shout(x):\n    return x.upper()\n",
    "PKG/sub/__init__.py": "",
    "PKG/sub/deep.py": "def fail():\n    raise ValueError('deep failure')\n",
    "PKG/resources/greeting.txt": "hello",
}


@pytest.fixture(name="importer")
def fixture_importer(tmp_path: Path) -> Iterator[VerifiedImporter]:
    with VerifiedImporter(tmp_path / "code-cache") as importer:
        yield importer


def test_a_verified_package_imports_with_its_submodules(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)

    assert importer.add(dist.result) == (dist.package,)
    module = importlib.import_module(dist.package)
    deep = importlib.import_module(f"{dist.package}.sub.deep")

    assert module.VALUE == "genuine"
    assert module.helper.shout("a") == "A"
    assert module.__file__ == str(dist.site / dist.package / "__init__.py")
    assert module.__path__ == [str(dist.site / dist.package)]
    assert module.__spec__ is not None
    assert module.__spec__.origin == module.__file__
    assert deep.__file__ == str(dist.site / dist.package / "sub" / "deep.py")
    assert deep.__package__ == f"{dist.package}.sub"
    assert importer.distributions == {dist.name}
    assert importer.modules_of(dist.name) == (
        dist.package,
        f"{dist.package}.helper",
        f"{dist.package}.sub",
        f"{dist.package}.sub.deep",
    )


def test_resources_source_and_tracebacks_work(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    deep = importlib.import_module(f"{dist.package}.sub.deep")

    text = importlib.resources.files(dist.package).joinpath("resources/greeting.txt").read_text()
    assert text == "hello"
    assert "raise ValueError('deep failure')" in inspect.getsource(deep)
    with pytest.raises(ValueError, match="deep failure") as exc:
        deep.fail()
    formatted = "".join(traceback.format_exception(exc.value))
    assert "deep.py" in formatted
    assert "raise ValueError('deep failure')" in formatted


def test_compiled_code_is_cached_by_verified_hash(
    install: Callable[..., Installed], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = install(PACKAGE)
    compiled: list[str] = []

    def counting_compile(source: bytes, filename: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(filename)
        return compile(source, filename, *args, **kwargs)

    monkeypatch.setattr(_importer, "compile", counting_compile, raising=False)
    cache = tmp_path / "cache"
    for _ in range(2):
        with VerifiedImporter(cache) as importer:
            importer.add(dist.result)
            importlib.import_module(dist.package)
        for name in [m for m in sys.modules if m.startswith(dist.package)]:
            del sys.modules[name]

    assert sorted(Path(f).name for f in compiled) == ["__init__.py", "helper.py"]
    assert len(list(cache.glob("*.bin"))) == 2
    assert stat_mode(cache) == 0o700


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_corrupt_cache_entry_is_recompiled(
    install: Callable[..., Installed], tmp_path: Path
) -> None:
    dist = install({"PKG/__init__.py": "VALUE = 'genuine'\n"})
    cache = tmp_path / "cache"
    with VerifiedImporter(cache) as importer:
        importer.add(dist.result)
        importlib.import_module(dist.package)
    del sys.modules[dist.package]
    (entry,) = cache.glob("*.bin")
    entry.write_bytes(entry.read_bytes()[:40] + b"garbage")

    with VerifiedImporter(cache) as importer:
        importer.add(dist.result)
        assert importlib.import_module(dist.package).VALUE == "genuine"


def test_a_cache_directory_others_can_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    assert VerifiedImporter(shared).cache_dir is None
    assert VerifiedImporter(tmp_path / "mine").cache_dir == tmp_path / "mine"
    assert VerifiedImporter(tmp_path / "off", cache=False).cache_dir is None


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "plugyard" / "code"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "plugyard" / "code"


def test_a_forged_pyc_runs_by_default_but_never_through_the_importer(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    source = dist.site / dist.package / "helper.py"
    forge_pyc(source, "def shout(x):\n    return 'pwned'\n")
    # What the default import system does with it: the forged code runs.
    spec = importlib.util.spec_from_file_location("forged_probe", source)
    assert spec is not None
    assert spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.shout("a") == "pwned"
    # Verification tolerates bytecode of listed sources: the importer ignores it.
    assert verify_distribution(dist.name, RING, path=[dist.site]).ok

    importer.add(dist.result)
    module = importlib.import_module(dist.package)

    assert module.helper.shout("a") == "A"


def test_a_file_changed_after_verification_is_refused_at_import(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    (dist.site / dist.package / "helper.py").write_text("raise SystemExit('evil')\n")

    with pytest.raises(SignatureError) as exc:
        importlib.import_module(dist.package)

    (problem,) = exc.value.problems
    assert problem.kind is ProblemKind.HASH_MISMATCH
    assert problem.path == str(dist.site / dist.package / "helper.py")
    assert exc.value.distribution == dist.name
    assert dist.package not in sys.modules


def test_a_deleted_module_is_refused_at_import(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    (dist.site / dist.package / "sub" / "deep.py").unlink()

    with pytest.raises(SignatureError, match="cannot be read"):
        importlib.import_module(f"{dist.package}.sub.deep")


def test_unlisted_submodules_are_refused_or_missing(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    (dist.site / dist.package / "planted.py").write_text("raise SystemExit('planted')\n")
    (dist.site / dist.package / "pkgplant").mkdir()
    (dist.site / dist.package / "pkgplant" / "__init__.py").write_text("")

    for name in ("planted", "pkgplant"):
        with pytest.raises(SignatureError) as exc:
            importlib.import_module(f"{dist.package}.{name}")
        assert exc.value.problems[0].kind is ProblemKind.UNLISTED_FILE
    with pytest.raises(ModuleNotFoundError, match="not in the signed manifest") as missing:
        importlib.import_module(f"{dist.package}.absent")
    assert missing.value.name == f"{dist.package}.absent"


def test_modules_are_imported_from_the_verified_location_whatever_sys_path_says(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    dist = install(PACKAGE)
    impostor = tmp_path / "impostor"
    (impostor / dist.package).mkdir(parents=True)
    (impostor / dist.package / "__init__.py").write_text("VALUE = 'impostor'\n")
    sys.path.insert(0, str(impostor))

    importer.add(dist.result)

    assert importlib.import_module(dist.package).VALUE == "genuine"


def test_a_namespace_portion_imports(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(
        {"PKG_ns/portion/__init__.py": "WHERE = 'portion'\n", "PKG_top.py": "TOP = 1\n"},
        on_path=True,
    )

    importer.add(dist.result)

    portion = importlib.import_module(f"{dist.package}_ns.portion")
    assert portion.WHERE == "portion"
    assert portion.__spec__ is not None
    assert isinstance(portion.__spec__.loader, _importer._VerifiedLoader)
    assert importlib.import_module(f"{dist.package}_top").TOP == 1


def test_an_init_planted_in_a_namespace_portion_is_refused(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install({"PKG_ns/portion/__init__.py": ""}, on_path=True)
    importer.add(dist.result)
    (dist.site / f"{dist.package}_ns" / "__init__.py").write_text("raise SystemExit('planted')\n")

    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}_ns.portion")

    assert exc.value.problems[0].kind is ProblemKind.SHADOWED


def test_only_ok_installed_results_can_be_added(tmp_path: Path, importer: VerifiedImporter) -> None:
    wheel = sign_wheel(write_wheel(tmp_path, {"x/__init__.py": ""}), KEY)
    unsigned = write_wheel(tmp_path / "u", {"x/__init__.py": ""})

    with pytest.raises(SignatureError, match="only installed distributions"):
        importer.add(verify_wheel(wheel, RING))
    with pytest.raises(SignatureError, match="not signed"):
        importer.add(verify_wheel(unsigned, RING))


def test_a_module_imported_before_verification_is_refused(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE, on_path=True)
    importer.uninstall()
    importlib.import_module(dist.package)

    with pytest.raises(SignatureError) as exc:
        importer.add(dist.result)

    kinds = {p.kind for p in exc.value.problems}
    assert kinds == {ProblemKind.IMPORTED_UNVERIFIED}


def test_two_distributions_cannot_provide_one_module(
    tmp_path: Path, importer: VerifiedImporter
) -> None:
    results = []
    for name in ("dist-a", "dist-b"):
        wheel = sign_wheel(
            write_wheel(tmp_path / name, {"clashpkg/__init__.py": name}, name=name), KEY
        )
        site = install_wheel(wheel, tmp_path / name / "install")
        results.append(verify_distribution(name, RING, path=[site]))
    importer.add(results[0])

    with pytest.raises(SignatureError) as exc:
        importer.add(results[1])

    assert {p.kind for p in exc.value.problems} == {ProblemKind.MODULE_CONFLICT}
    importer.remove("dist-a")
    assert importer.add(results[1]) == ("clashpkg",)
    assert importer.distributions == {"dist-b"}


def test_adding_again_replaces_and_remove_lets_go(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    importer.add(dist.result)

    importer.remove(dist.name)

    assert importer.distributions == frozenset()
    assert importer.find_spec(dist.package) is None


def test_install_is_idempotent_and_uninstall_removes(tmp_path: Path) -> None:
    importer = VerifiedImporter(tmp_path)
    importer.install()
    importer.install()
    try:
        assert sys.meta_path[0] is importer
        assert sys.meta_path.count(importer) == 1
    finally:
        importer.uninstall()
    assert importer not in sys.meta_path


def test_layout_names_modules_packages_and_extensions() -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    layout = layout_of(
        [
            "a/__init__.py",
            "a/b.py",
            f"a/fast{suffix}",
            "a/fast.py",
            "a/c/__init__.py",
            "ns/x/__init__.py",
            "ns/y.py",
            "top.py",
            "a/data-files/x.py",
            "d.dist-info/METADATA",
            "__init__.py",
        ]
    )

    assert sorted(layout.modules) == ["a", "a.b", "a.c", "a.fast", "ns.x", "ns.y", "top"]
    assert layout.modules["a.fast"].is_extension
    assert layout.namespaces == {"ns"}
    assert layout.roots == ("a", "ns/x")
    assert {m.name for m in layout.loose_modules} == {"a", "ns.x", "ns.y", "top"}


def _loader_of(module: Any) -> object:
    spec = module.__spec__
    return None if spec is None else spec.loader


# -- namespace packages are the importer's too ------------------------------------------


@pytest.mark.parametrize("shadow", ["NS.py", "NS.pyc", "NS/__init__.py"])
def test_a_namespace_shadowed_from_an_earlier_path_entry_is_refused_unrun(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path, shadow: str
) -> None:
    dist = install({"PKG_ns/portion/__init__.py": "WHERE = 'portion'\n"}, on_path=True)
    importer.add(dist.result)
    earlier = tmp_path / "earlier"
    planted = earlier / shadow.replace("NS", f"{dist.package}_ns")
    planted.parent.mkdir(parents=True, exist_ok=True)
    if shadow.endswith(".pyc"):
        planted.write_bytes(importlib.util.MAGIC_NUMBER + b"\0" * 12 + b"garbage")
    else:
        planted.write_text("raise SystemExit('the shadow ran')\n")
    sys.path.insert(0, str(earlier))

    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}_ns.portion")

    (problem,) = exc.value.problems
    assert problem.kind is ProblemKind.SHADOWED
    assert problem.path == str(planted)
    assert exc.value.distribution == dist.name
    assert f"{dist.package}_ns" not in sys.modules


def test_a_namespace_is_made_by_the_importer_with_every_portion(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    dist = install({"PKG_ns/portion/__init__.py": ""}, on_path=True)
    other = tmp_path / "other"
    (other / f"{dist.package}_ns" / "theirs").mkdir(parents=True)
    (other / f"{dist.package}_ns" / "theirs" / "__init__.py").write_text("THEIRS = 1\n")
    sys.path.append(str(other))
    importer.add(dist.result)

    namespace = importlib.import_module(f"{dist.package}_ns")
    theirs = importlib.import_module(f"{dist.package}_ns.theirs")

    assert isinstance(_loader_of(namespace), _importer._NamespaceLoader)
    assert list(namespace.__path__) == [
        str(dist.site / f"{dist.package}_ns"),
        str(other / f"{dist.package}_ns"),
    ]
    assert theirs.THEIRS == 1  # another distribution's portion is no verified module


def test_a_lazy_import_below_a_nested_namespace_refuses_a_shadow_planted_later(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install({"PKG/__init__.py": "", "PKG/space/lazy.py": "LAZY = 'genuine'\n"}, on_path=True)
    importer.add(dist.result)
    importlib.import_module(dist.package)
    (dist.site / dist.package / "space.py").write_text("raise SystemExit('planted')\n")

    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}.space.lazy")

    assert [p.kind for p in exc.value.problems] == [ProblemKind.SHADOWED]
    assert exc.value.problems[0].path == str(dist.site / dist.package / "space.py")


def test_a_namespace_imported_as_a_module_before_verification_is_refused(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    dist = install({"PKG_ns/portion/__init__.py": ""}, on_path=True)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / f"{dist.package}_ns.py").write_text("")
    sys.path.insert(0, str(earlier))
    importer.uninstall()
    importlib.import_module(f"{dist.package}_ns")

    with pytest.raises(SignatureError) as exc:
        importer.add(dist.result)

    assert [p.kind for p in exc.value.problems] == [ProblemKind.SHADOWED]


# -- no other finder serves a verified module -------------------------------------------


def test_a_restored_meta_path_snapshot_cannot_bypass_the_importer(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE, on_path=True)
    snapshot = [f for f in sys.meta_path if f is not importer]
    importer.add(dist.result)
    forge_pyc(dist.site / dist.package / "helper.py", "def shout(x):\n    return 'pwned'\n")
    sys.meta_path[:] = snapshot  # what a test harness or a host's cleanup does

    module = importlib.import_module(dist.package)

    assert module.helper.shout("a") == "A"
    assert isinstance(_loader_of(module.helper), _importer._VerifiedLoader)
    assert sys.meta_path[0] is importer


class _PathHook(importlib.abc.MetaPathFinder):
    """An import hook as most are written: the default path search, then its own loader."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        return importlib.machinery.PathFinder.find_spec(fullname, path, target)


def test_a_finder_put_ahead_gets_verified_modules_from_the_importer(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE, on_path=True)
    importer.add(dist.result)
    importlib.import_module(dist.package)
    forge_pyc(dist.site / dist.package / "sub" / "deep.py", "def fail():\n    return 'pwned'\n")
    forge_pyc(dist.site / dist.package / "sub" / "__init__.py", "PWNED = True\n")
    hook: importlib.abc.MetaPathFinder = _PathHook()
    sys.meta_path.insert(0, hook)

    # Neither an import statement nor import_module: the path entry finders answer.
    spec = importlib.util.find_spec(f"{dist.package}.sub")
    assert sys.meta_path[0] is hook
    assert spec is not None
    assert isinstance(spec.loader, _importer._VerifiedLoader)
    # import_module puts the importer first again, as an import statement does.
    deep = importlib.import_module(f"{dist.package}.sub.deep")
    assert sys.meta_path[0] is importer
    assert isinstance(_loader_of(deep), _importer._VerifiedLoader)
    assert not hasattr(sys.modules[f"{dist.package}.sub"], "PWNED")
    with pytest.raises(ValueError, match="deep failure"):
        deep.fail()


def test_an_import_statement_puts_the_importer_first_again(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE, on_path=True)
    importer.add(dist.result)
    hook = _PathHook()
    sys.meta_path.insert(0, hook)

    exec(f"import {dist.package}.helper", {})  # noqa: S102 - an import statement, by name

    assert sys.meta_path[0] is importer
    assert isinstance(_loader_of(sys.modules[dist.package]), _importer._VerifiedLoader)


def test_an_uninstalled_importer_stays_out(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE, on_path=True)
    importer.add(dist.result)
    importer.uninstall()

    exec(f"import {dist.package}", {})  # noqa: S102

    assert importer not in sys.meta_path
    assert not isinstance(_loader_of(sys.modules[dist.package]), _importer._VerifiedLoader)


def test_a_swapped_hard_link_is_caught_at_the_lazy_import(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    """The attacker keeps a hard link to a verified file and changes it through that name."""
    dist = install(PACKAGE)
    deep = dist.site / dist.package / "sub" / "deep.py"
    handle = tmp_path / "handle.py"
    handle.hardlink_to(deep)
    importer.add(dist.result)
    importlib.import_module(dist.package)

    handle.write_text("raise SystemExit('through the hard link')\n")
    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}.sub.deep")

    assert [p.kind for p in exc.value.problems] == [ProblemKind.HASH_MISMATCH]


def test_owner_names_the_distribution_of_modules_it_imported(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    importlib.import_module(dist.package)

    assert importer.owner(dist.package) == dist.name
    assert importer.owner(f"{dist.package}.sub.deep") is None  # not imported yet
    assert importer.owner("json") is None
    assert importer.version_of(dist.name) == "1.0"


# -- package data comes from verified bytes ---------------------------------------------


def test_resources_list_and_read_only_signed_files(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    importlib.import_module(dist.package)
    root = importlib.resources.files(dist.package)
    (dist.site / dist.package / "resources" / "added.txt").write_text("added")

    assert sorted(e.name for e in root.iterdir()) == [
        "__init__.py",
        "helper.py",
        "resources",
        "sub",
    ]
    assert [e.name for e in root.joinpath("resources").iterdir()] == ["greeting.txt"]
    greeting = root / "resources" / "greeting.txt"
    assert greeting.is_file()
    assert not root.joinpath("resources").is_file()
    assert root.joinpath("resources").is_dir()
    with greeting.open() as f:
        assert f.read() == "hello"
    with importlib.resources.as_file(greeting) as copy:
        assert copy.read_text() == "hello"
    with pytest.raises(SignatureError) as exc:
        root.joinpath("resources/added.txt").read_text()
    assert exc.value.problems[0].kind is ProblemKind.UNLISTED_FILE
    with pytest.raises(FileNotFoundError):
        root.joinpath("resources/absent.txt").read_bytes()


def test_a_resource_changed_after_verification_is_refused(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)
    module = importlib.import_module(dist.package)
    (dist.site / dist.package / "resources" / "greeting.txt").write_text("evil")

    with pytest.raises(SignatureError) as exc:
        importlib.resources.files(dist.package).joinpath("resources/greeting.txt").read_text()
    assert exc.value.problems[0].kind is ProblemKind.HASH_MISMATCH
    with pytest.raises(SignatureError):
        pkgutil.get_data(dist.package, "resources/greeting.txt")
    planted = dist.site / dist.package / "planted.bin"
    planted.write_bytes(b"unsigned")
    loader = module.__spec__.loader if module.__spec__ is not None else None
    assert isinstance(loader, _importer._VerifiedLoader)
    with pytest.raises(SignatureError) as unlisted:
        loader.get_data(str(planted))
    assert unlisted.value.problems[0].kind is ProblemKind.UNLISTED_FILE


def test_pkgutil_get_data_reads_verified_bytes(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)

    assert pkgutil.get_data(dist.package, "resources/greeting.txt") == b"hello"


def test_the_loader_answers_from_what_it_verified(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    """What importlib and inspect ask a loader: source, file, package or not, resources."""
    dist = install(PACKAGE)
    importer.add(dist.result)
    package = importlib.import_module(dist.package)
    name = f"{dist.package}.helper"
    loader = _loader_of(importlib.import_module(name))
    assert isinstance(loader, _importer._VerifiedLoader)
    package_loader = _loader_of(package)
    assert isinstance(package_loader, _importer._VerifiedLoader)

    assert loader.distribution == package_loader.distribution == dist.name
    assert package_loader.is_package(dist.package)
    assert not loader.is_package(name)
    assert loader.get_filename(name) == str(dist.site / dist.package / "helper.py")
    assert loader.get_source(name) == PACKAGE["PKG/helper.py"]
    assert loader.get_resource_reader(name) is None  # a module has no resources of its own
    assert package_loader.get_resource_reader(dist.package) is not None
    (dist.site / dist.package / "helper.py").write_text("def shout(x):\n    return 'evil'\n")
    with pytest.raises(SignatureError) as exc:
        loader.get_source(name)
    assert exc.value.problems[0].kind is ProblemKind.HASH_MISMATCH


def test_a_namespace_package_s_resources_are_the_signed_files_of_its_verified_portions(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    dist = install(
        {"PKG_ns/portion/__init__.py": "", "PKG_ns/notes.txt": "signed notes"}, on_path=True
    )
    namespace_dir = dist.site / f"{dist.package}_ns"
    (namespace_dir / "planted.txt").write_text("unsigned")
    other = tmp_path / "other" / f"{dist.package}_ns"
    other.mkdir(parents=True)
    (other / "theirs.txt").write_text("another distribution's")
    sys.path.append(str(other.parent))
    importer.add(dist.result)

    namespace = importlib.import_module(f"{dist.package}_ns")
    loader = _loader_of(namespace)
    assert isinstance(loader, _importer._NamespaceLoader)
    assert loader.is_package(namespace.__name__)
    assert loader.get_source(namespace.__name__) == ""  # no code runs for a namespace
    root = importlib.resources.files(namespace.__name__)
    assert sorted(e.name for e in root.iterdir()) == ["notes.txt", "portion"]
    assert root.joinpath("notes.txt").read_text() == "signed notes"
    with pytest.raises(SignatureError) as exc:
        root.joinpath("planted.txt").read_text()
    assert exc.value.problems[0].kind is ProblemKind.UNLISTED_FILE
    (namespace_dir / "notes.txt").write_text("changed notes")
    with pytest.raises(SignatureError) as changed:
        root.joinpath("notes.txt").read_text()
    assert changed.value.problems[0].kind is ProblemKind.HASH_MISMATCH


# -- the code cache is trusted only while only this user can change it ------------------


def _cache_entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix == ".bin")


def _evil_entry(dist: Installed, module: str) -> tuple[str, bytes]:
    """The cache entry an attacker writes for ``module``: its key, planted code."""
    path = str(dist.site / module)
    digest = next(m.raw_digest for m in _modules_of(dist) if m.path == path)
    code = compile("raise SystemExit('code from the cache ran')\n", path, "exec")
    name = _codecache.CodeCache.key(path, digest)
    return name, importlib.util.MAGIC_NUMBER + digest + marshal.dumps(code)


def _modules_of(dist: Installed) -> list[Any]:
    with VerifiedImporter(cache=False) as probe:
        probe.add(dist.result)
        return list(probe._modules.values())


@pytest.mark.parametrize("unsafe", ["group-writable parent", "sticky-less world-writable root"])
def test_a_cache_below_a_directory_others_can_write_is_not_used(
    install: Callable[..., Installed], tmp_path: Path, unsafe: str, caplog: pytest.LogCaptureFixture
) -> None:
    dist = install({"PKG/__init__.py": "VALUE = 'genuine'\n"})
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775 if unsafe.startswith("group") else 0o777)
    cache = shared / "plugyard" / "code"

    with VerifiedImporter(cache) as importer:
        importer.add(dist.result)
        assert importlib.import_module(dist.package).VALUE == "genuine"
        assert importer.cache_dir is None

    assert "not caching verified code" in caplog.text
    assert "writable by other users" in caplog.text


def test_the_default_cache_refuses_a_group_writable_cache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o770)
    home.chmod(0o770)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))

    assert VerifiedImporter().cache_dir is None
    home.chmod(0o700)
    assert VerifiedImporter().cache_dir == home / "plugyard" / "code"


def test_a_cache_directory_swapped_for_a_symlink_after_opening_is_not_followed(
    install: Callable[..., Installed], tmp_path: Path
) -> None:
    dist = install({"PKG/__init__.py": "VALUE = 'genuine'\n"})
    cache = tmp_path / "cache"
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    name, content = _evil_entry(dist, f"{dist.package}/__init__.py")
    (attacker / name).write_bytes(content)

    with VerifiedImporter(cache) as importer:
        importer.add(dist.result)
        assert importer.cache_dir == cache  # opened now
        cache.rename(tmp_path / "moved-away")
        cache.symlink_to(attacker)
        assert importlib.import_module(dist.package).VALUE == "genuine"

    assert _cache_entries(tmp_path / "moved-away") == [name]  # written where it was opened
    # A new importer refuses the symlinked path instead.
    del sys.modules[dist.package]
    with VerifiedImporter(cache) as importer:
        assert importer.cache_dir is None
        importer.add(dist.result)
        assert importlib.import_module(dist.package).VALUE == "genuine"


@pytest.mark.skipif(os.geteuid() != 0, reason="making files of another user needs root")
def test_cache_directories_and_entries_of_another_user_are_not_trusted(
    install: Callable[..., Installed], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dist = install({"PKG/__init__.py": "VALUE = 'genuine'\n"})
    name, content = _evil_entry(dist, f"{dist.package}/__init__.py")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / name).write_bytes(content)
    os.chown(theirs, 65534, 65534)
    assert VerifiedImporter(theirs).cache_dir is None
    assert "owned by another user (uid 65534)" in caplog.text

    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / name).write_bytes(content)
    os.chown(mine / name, 65534, 65534)
    with VerifiedImporter(mine) as importer:
        importer.add(dist.result)
        assert importlib.import_module(dist.package).VALUE == "genuine"
    assert "ignoring cache entry" in caplog.text


def test_a_symlinked_cache_entry_is_not_followed(
    install: Callable[..., Installed], tmp_path: Path
) -> None:
    dist = install({"PKG/__init__.py": "VALUE = 'genuine'\n"})
    name, content = _evil_entry(dist, f"{dist.package}/__init__.py")
    (tmp_path / "elsewhere.bin").write_bytes(content)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / name).symlink_to(tmp_path / "elsewhere.bin")

    with VerifiedImporter(cache) as importer:
        importer.add(dist.result)
        assert importlib.import_module(dist.package).VALUE == "genuine"


def test_a_module_symlinked_to_a_file_the_attacker_keeps_is_checked_at_import(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    """Same bytes at verification; changed through the link target before the lazy import."""
    dist = install(PACKAGE)
    deep = dist.site / dist.package / "sub" / "deep.py"
    kept = tmp_path / "kept.py"
    kept.write_bytes(deep.read_bytes())
    deep.unlink()
    deep.symlink_to(kept)
    result = verify_distribution(dist.name, RING, path=[dist.site])
    assert result.ok, result.problems
    importer.add(result)
    importlib.import_module(dist.package)

    kept.write_text("raise SystemExit('through the symlink')\n")
    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}.sub.deep")

    assert [p.kind for p in exc.value.problems] == [ProblemKind.HASH_MISMATCH]


def test_a_package_symlinked_into_a_verified_package_is_refused(
    install: Callable[..., Installed], importer: VerifiedImporter, tmp_path: Path
) -> None:
    dist = install(PACKAGE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "__init__.py").write_text("raise SystemExit('through the symlink')\n")
    (dist.site / dist.package / "linked").symlink_to(elsewhere)

    problems = verify_distribution(dist.name, RING, path=[dist.site]).problems
    importer.add(dist.result)  # verified before the link was made
    with pytest.raises(SignatureError) as exc:
        importlib.import_module(f"{dist.package}.linked")

    assert [(p.kind, p.path) for p in problems] == [
        (ProblemKind.UNLISTED_FILE, f"{dist.package}/linked")
    ]
    assert exc.value.problems[0].kind is ProblemKind.UNLISTED_FILE


def test_cached_names_the_standard_location_as_importlib_would(
    install: Callable[..., Installed], importer: VerifiedImporter
) -> None:
    dist = install(PACKAGE)
    importer.add(dist.result)

    module = importlib.import_module(f"{dist.package}.sub.deep")

    assert module.__file__ is not None
    assert module.__cached__ == importlib.util.cache_from_source(module.__file__)


def test_through_the_manager_a_lazy_import_refused_in_a_call_raises_from_the_call(
    install: Callable[..., Installed],
) -> None:
    """As docs/security.md says: refused in a call, the call raises; the plugin stays."""
    group = f"tests.lazy{next(_numbers)}"
    dist = install(
        {
            "PKG/__init__.py": (
                "import importlib\n"
                "class Lazy:\n"
                "    def setup(self, ctx):\n"
                "        importlib.import_module(__name__ + '.first')\n"
                "    def execute(self, data=None):\n"
                "        return importlib.import_module(__name__ + '.later').VALUE\n"
            ),
            "PKG/first.py": "",
            "PKG/later.py": "VALUE = 'genuine'\n",
        },
        entry_points=f"[{group}]\nlazy = PKG:Lazy\n",
    )
    policy = plugyard.TrustPolicy(mode="require", keyring=RING)
    with plugyard.PluginManager(group=group, trust=policy, path=[str(dist.site)]) as manager:
        manager.load("lazy")
        (dist.site / dist.package / "later.py").write_text("VALUE = 'changed'\n")

        with pytest.raises(SignatureError) as exc:
            manager.execute("lazy")

        assert exc.value.problems[0].kind is ProblemKind.HASH_MISMATCH
        assert manager.states()["lazy"] is plugyard.PluginState.ACTIVE
