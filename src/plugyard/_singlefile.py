"""What a single-file plugin is called, read from its file without running it.

A plugin directory may hold plain ``NAME.py`` files beside wheels. Such a
file is the plugin ``NAME``; its version is the string it assigns to
``__version__`` at module level (``"0"`` without one). plugyard imports it
under a module name of its own, ``plugyard_file_<NAME>``, so that a plugin
called ``tokenize`` never shadows the standard library's, and treats it as
a distribution called ``plugyard-file-<NAME>``: that is what its detached
signature names, what key scopes match, and what :meth:`PluginManager.candidates`
shows.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ._model import check_name, parse_version
from ._value import Value
from .exceptions import InvalidPluginError

#: The suffix of a single-file plugin.
SUFFIX = ".py"
#: What every single-file plugin's module name starts with.
MODULE_PREFIX = "plugyard_file_"
_UNSAFE = re.compile(r"[^0-9A-Za-z_]")
_SEPARATORS = re.compile(r"[-_.]+")


class SingleFile(Value):
    """The names of a single-file plugin.

    Attributes:
        name: The plugin's name: the file's name without ``.py``.
        version: Its ``__version__``, or ``"0"``.
        distribution: The distribution name it is signed and listed under.
        module: The module name it is imported as.
    """

    __slots__ = ("distribution", "module", "name", "version")

    name: str
    version: str
    distribution: str
    module: str

    def __init__(self, name: str, version: str, distribution: str, module: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "module", module)

    @property
    def filename(self) -> str:
        """The module's file name where plugyard installs it."""
        return f"{self.module}.py"

    @property
    def dist_info(self) -> str:
        """The dist-info directory plugyard writes beside the module."""
        return f"{self.module}-{self.version}.dist-info"

    @property
    def metadata(self) -> bytes:
        """The ``METADATA`` plugyard writes (and a signature covers) for it."""
        return (
            f"Metadata-Version: 2.1\nName: {self.distribution}\nVersion: {self.version}\n"
        ).encode()


def module_of(name: str) -> str:
    """The module name single-file plugin ``name`` is installed and imported as."""
    return MODULE_PREFIX + _UNSAFE.sub("_", name)


def identify(path: str | Path, source: bytes) -> SingleFile:
    """The names of the single-file plugin at ``path`` whose content is ``source``.

    Raises:
        InvalidPluginError: the file's name is no plugin name, it is not
            valid Python, or its ``__version__`` is no PEP 440 version.
    """
    stem = Path(path).name.removesuffix(SUFFIX)
    name = check_name(stem)
    version = static_version(source, name)
    module = module_of(name)
    return SingleFile(name, version, "plugyard-file-" + _SEPARATORS.sub("-", name).lower(), module)


def static_version(source: bytes, plugin: str) -> str:
    """The string a module assigns to ``__version__`` at its top level, without running it.

    Raises:
        InvalidPluginError: the source is not Python, or the version is no PEP 440 version.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        raise InvalidPluginError(
            plugin, f"the file is not valid Python: {exc}", plugin=plugin
        ) from None
    version = "0"
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "__version__" for t in targets):
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                raise InvalidPluginError(
                    ast.unparse(value),
                    "__version__ of a single-file plugin must be a string literal",
                    plugin=plugin,
                )
            version = value.value
    parse_version(version, plugin=plugin)
    return version
