"""Plugin configuration files: one per plugin, written atomically, and disabled records.

(Not named ``_config``: attrs resolves its own ``_config`` module in the globals of
a class's ``__module__``, which for plugyard's public classes is the package.)

A :class:`ConfigStore` keeps everything about plugin ``<name>`` of ``<group>``
in the group's directory::

    <directory>/<group>/<name>.msgpack    its config: a msgpack map (see _configtypes)
    <directory>/<group>/<name>.disabled   present while it is disabled
    <directory>/<group>/.<file>.<pid>.<random>.tmp    a write in progress

Saving is atomic: the new content goes to a temporary file in the same
directory, which is flushed and fsynced, renamed over the old file with
:func:`os.replace`, and then the directory is fsynced. A reader sees the old
file or the new one, never a mix, even if the writer is killed. A later write
of the same file removes temporary files of processes that no longer exist.
Files are created readable by their owner only (mode 0600), since
configuration may hold secrets.

A file that cannot be read or decoded raises :class:`ConfigError` and is left
as it is: plugyard never resets a config it does not understand.

Disabled plugins are one record each, not one list per group, so that writers
cannot lose each other's changes: disabling writes the plugin's record (as
atomically as a config), enabling removes it, and neither reads anything
first. Eight processes disabling eight plugins at the same moment leave eight
records; for one plugin, the last writer wins. No lock is taken, so a writer
killed at any moment leaves no stale lock behind. A record holds the msgpack
map ``{"disabled": True}`` (11 bytes), so that a record damaged on disk is
told apart from a valid one instead of counting as "disabled".

The records sit beside the configs rather than in a ``_disabled/``
subdirectory: a plugin's state is in one place (``<name>.*``), and there is no
second directory to create and fsync before the first record is durable. The
names cannot clash: a plugin name starts and ends with a letter or digit, so a
record never ends in ``.msgpack`` nor starts with ``.`` as temporary files do,
and removing the one ``.disabled`` suffix gives the name back exactly (plugin
``x.disabled`` has the record ``x.disabled.disabled``). Files in the directory
whose names are not a plugin name plus ``.disabled`` are not records and are
ignored. So is a ``_disabled.msgpack`` list left by earlier development
versions, which this layout replaces: it is neither read nor removed.

The values a config holds, their encoding and typed configs live in
``_configtypes``; :func:`validate` and :func:`unstructure` are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from ._configtypes import decode, describe, encode, unstructure, validate
from ._model import check_name
from ._public import present_top_level as _present_top_level
from .exceptions import ConfigError, InvalidPluginError

__all__ = ["ConfigError", "ConfigStore", "DisabledState", "unstructure", "validate"]

_SUFFIX = ".msgpack"
_RECORD_SUFFIX = ".disabled"
# A record is 11 bytes; reading stops well past that, whatever is in the file.
_RECORD_LIMIT = 4096
_LEFT_AS_IT_IS = "It was left as it is: repair or remove it, or save a new config over it."
_RECORD_LEFT = (
    "It was left as it is: disable or enable the plugin again to replace it, or remove it."
)


@attrs.frozen
class DisabledState:
    """Which plugins of a group are disabled, as read from their records.

    Attributes:
        names: The plugins with a valid record: they are disabled.
        broken: Plugins whose record exists but is corrupt or unreadable,
            each with a :class:`ConfigError` naming the record's file
            (``path``) and what is wrong (``reason``). Whether they are
            disabled is unknown; :meth:`ConfigStore.set_disabled` replaces
            such a record.
    """

    names: frozenset[str]
    broken: Mapping[str, ConfigError]


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
    """Plugin configs and disabled records in a directory, one file of each per plugin.

    Args:
        directory: Where the configs live; created on the first write.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

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

        All or nothing: for callers that must not act on a partial answer.
        :meth:`disabled_state` reports corrupt records instead of raising.

        Args:
            group: The group whose plugins to list.

        Returns:
            The names of the plugins with a valid disabled record.

        Raises:
            ConfigError: a record is corrupt or unreadable (the first in name
                order; ``path`` names it, ``plugin`` is its plugin), or the
                group's directory cannot be listed. Nothing is changed.
            InvalidPluginError: ``group`` is not a valid group name.
        """
        state = self.disabled_state(group)
        if state.broken:
            raise state.broken[min(state.broken)]
        return state.names

    def disabled_state(self, group: str) -> DisabledState:
        """Which plugins of ``group`` are disabled, and which records are corrupt.

        A corrupt or unreadable record does not hide the others: it is
        reported in :attr:`DisabledState.broken`, and the valid ones are in
        :attr:`DisabledState.names`.

        Args:
            group: The group whose plugins to list.

        Returns:
            The state; both parts empty if the group has no directory.

        Raises:
            ConfigError: the group's directory exists but cannot be listed
                (``path`` names it).
            InvalidPluginError: ``group`` is not a valid group name.
        """
        check_name(group, what="group name")
        directory = self.directory / group
        try:
            with os.scandir(directory) as entries:
                found = sorted(e.name for e in entries if e.name.endswith(_RECORD_SUFFIX))
        except FileNotFoundError:
            found = []
        except OSError as exc:
            raise ConfigError(
                f"is the directory of group {group!r} and cannot be listed: {_strerror(exc)}",
                path=directory,
                group=group,
            ) from exc
        names: set[str] = set()
        broken: dict[str, ConfigError] = {}
        for file_name in found:
            name = file_name[: -len(_RECORD_SUFFIX)]
            try:
                check_name(name)
            except InvalidPluginError:
                continue  # not a record: no plugin has that name
            try:
                if self._read_record(directory / file_name, plugin=name, group=group):
                    names.add(name)
            except ConfigError as exc:
                broken[name] = exc
        return DisabledState(names=frozenset(names), broken=MappingProxyType(broken))

    def is_disabled(self, group: str, name: str) -> bool:
        """Whether plugin ``name`` of ``group`` is disabled; reads only its record.

        Args:
            group: The plugin's group.
            name: The plugin's name.

        Returns:
            Whether the plugin has a valid disabled record.

        Raises:
            ConfigError: its record exists but is corrupt or unreadable;
                ``path`` names it, and it is left as it is.
            InvalidPluginError: ``group`` or ``name`` is not a valid name.
        """
        return self._read_record(self._record_path(group, name), plugin=name, group=group)

    def set_disabled(self, group: str, name: str, disabled: bool = True) -> None:
        """Disable (or, with ``disabled=False``, enable) plugin ``name`` of ``group``.

        Disabling writes the plugin's record atomically and durably, enabling
        removes it; nothing is read first, so concurrent calls for other
        plugins, from any thread or process, are never lost. A corrupt record
        (or an empty directory in its place) is replaced: this is how one is
        repaired.

        Args:
            group: The plugin's group.
            name: The plugin's name.
            disabled: Whether the plugin is to be disabled.

        Raises:
            ConfigError: the record could not be written or removed (a
                directory holding files in its place is never removed).
            InvalidPluginError: ``group`` or ``name`` is not a valid name.
        """
        path = self._record_path(group, name)
        if path.is_dir() and not path.is_symlink():
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ConfigError(
                    f"is a directory where the disabled record belongs, and cannot be "
                    f"removed: {_strerror(exc)}. Remove it by hand.",
                    path=path,
                    plugin=name,
                    group=group,
                ) from exc
        if disabled:
            self._write(path, encode({"disabled": True}), plugin=name, group=group)
        else:
            self._unlink(path, plugin=name, group=group)

    def _record_path(self, group: str, name: str) -> Path:
        check_name(group, what="group name")
        check_name(name)
        return self.directory / group / f"{name}{_RECORD_SUFFIX}"

    def _read_record(self, path: Path, *, plugin: str, group: str) -> bool:
        """Whether the record at ``path`` exists; ConfigError if it is not a valid one."""

        def corrupt(reason: str) -> ConfigError:
            return ConfigError(f"{reason}. {_RECORD_LEFT}", path=path, plugin=plugin, group=group)

        try:
            # Non-blocking, so that a FIFO in the record's place is refused, not waited on.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise corrupt(f"cannot be read: {_strerror(exc)}") from exc
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise corrupt("is a directory where a disabled record belongs")
            if not stat.S_ISREG(mode):
                raise corrupt("is not a regular file, so not a disabled record")
            with os.fdopen(fd, "rb", closefd=False) as file:
                data = file.read(_RECORD_LIMIT + 1)
        except OSError as exc:
            raise corrupt(f"cannot be read: {_strerror(exc)}") from exc
        finally:
            os.close(fd)
        if len(data) > _RECORD_LIMIT:
            raise corrupt(f"is larger than {_RECORD_LIMIT} bytes, so not a disabled record")
        try:
            content = decode(data)
        except ConfigError as exc:
            raise corrupt(exc.reason) from exc.__cause__
        if set(content) != {"disabled"} or content["disabled"] is not True:
            raise corrupt(
                f"holds {describe(content)} where a disabled record {{'disabled': True}} "
                "was expected"
            )
        return True

    # -- files -------------------------------------------------------------------

    def _write(self, path: Path, data: bytes, *, plugin: str, group: str) -> None:
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


# Its public names print as plugyard.<name>, the path users import them from.
_present_top_level(globals())
