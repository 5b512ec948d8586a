"""The signed distribution of the signing rows, and their in-process timings.

:func:`make_signed_site` writes a package of about 60 modules
(:data:`PACKAGE`: a top-level package, four subpackages, 14 modules in each,
a ``py.typed`` and a JSON data file), packs it as a wheel by the wheel spec
(as ``synth.py`` writes its distributions), signs the wheel with
:func:`plugyard.trust.sign_wheel` and a fresh Ed25519 key, and installs it
with the ``installer`` library into a site directory of its own, compiling
``__pycache__`` as pip does. The public key goes alone into a keyring
directory.

The modules are small to medium (about 1 to 10 kB): classes with methods,
functions, constants, a docstring each; they import each other and nothing
else, so that both ways of importing them pay for the same code. Importing
the top-level package imports every module.

:func:`make_signed_site` with ``single=True`` makes :data:`SINGLE_DIST`
instead: the same metadata, one module of about 5 kB, for the fixed cost
of a verification.

Run as ``python signing.py SITE KEYRING [--repeat R] [--min-time T]``, this
file times, in this one process, with ``timeit``:

- ``verify``: ``verify_distribution(dist, keyring)``, ``dist`` the installed
  distribution as ``importlib.metadata`` finds it;
- ``bare``: what the target compares it with: read and sha256 every file the
  signed manifest lists, then one Ed25519 verification of the signature.

and prints ``BENCH`` and a JSON object: ``samples`` maps each to its samples,
in nanoseconds per call.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import statistics
import sys
import timeit
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import Distribution, distributions
from pathlib import Path

DIST = "sigbench"
PACKAGE = "sigbench"
VERSION = "1.0.0"
SUBPACKAGES = ("core", "formats", "plugins", "util")
MODULES_PER_SUBPACKAGE = 14
_CHUNK = 1024 * 1024

_WHEEL = """\
Wheel-Version: 1.0
Generator: plugyard-benchmarks
Root-Is-Purelib: true
Tag: py3-none-any
"""

_README_SECTION = """
## Section {index}

The signed package of the plugyard benchmarks has about sixty modules. This
paragraph stands for the project description most distributions copy from
their README into METADATA, where it is the bulk of the file.

```python
from sigbench.core import m{index:02d}
m{index:02d}.function_0([1, 2, 3])
```
"""

# Headers as a build backend writes them, and a README as the description.
_METADATA = f"""\
Metadata-Version: 2.1
Name: {DIST}
Version: {VERSION}
Summary: The signed package of the plugyard benchmarks
Project-URL: Homepage, https://example.invalid/sigbench
Author-email: Benchmarks <bench@example.invalid>
License: MIT
Classifier: Development Status :: 4 - Beta
Classifier: License :: OSI Approved :: MIT License
Classifier: Programming Language :: Python :: 3
Classifier: Programming Language :: Python :: 3.10
Classifier: Programming Language :: Python :: 3.11
Classifier: Programming Language :: Python :: 3.12
Requires-Python: >=3.10
Provides-Extra: test
Requires-Dist: pytest; extra == 'test'
Description-Content-Type: text/markdown

# {DIST}
""" + "".join(_README_SECTION.format(index=i) for i in range(14))

_ENTRY_POINTS = f"""\
[plugbench]
signed = {PACKAGE}.plugins.m00:Plugin0
"""

_CLASS = '''

class {name}({base}):
    """Synthetic class {index} of {module}."""

    kind = "{name}"
    limits = ({a}, {b}, {c})

    def __init__(self, value=0, *, scale={c}):
        self.value = value
        self.scale = scale

    def __repr__(self):
        return f"{{type(self).__name__}}({{self.value!r}})"

    def transform(self, data):
        """Scale every item of ``data`` and keep those under the limit."""
        out = []
        for item in data:
            item = item * self.scale + {a}
            if item < self.limits[2] * {b}:
                out.append(item)
        return out

    def describe(self):
        return {{"kind": self.kind, "value": self.value, "scale": self.scale}}

    @classmethod
    def create(cls, *values):
        return [cls(v) for v in values]

    @property
    def doubled(self):
        return self.value * 2
'''

_FUNCTION = '''

def {name}(items, factor={a}, *, strict=False):
    """Synthetic function {index} of {module}."""
    total = 0
    for position, item in enumerate(items):
        if strict and item < 0:
            raise ValueError(f"item {{position}} is negative: {{item}}")
        total += item * factor + position % {b}
    return {{"total": total, "count": len(items), "name": "{name}"}}
'''


def _module_source(module: str, index: int, siblings: list[str]) -> str:
    """A module of between 1 and 10 kB or so, different for each ``index``."""
    classes, functions = 1 + index % 5, 2 + (index * 7) % 9
    lines = [f'"""Synthetic module {module} of the plugyard signing benchmarks."""', ""]
    if siblings:
        lines.append(f"from .{siblings[-1]} import BASE as _PREVIOUS_BASE")
    lines += [
        "",
        f"NAME = {module!r}",
        f"LEVEL = {index}",
        f"TABLE = {{{', '.join(f'{k!r}: {k * index}' for k in range(8 + index % 8))}}}",
        "",
        "",
        "class BASE:",
        '    """The base of this module\'s classes."""',
        "",
        "    registry = {}",
        "",
        "    def __init_subclass__(cls, **kwargs):",
        "        super().__init_subclass__(**kwargs)",
        "        BASE.registry[cls.__name__] = cls",
    ]
    for c in range(classes):
        lines.append(
            _CLASS.format(
                name=f"Plugin{c}" if c == 0 else f"Class{c}",
                base="BASE",
                index=c,
                module=module,
                a=index + c,
                b=3 + c,
                c=7 + index % 4,
            )
        )
    for f in range(functions):
        lines.append(_FUNCTION.format(name=f"function_{f}", index=f, module=module, a=f + 1, b=5))
    return "\n".join(lines) + "\n"


def package_files() -> dict[str, str]:
    """The package's files, by path in the wheel."""
    files: dict[str, str] = {}
    index = 0
    for sub in SUBPACKAGES:
        names = [f"m{i:02d}" for i in range(MODULES_PER_SUBPACKAGE)]
        for number, name in enumerate(names):
            files[f"{PACKAGE}/{sub}/{name}.py"] = _module_source(
                f"{PACKAGE}.{sub}.{name}", index, names[:number]
            )
            index += 1
        files[f"{PACKAGE}/{sub}/__init__.py"] = (
            f'"""Subpackage {sub}."""\n\nfrom . import {", ".join(names)}\n\n__all__ = {names!r}\n'
        )
    files[f"{PACKAGE}/__init__.py"] = (
        f'"""The signed package of the plugyard benchmarks."""\n\n'
        f"from . import {', '.join(SUBPACKAGES)}\n\n__version__ = {VERSION!r}\n"
    )
    files[f"{PACKAGE}/py.typed"] = ""
    defaults = {"levels": list(range(32)), "names": [f"name{i}" for i in range(32)]}
    files[f"{PACKAGE}/data/defaults.json"] = json.dumps(defaults, indent=1) + "\n"
    return files


def module_names() -> tuple[str, ...]:
    """The dotted names of the package's modules, packages included."""
    names = [PACKAGE]
    for sub in SUBPACKAGES:
        names.append(f"{PACKAGE}.{sub}")
        names += [f"{PACKAGE}.{sub}.m{i:02d}" for i in range(MODULES_PER_SUBPACKAGE)]
    return tuple(names)


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


#: The one-module distribution: the fixed cost of a verification, with little to hash.
SINGLE_DIST = "sigsingle"


def single_files() -> dict[str, str]:
    """The one-module distribution's module, by path in the wheel."""
    return {f"{SINGLE_DIST}.py": _module_source(SINGLE_DIST, 7, [])}


def write_wheel(directory: Path, *, single: bool = False) -> Path:
    """Write the unsigned wheel into ``directory``; return its path.

    Args:
        directory: Where to write it.
        single: Write the one-module distribution :data:`SINGLE_DIST` instead.
    """
    dist = SINGLE_DIST if single else DIST
    info = f"{dist}-{VERSION}.dist-info"
    files = single_files() if single else package_files()
    members = {path: text.encode() for path, text in files.items()}
    members[f"{info}/METADATA"] = _METADATA.replace(f"Name: {DIST}", f"Name: {dist}").encode()
    members[f"{info}/WHEEL"] = _WHEEL.encode()
    entry_points = f"[plugbench]\nsigned = {dist}:Plugin0\n" if single else _ENTRY_POINTS
    members[f"{info}/entry_points.txt"] = entry_points.encode()
    rows = [[p, _record_hash(c), str(len(c))] for p, c in members.items()]
    rows.append([f"{info}/RECORD", "", ""])
    record = io.StringIO()
    csv.writer(record, lineterminator="\n").writerows(rows)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in members.items():
            zf.writestr(path, content)
        zf.writestr(f"{info}/RECORD", record.getvalue())
    return wheel


@dataclass(frozen=True)
class SignedSite:
    """An installed, signed distribution and the keyring that trusts its signer.

    Attributes:
        path: The site directory (put it on ``sys.path``).
        keyring: A directory holding the signer's public key only.
        modules: The dotted names of the package's modules.
        files: How many files the signed manifest lists.
        size: Their total size in bytes.
    """

    path: Path
    keyring: Path
    modules: tuple[str, ...]
    files: int
    size: int

    def argv(self) -> list[str]:
        """What the fresh-process snippets take: ``SITE DIST PACKAGE KEYRING MODULES``."""
        return [str(self.path), DIST, PACKAGE, str(self.keyring), str(len(self.modules))]


def make_signed_site(root: Path, *, single: bool = False) -> SignedSite:
    """Build, sign and install the distribution under ``root`` (created if needed).

    Args:
        root: Where to put the signer's key, the keyring, the wheel and the site.
        single: Make the one-module distribution :data:`SINGLE_DIST` instead.
    """
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    from plugyard.trust import generate_key, load_private_key, sign_wheel

    root.mkdir(parents=True, exist_ok=True)
    private, public = generate_key(root / "signer", "signer")
    keyring = root / "keyring"
    keyring.mkdir()
    shutil.copyfile(public, keyring / "signer.pem")
    wheel = sign_wheel(write_wheel(root / "dist", single=single), load_private_key(private))
    site = root / "site"
    scheme = {
        "purelib": str(site),
        "platlib": str(site),
        "headers": str(root / "include"),
        "scripts": str(root / "bin"),
        "data": str(root / "data"),
    }
    # Byte-compiled at install, as pip does: the normal import finds a warm __pycache__.
    destination = SchemeDictionaryDestination(
        scheme, sys.executable, "posix", bytecode_optimization_levels=(0,)
    )
    with WheelFile.open(wheel) as source:
        source.validate_record()
        install(source, destination, {"INSTALLER": b"plugyard-benchmarks\n"})
    files = [p for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    signed = [p for p in files if p.name not in {"RECORD", "INSTALLER", "plugyard-signature.json"}]
    return SignedSite(
        path=site,
        keyring=keyring,
        modules=(SINGLE_DIST,) if single else module_names(),
        files=len(signed),
        size=sum(p.stat().st_size for p in signed),
    )


# -- in-process timings ---------------------------------------------------------


def _distribution(site: Path) -> Distribution:
    """The one distribution installed in ``site``."""
    (found,) = distributions(path=[str(site)])
    return found


def _pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding, which the signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def cases(site: Path, keyring_dir: Path) -> dict[str, Callable[[], object]]:
    """The two things timed, each checked once here."""
    from plugyard.trust import SIGNATURE_FILE, Keyring, verify_distribution

    keyring = Keyring.from_directory(keyring_dir)
    dist = _distribution(site)
    result = verify_distribution(dist, keyring)
    assert result.ok, result.problems
    assert result.manifest is not None
    paths = [str(site / rel) for rel in result.manifest.installed_files()]
    info = result.manifest.dist_info
    envelope = json.loads((site / info / SIGNATURE_FILE).read_bytes())
    message = _pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    (public,) = [k.key for k in keyring.keys]
    sha256 = hashlib.sha256

    def bare() -> None:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                digest = sha256(os.read(fd, _CHUNK))
                while chunk := os.read(fd, _CHUNK):
                    digest.update(chunk)
            finally:
                os.close(fd)
            digest.digest()
        public.verify(signature, message)

    def bare_open() -> None:
        for path in paths:
            with open(path, "rb") as f:  # noqa: PTH123 - the everyday way, on purpose
                sha256(f.read()).digest()
        public.verify(signature, message)

    def verify() -> object:
        return verify_distribution(dist, keyring)

    return {"verify": verify, "bare": bare, "bare-open": bare_open}


def _calibrate(timer: timeit.Timer, min_time: float) -> int:
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2
    return number


def measure(site: Path, keyring_dir: Path, repeat: int, min_time: float) -> dict[str, list[float]]:
    """Samples of each case in ns per call, taken in alternating rounds."""
    timers = {}
    for key, func in cases(site, keyring_dir).items():
        timer = timeit.Timer(func)
        timers[key] = (timer, _calibrate(timer, min_time))
    samples: dict[str, list[float]] = {key: [] for key in timers}
    keys = list(timers)
    for round_ in range(repeat):
        for key in keys if round_ % 2 == 0 else keys[::-1]:
            timer, number = timers[key]
            samples[key].append(timer.timeit(number) / number * 1e9)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("keyring", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=0.1)
    args = parser.parse_args()
    samples = measure(args.site, args.keyring, args.repeat, args.min_time)
    assert all(statistics.median(v) > 0 for v in samples.values()), samples
    print("BENCH " + json.dumps({"samples": samples}))


if __name__ == "__main__":
    main()
