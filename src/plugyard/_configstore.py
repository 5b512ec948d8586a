"""Plugin configuration files: one msgpack file per plugin, written atomically.

(Not named ``_config``: attrs resolves its own ``_config`` module in the globals of
a class's ``__module__``, which for plugyard's public classes is the package.)

A :class:`ConfigStore` keeps one file per plugin, ``<directory>/<group>/<name>.msgpack``,
holding a config as :func:`~plugyard._configtypes.encode` writes it: a map with
string keys whose values msgpack carries without extension types.

Saving is atomic: the new content goes to a temporary file in the same
directory, which is flushed and fsynced, renamed over the old file with
:func:`os.replace`, and then the directory is fsynced. A reader sees the old
file or the new one, never a mix, even if the writer is killed. Temporary files
are named ``.<name>.msgpack.<pid>.<random>.tmp``; a later save of the same file
removes those of processes that no longer exist. Files are created readable by
their owner only (mode 0600), since configuration may hold secrets.

A file that cannot be read or decoded raises :class:`ConfigError` and is left
as it is: plugyard never resets a config it does not understand.

Which plugins are disabled is kept per group in ``<directory>/<group>/_disabled.msgpack``,
a map ``{"disabled": [sorted names]}``; a plugin name cannot start with ``_``,
so the file cannot clash with a plugin's config.

The values a config holds, their encoding and typed configs live in
``_configtypes``; :func:`validate` and :func:`unstructure` are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._configtypes import decode, describe, encode, unstructure, validate
from ._model import check_name
from .exceptions import ConfigError

__all__ = ["ConfigError", "ConfigStore", "unstructure", "validate"]

_SUFFIX = ".msgpack"
_DISABLED = "_disabled"
_LEFT_AS_IT_IS = "It was left as it is: repair or remove it, or save a new config over it."


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable. Windows cannot open a directory for fsync.
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


class ConfigStore:
    """Plugin configs and disabled flags in a directory, one msgpack file per plugin.

    Args:
        directory: Where the configs live; created on the first write.
    """

    __module__ = "plugyard"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        # Serializes read-modify-write of the disabled lists within this object.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ConfigStore {str(self.directory)!r}>"

    def path(self, group: str, name: str) -> Path:
        """The file that holds plugin ``name``'s config.

        Raises:
            InvalidPluginError: ``group`` or ``name`` is not a valid name, so
                no path outside the directory can be formed.
        """
        check_name(group, what="group name")
        check_name(name)
        return self.directory / group / f"{name}{_SUFFIX}"

    # -- configs ---------------------------------------------------------------

    def load(self, group: str, name: str) -> dict[str, Any]:
        """Read plugin ``name``'s config; an empty dict if it has none.

        Returns:
            A new dict the caller may keep and change.

        Raises:
            ConfigError: the file exists but cannot be read or is not a
                config plugyard wrote; it is left untouched.
        """
        data = self.read_bytes(group, name)
        if data is None:
            return {}
        try:
            return decode(data)
        except ConfigError as exc:
            error = ConfigError(
                f"{exc.reason}. {_LEFT_AS_IT_IS}",
                path=self.path(group, name),
                plugin=name,
                group=group,
                field=exc.field,
            )
            raise error from exc.__cause__

    def save(self, group: str, name: str, config: Mapping[str, Any]) -> None:
        """Replace plugin ``name``'s config, atomically and durably.

        Raises:
            ConfigError: ``config`` holds something a config cannot (the
                error's ``field`` says where), or writing failed; the old
                file is intact either way and no temporary file is left.
        """
        path = self.path(group, name)
        try:
            data = encode(config)
        except ConfigError as exc:
            error = ConfigError(exc.reason, path=path, plugin=name, group=group, field=exc.field)
            raise error from exc.__cause__
        self._write(path, data, plugin=name, group=group)

    def read_bytes(self, group: str, name: str) -> bytes | None:
        """Read plugin ``name``'s config file as it is, without decoding it.

        With :meth:`write_bytes` and :meth:`restore`, this lets a caller
        replace a config and put the old file back, byte for byte, if what
        follows the write fails.

        Args:
            group: The plugin's group.
            name: The plugin's name.

        Returns:
            The file's content, or ``None`` if there is no file.

        Raises:
            ConfigError: the file exists but cannot be read; ``path`` names it.
            InvalidPluginError: ``group`` or ``name`` is not a valid name.
        """
        path = self.path(group, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot be read: {_strerror(exc)}. It was left as it is.",
                path=path,
                plugin=name,
                group=group,
            ) from exc

    def write_bytes(self, group: str, name: str, data: bytes) -> None:
        """Replace plugin ``name``'s config file with ``data``, atomically and durably.

        ``data`` is stored as given, not checked: make it with
        :func:`~plugyard._configtypes.encode`, or take it from
        :meth:`read_bytes`.

        Args:
            group: The plugin's group.
            name: The plugin's name.
            data: The file's new content.

        Raises:
            ConfigError: writing failed; the old file is intact and no
                temporary file is left.
            InvalidPluginError: ``group`` or ``name`` is not a valid name.
        """
        self._write(self.path(group, name), data, plugin=name, group=group)

    def restore(self, group: str, name: str, previous: bytes | None) -> None:
        """Put back what :meth:`read_bytes` returned before a write.

        Args:
            group: The plugin's group.
            name: The plugin's name.
            previous: The old content, written back atomically; ``None``
                (there was no file) removes the file if there is one now.

        Raises:
            ConfigError: writing or removing failed.
            InvalidPluginError: ``group`` or ``name`` is not a valid name.
        """
        path = self.path(group, name)
        if previous is None:
            self._unlink(path, plugin=name, group=group)
        else:
            self._write(path, previous, plugin=name, group=group)

    def delete(self, group: str, name: str) -> bool:
        """Remove plugin ``name``'s config file; return whether there was one.

        Raises:
            ConfigError: the file exists and could not be removed.
        """
        return self._unlink(self.path(group, name), plugin=name, group=group)

    # -- disabled records ------------------------------------------------------

    def disabled(self, group: str) -> frozenset[str]:
        """The names of the plugins of ``group`` that are disabled.

        Raises:
            ConfigError: the group's disabled list exists but is unreadable or
                corrupt; it is left untouched.
        """
        check_name(group, what="group name")
        path = self.directory / group / f"{_DISABLED}{_SUFFIX}"
        content = self._read(path, plugin=None, group=group)
        if not content:
            return frozenset()
        names = content.get("disabled")
        if set(content) != {"disabled"} or not isinstance(names, list):
            raise ConfigError(
                "is not a disabled list: expected a map {'disabled': [names]}",
                path=path,
                group=group,
            )
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ConfigError(
                f"lists {describe(bad[0])} where a plugin name was expected",
                path=path,
                group=group,
            )
        return frozenset(names)

    def is_disabled(self, group: str, name: str) -> bool:
        """Whether plugin ``name`` of ``group`` is disabled.

        Raises:
            ConfigError: as :meth:`disabled` does.
        """
        check_name(name)
        return name in self.disabled(group)

    def set_disabled(self, group: str, name: str, disabled: bool = True) -> None:
        """Disable (or, with ``disabled=False``, enable) plugin ``name`` of ``group``.

        The list is read, changed and written atomically with respect to
        other calls on this object; between processes, the last write wins.

        Raises:
            ConfigError: the existing list is unreadable or corrupt (it is
                not overwritten), or writing failed.
        """
        check_name(name)
        with self._lock:
            current = self.disabled(group)
            wanted = current | {name} if disabled else current - {name}
            if wanted == current:
                return
            path = self.directory / group / f"{_DISABLED}{_SUFFIX}"
            data = encode({"disabled": sorted(wanted)})
            self._write(path, data, plugin=None, group=group)

    def _read(self, path: Path, *, plugin: str | None, group: str) -> dict[str, Any]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(
                f"cannot be read: {exc.strerror or exc}. It was left as it is.",
                path=path,
                plugin=plugin,
                group=group,
            ) from exc
        try:
            return decode(data)
        except ConfigError as exc:
            error = ConfigError(
                f"{exc.reason}. {_LEFT_AS_IT_IS}",
                path=path,
                plugin=plugin,
                group=group,
                field=exc.field,
            )
            raise error from exc.__cause__

    # -- files -------------------------------------------------------------------

    def _write(self, path: Path, data: bytes, *, plugin: str | None, group: str) -> None:
        directory = path.parent
        try:
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                _fsync_directory(directory.parent)
            self._sweep(path)
            import tempfile  # here, not at the top: only saving needs it

            fd, temp = tempfile.mkstemp(
                prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=directory
            )
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                Path(temp).replace(path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temp).unlink()
                raise
            _fsync_directory(directory)
        except OSError as exc:
            raise ConfigError(
                f"cannot be written: {_strerror(exc)}", path=path, plugin=plugin, group=group
            ) from exc

    def _unlink(self, path: Path, *, plugin: str, group: str) -> bool:
        """Remove ``path`` durably; return whether it existed."""
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigError(
                f"cannot remove it: {_strerror(exc)}", path=path, plugin=plugin, group=group
            ) from exc
        with contextlib.suppress(OSError):
            _fsync_directory(path.parent)
            self._sweep(path)
        return True

    @staticmethod
    def _sweep(path: Path) -> None:
        """Remove temporary files of ``path`` left by processes that were killed while writing."""
        if os.name != "posix":  # pragma: no cover
            return
        prefix = f".{path.name}."
        own = os.getpid()
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid, _, _ = name[len(prefix) :].partition(".")
            if pid.isdigit() and int(pid) != own and not _process_exists(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    Path(entry.path).unlink()
