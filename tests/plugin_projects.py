"""Real plugin projects, built into real wheels with hatchling, for the plugin-directory tests.

:func:`project` writes a small hatchling project; :func:`build` builds many
of them in one ``pip wheel`` run (``wheelhouse.build_wheels``). The session
fixtures in ``conftest.py`` build the versions the tests share once and sign
them with a key made by ``plugyard keygen``.

The ``pd-tok`` distribution is the plugin most tests reload: a package of
several modules, each of which records the version it belongs to, so a call
can tell whether it ran on one whole version. ``pd-shout`` and ``pd-echo``
are its dependents.
"""

from __future__ import annotations

import importlib.machinery
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from plugyard import TrustPolicy
from plugyard.cli import main
from plugyard.trust import Keyring
from wheelhouse import build_with_hatchling

GROUP = "tests.plugindirs"


def project(
    root: Path,
    distribution: str,
    version: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, str],
    *,
    group: str = GROUP,
    requires: Sequence[str] = (),
) -> Path:
    """Write a hatchling project; ``modules`` maps paths under ``src/`` to their source."""
    path = root / f"{distribution}-{version}"
    package = next(iter(modules)).split("/", 1)[0]
    eps = "\n".join(f'{name} = "{value}"' for name, value in entry_points.items())
    deps = ", ".join(f'"{r}"' for r in requires)
    (path / "src").mkdir(parents=True)
    (path / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["hatchling>=1.24"]
            build-backend = "hatchling.build"

            [project]
            name = "{distribution}"
            version = "{version}"
            dependencies = [{deps}]

            [project.entry-points."{group}"]
            """
        )
        + eps
        + textwrap.dedent(
            f"""

            [tool.hatch.build.targets.wheel]
            packages = ["src/{package}"]
            """
        ),
        encoding="utf-8",
    )
    for rel, source in modules.items():
        file = path / "src" / rel
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def build(projects: Sequence[Path], dest: Path) -> dict[str, Path]:
    """Build every project with hatchling; the wheels by project directory name.

    A project directory is named ``<distribution>-<version>`` (see
    :func:`project`). Several versions of one distribution cannot be built in
    one ``pip wheel`` run (its resolver refuses), so hatchling's builder runs
    here, in this process, as ``pip wheel`` would run it.
    """
    return {path.name: build_with_hatchling(path, dest) for path in projects}


#: The modules of pd-tok beyond its package: ten in all with __init__.
TOK_MODULES = 9


def tok_modules(version: str, *, broken: str | None = None) -> dict[str, str]:
    """The modules of ``pd-tok`` at ``version``; ``broken`` is ``"import"`` or ``"setup"``."""
    parts = [f"part{i}" for i in range(1, TOK_MODULES + 1)]
    modules = {f"pd_tok/{part}.py": f'VERSION = "{version}"\n' for part in parts}
    if broken == "import":
        modules[f"pd_tok/{parts[-1]}.py"] += 'raise RuntimeError("pd-tok is broken at import")\n'

    imports = "\n".join(f"from . import {part}" for part in parts)
    fail = 'raise RuntimeError("pd-tok is broken in setup")' if broken == "setup" else "pass"
    modules["pd_tok/__init__.py"] = f'''\
import sys

import plugyard

{imports}

VERSION = "{version}"
MODULES = ({", ".join(parts)},)


def note(*entry):
    """Tell the test's journal, if there is one, what happened."""
    journal = sys.modules.get("pd_journal")
    if journal is not None:
        journal.entries.append(entry)


@plugyard.register(group="{GROUP}", name="tok")
class Tok:
    """Splits text, and says which version of each module answered."""

    def setup(self, ctx):
        {fail}
        self.config = dict(ctx.config)
        self.state = []
        note("setup", "tok", VERSION)

    def migrate(self, previous):
        self.state = [*previous.state, previous.version()]

    def version(self):
        return VERSION

    def execute(self, data):
        inside = getattr(data, "inside", None)
        if inside is not None:
            inside()
        return {{"tok": [VERSION, *(m.VERSION for m in MODULES)], "words": str(data).split()}}

    def teardown(self):
        note("teardown", "tok", VERSION)
'''
    return modules


def dependent_modules(name: str, version: str, tok_range: str) -> dict[str, str]:
    """A dependent of ``tok`` named ``name``, requiring ``tok{tok_range}``."""
    package = f"pd_{name}"
    return {
        f"{package}/__init__.py": f'''\
import sys

import plugyard

VERSION = "{version}"


def note(*entry):
    journal = sys.modules.get("pd_journal")
    if journal is not None:
        journal.entries.append(entry)


@plugyard.register(group="{GROUP}", name="{name}", depends_on={{"tok": "{tok_range}"}})
class Dependent:
    def setup(self, ctx):
        self.tok = ctx.dependency("tok")
        note("setup", "{name}", self.tok.version())

    def execute(self, data):
        return {{"{name}": VERSION, **self.tok.execute(data)}}

    def teardown(self):
        note("teardown", "{name}", self.tok.version())
'''
    }


def pair_modules(version: str) -> dict[str, str]:
    """Two plugins of one distribution, ``left`` and ``right``: they move together."""
    return {
        "pd_pair/__init__.py": f'''\
VERSION = "{version}"


class Left:
    def execute(self, data):
        return ("left", VERSION)


class Right:
    def execute(self, data):
        return ("right", VERSION)
'''
    }


@attrs.frozen
class SignedWheels:
    """The wheels of :func:`build_signed_wheels`, each signed by :attr:`private_key`.

    Attributes:
        wheels: Each signed wheel by ``<distribution>-<version>`` (e.g. ``"pd-tok-1.1"``).
        unsigned: The same wheels unsigned.
        private_key: The signing key, made by ``plugyard keygen``.
        keyring: A directory with its public key.
    """

    wheels: dict[str, Path]
    unsigned: dict[str, Path]
    private_key: Path
    keyring: Path

    def ring(self) -> Keyring:
        """The keyring trusting :attr:`private_key`."""
        return Keyring.from_directory(self.keyring)

    def policy(self, mode: str = "require") -> TrustPolicy:
        """A trust policy of ``mode`` over :meth:`ring`."""
        return TrustPolicy(mode=mode, keyring=self.ring())  # type: ignore[arg-type]

    def copy(self, directory: Path, *names: str) -> list[Path]:
        """Copy the signed wheels ``names`` into ``directory`` (made if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copy2(self.wheels[name], directory)) for name in names]


def cli(*args: str | Path) -> None:
    """Run the ``plugyard`` command line in this process; fail the caller if it fails."""
    code = main([str(a) for a in args])
    if code != 0:
        raise AssertionError(f"plugyard {' '.join(map(str, args))} exited with {code}")


def build_signed_wheels(root: Path) -> SignedWheels:
    """Build every version the tests share, in one pip run, and sign each with a new key."""
    sources = root / "projects"
    projects = [
        project(sources, "pd-tok", version, tok_modules(version, broken=broken), TOK_EP)
        for version, broken in TOK_VERSIONS.items()
    ]
    projects.append(
        project(sources, "pd-tok", "1.4", {**tok_modules("1.4"), EXTENSION: ""}, TOK_EP)
    )
    for name, tok_range in DEPENDENTS.items():
        projects.append(
            project(
                sources,
                f"pd-{name}",
                "1.0",
                dependent_modules(name, "1.0", tok_range),
                {name: f"pd_{name}:Dependent"},
            )
        )
    pair = {"left": "pd_pair:Left", "right": "pd_pair:Right"}
    projects.extend(
        project(sources, "pd-pair", version, pair_modules(version), pair)
        for version in ("1.0", "1.1")
    )
    projects.append(
        project(
            sources,
            "pd-needs",
            "1.0",
            {"pd_needs/__init__.py": "class Needs:\n    pass\n"},
            {"needs": "pd_needs:Needs"},
            requires=["plugyard", "pd-no-such-distribution>=1", "packaging<1"],
        )
    )
    unsigned = build(projects, root / "unsigned")
    cli("keygen", "--out", root / "keys", "--id", "tests")
    ring = root / "ring"
    ring.mkdir()
    shutil.copy2(root / "keys" / "tests.pub.pem", ring / "tests.pem")
    wheels = {}
    for name, wheel in unsigned.items():
        cli("sign", wheel, "--key", root / "keys" / "tests.pem", "--out", f"{root}/signed/")
        wheels[name] = root / "signed" / wheel.name
    return SignedWheels(wheels, unsigned, root / "keys" / "tests.pem", ring)


TOK_EP = {"tok": "pd_tok:Tok"}
#: The versions of pd-tok, and how each is broken (``None``: it works).
TOK_VERSIONS: dict[str, str | None] = {
    "1.0": None,
    "1.1": None,
    "1.2": "import",
    "1.3": "setup",
    "2.0": None,
}
#: pd-tok 1.4 ships an extension module file (never imported): it cannot be reloaded.
EXTENSION = f"pd_tok/_speed{importlib.machinery.EXTENSION_SUFFIXES[0]}"
#: The dependents of tok and the range each puts on it: 2.0 is outside shout's.
DEPENDENTS = {"shout": ">=1.0,<2", "echo": ">=1.0"}
