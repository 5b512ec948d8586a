"""Synthetic installed distributions for the benchmarks.

:func:`make_site` writes ``n`` distributions into one directory, laid out as
an installer leaves them in ``site-packages``: for each, a module
``pkgNNN.py`` and a ``plugbench_pkgNNN-1.0.0.dist-info`` directory with
``METADATA``, ``WHEEL``, ``entry_points.txt`` and a ``RECORD`` of real
sha256 hashes (so that verifying an installed distribution can be measured
on the same files later).

Each distribution declares two entry points to the same module, one per
framework style:

- ``[plugbench] pluginNNN = pkgNNN:Plugin``, a class with ``execute``: what
  plugyard and stevedore load;
- ``[plugbench11] pluginNNN = pkgNNN``, the module itself, as ``pytest11``
  plugins are: what pluggy's ``load_setuptools_entrypoints`` loads. The module
  holds a function ``plugbench_execute`` marked as a pluggy hook
  implementation.

The modules import nothing. The hook implementation is marked by setting the
attribute ``pluggy.HookimplMarker("plugbench")`` would set, so importing a
plugin costs the same whichever framework imports it. Everything is
byte-compiled when written, so the first timed import does not write
``__pycache__`` (which would also change the directory's mtime, a key of both
plugyard's and stevedore's caches).
"""

from __future__ import annotations

import base64
import compileall
import hashlib
from dataclasses import dataclass
from pathlib import Path

GROUP = "plugbench"
PLUGGY_GROUP = "plugbench11"
PROJECT = "plugbench"  # pluggy's project name: hook names and marker attributes
HOOK = "plugbench_execute"
VERSION = "1.0.0"

_MODULE = '''\
"""Synthetic plugin {index} of the plugyard benchmarks."""


class Plugin:
    def execute(self, data):
        return data


def {hook}(data):
    return data


# What pluggy.HookimplMarker("{project}") sets, without importing pluggy.
{hook}.{project}_impl = {{
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}}
'''

_METADATA = """\
Metadata-Version: 2.1
Name: {dist}
Version: {version}
Summary: Synthetic plugin {index} of the plugyard benchmarks

"""

_WHEEL = """\
Wheel-Version: 1.0
Generator: plugyard-benchmarks
Root-Is-Purelib: true
Tag: py3-none-any
"""

_ENTRY_POINTS = """\
[{group}]
{name} = {module}:Plugin

[{pluggy_group}]
{name} = {module}
"""


@dataclass(frozen=True)
class Site:
    """A directory of synthetic distributions, to put on ``sys.path``.

    Attributes:
        path: The directory.
        n: How many distributions it holds.
        names: The entry point (plugin) names, in order.
        keyring: A keyring directory trusting the key that signed the middle
            distribution (see :func:`sign_middle`), if it was signed.
    """

    path: Path
    n: int
    names: tuple[str, ...]
    keyring: Path | None = None

    @property
    def middle(self) -> str:
        """The plugin the single-plugin benchmarks use: the one in the middle."""
        return self.names[self.n // 2]


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _record_line(path: Path, root: Path) -> str:
    data = path.read_bytes()
    return f"{path.relative_to(root).as_posix()},sha256={_digest(data)},{len(data)}"


def make_site(root: Path, n: int) -> Site:
    """Write ``n`` synthetic distributions into ``root`` (created if needed).

    Args:
        root: The directory to write into; it should be empty.
        n: The number of distributions.

    Returns:
        The site, with the plugin names in order.
    """
    root.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(n - 1)))
    names = []
    for index in range(n):
        number = f"{index:0{width}d}"
        module, name, dist = f"pkg{number}", f"plugin{number}", f"plugbench-pkg{number}"
        names.append(name)
        source = root / f"{module}.py"
        source.write_text(_MODULE.format(index=index, hook=HOOK, project=PROJECT))
        meta = root / f"plugbench_pkg{number}-{VERSION}.dist-info"
        meta.mkdir()
        files = {
            "METADATA": _METADATA.format(dist=dist, version=VERSION, index=index),
            "WHEEL": _WHEEL,
            "entry_points.txt": _ENTRY_POINTS.format(
                group=GROUP, pluggy_group=PLUGGY_GROUP, name=name, module=module
            ),
        }
        for filename, text in files.items():
            (meta / filename).write_text(text)
        record = [_record_line(source, root)]
        record += [_record_line(meta / filename, root) for filename in files]
        record.append(f"{meta.name}/RECORD,,")
        (meta / "RECORD").write_text("\n".join(record) + "\n")
    compileall.compile_dir(root, maxlevels=0, quiet=1)
    return Site(path=root, n=n, names=tuple(names))


def sign_middle(site: Site, work: Path) -> Site:
    """Reinstall the middle distribution from a signed wheel; the site with its keyring.

    The wheel holds the same files the synthetic distribution had; it is
    signed with a fresh key (``plugyard.trust.sign_wheel``) and installed with
    the ``installer`` library, byte-compiled, over the unsigned copy. The
    other distributions stay unsigned: a verified driver manager verifies only
    the driver it loads.
    """
    import shutil
    import sys
    import zipfile

    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    from plugyard.trust import generate_key, load_private_key, sign_wheel

    number = site.middle.removeprefix("plugin")
    module = f"pkg{number}"
    meta = site.path / f"plugbench_pkg{number}-{VERSION}.dist-info"
    work.mkdir(parents=True, exist_ok=True)
    wheel = work / f"plugbench_pkg{number}-{VERSION}-py3-none-any.whl"
    members = {f"{module}.py": (site.path / f"{module}.py").read_bytes()}
    for filename in ("METADATA", "WHEEL", "entry_points.txt"):
        members[f"{meta.name}/{filename}"] = (meta / filename).read_bytes()
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in members.items()]
    record.append(f"{meta.name}/RECORD,,")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in members.items():
            archive.writestr(path, data)
        archive.writestr(f"{meta.name}/RECORD", "\n".join(record) + "\n")
    private, public = generate_key(work / "signer", "signer")
    keyring = work / "keyring"
    keyring.mkdir()
    shutil.copyfile(public, keyring / "signer.pem")
    signed = sign_wheel(wheel, load_private_key(private))
    shutil.rmtree(meta)
    (site.path / f"{module}.py").unlink()
    for stale in (site.path / "__pycache__").glob(f"{module}.*.pyc"):
        stale.unlink()
    scheme = {key: str(site.path) for key in ("purelib", "platlib")}
    scheme.update({key: str(work / key) for key in ("headers", "scripts", "data")})
    destination = SchemeDictionaryDestination(
        scheme, sys.executable, "posix", bytecode_optimization_levels=(0,)
    )
    with WheelFile.open(signed) as source:
        source.validate_record()
        install(source, destination, {"INSTALLER": b"plugyard-benchmarks\n"})
    return Site(path=site.path, n=site.n, names=site.names, keyring=keyring)
