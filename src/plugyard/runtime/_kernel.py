"""Landlock, seccomp and ``prctl`` through ``ctypes``: the kernel's own interfaces, no library.

Everything here is prepared in the host and *called* in the child between
``fork`` and ``exec``, where only async-signal-safe work is wise: the
functions and buffers are built before the fork, and the calls made after it
are plain system calls.

Landlock is used through its three system calls (the numbers are the same
on every architecture); the seccomp filter is a classic BPF program that
refuses, with ``EPERM``, system calls a plugin has no business making
(``ptrace``, ``mount``, ``bpf``, loading kernel modules, ...).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

# Filesystem rights, by the ABI version that introduced them.
_FS_V1 = (1 << 13) - 1  # execute .. make_sym
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read_file, read_dir
_FILE_RW = (1 << 1) | (1 << 2)  # write_file, read_file
_NET_TCP = 0b11  # bind, connect (ABI 4)
_SCOPE_ALL = 0b11  # abstract unix sockets, signals (ABI 6)

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once (before any fork)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers; 0 when it has none (or it is disabled)."""
    if platform.system() != "Linux":
        return 0
    version = libc().syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


class Landlock:
    """A Landlock ruleset built in the host, enforced in the child by :meth:`restrict`.

    Reading and executing are allowed beneath ``readable``; everything
    beneath ``writable``; reading and writing the files in ``files`` (such
    as ``/dev/null``). With ABI 4 or later TCP ``bind`` and ``connect`` are
    refused; with ABI 6 or later, signals to and abstract sockets of
    processes outside the sandbox too.
    """

    def __init__(
        self, abi: int, readable: Sequence[str], writable: Sequence[str], files: Sequence[str]
    ) -> None:
        self.abi = abi
        handled = _FS_V1
        if abi >= 2:
            handled |= _FS_REFER
        if abi >= 3:
            handled |= _FS_TRUNCATE
        if abi >= 5:
            handled |= _FS_IOCTL_DEV
        self.handled = handled
        net = _NET_TCP if abi >= 4 else 0
        scoped = _SCOPE_ALL if abi >= 6 else 0
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8
        self._attr = ctypes.create_string_buffer(
            struct.pack("<QQQ", handled, net, scoped)[:size], size
        )
        file_rights = _FILE_RW | (_FS_TRUNCATE if abi >= 3 else 0)
        self._rules = [(p, _READ) for p in readable]
        self._rules += [(p, handled) for p in writable]
        self._rules += [(p, file_rights) for p in files]
        self._rule = ctypes.create_string_buffer(12)
        self._syscall = libc().syscall

    def restrict(self) -> None:  # pragma: no cover - in the child, after fork: tested by effect
        """Enforce the ruleset on the calling process (in the child, after ``no_new_privs``).

        Raises:
            OSError: the kernel refused.
        """
        syscall = self._syscall
        ruleset = syscall(_SYS_LANDLOCK_CREATE_RULESET, self._attr, len(self._attr), 0)
        if ruleset < 0:
            raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
        try:
            for path, rights in self._rules:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path this machine lacks grants nothing
                try:
                    is_dir = os.path.isdir(path)  # noqa: PTH112 - after fork: no pathlib
                    allowed = rights if is_dir else rights & (_FILE_RW | _FS_TRUNCATE | 1)
                    struct.pack_into("<Qi", self._rule, 0, allowed & self.handled, fd)
                    if syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH,
                               self._rule, 0) < 0:  # fmt: skip
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
            if syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) < 0:
                raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
        finally:
            os.close(ruleset)


# -- seccomp -------------------------------------------------------------------

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

#: System calls refused with EPERM: debugging other processes, namespaces and
#: mounts, kernel modules and kexec, eBPF and perf, keyrings, the clock,
#: io_uring (which bypasses the filter), and the like.
_DENIED = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170,
        "setdomainname": 171, "iopl": 172, "ioperm": 173, "init_module": 175,
        "delete_module": 176, "finit_module": 313, "kexec_load": 246,
        "kexec_file_load": 320, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "keyctl": 250, "add_key": 248, "request_key": 249,
        "unshare": 272, "setns": 308, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "acct": 163, "settimeofday": 164,
        "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
        "quotactl": 179, "vhangup": 153, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "swapon": 224, "swapoff": 225, "reboot": 142, "sethostname": 161,
        "setdomainname": 162, "init_module": 105, "delete_module": 106,
        "finit_module": 273, "kexec_load": 104, "kexec_file_load": 294,
        "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "keyctl": 219,
        "add_key": 217, "request_key": 218, "unshare": 97, "setns": 268,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "acct": 89,
        "settimeofday": 170, "clock_settime": 112, "adjtimex": 171,
        "clock_adjtime": 266, "quotactl": 60, "vhangup": 58, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427,
    },
}  # fmt: skip

_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def seccomp_program(machine: str | None = None) -> bytes | None:
    """The BPF program of the filter, or ``None`` on an architecture without a table."""
    machine = machine or platform.machine()
    denied = _DENIED.get(machine)
    if denied is None:
        return None
    numbers = sorted(denied.values())
    n = len(numbers)
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    program = [
        _insn(ld_w_abs, 0, 0, 4),  # seccomp_data.arch
        _insn(jeq_k, 1, 0, _AUDIT_ARCH[machine]),
        _insn(ret_k, 0, 0, _SECCOMP_RET_KILL_PROCESS),
        _insn(ld_w_abs, 0, 0, 0),  # seccomp_data.nr
    ]
    # On x86_64, x32 system calls carry a bit of their own: refuse them all.
    x32 = machine == "x86_64"
    if x32:
        program.append(_insn(jge_k, n + 1, 0, _X32_SYSCALL_BIT))
    program += [_insn(jeq_k, n - i, 0, nr) for i, nr in enumerate(numbers)]
    program.append(_insn(ret_k, 0, 0, _SECCOMP_RET_ALLOW))
    program.append(_insn(ret_k, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM))
    return b"".join(program)


def denied_syscalls(machine: str | None = None) -> list[str]:
    """The names of the system calls the filter refuses on ``machine``."""
    return sorted(_DENIED.get(machine or platform.machine(), {}))


class Seccomp:
    """A seccomp filter built in the host, installed in the child by :meth:`install`."""

    def __init__(self, program: bytes) -> None:
        self.program = program
        self._filter = ctypes.create_string_buffer(program, len(program))
        count = len(program) // 8
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        self._fprog = ctypes.create_string_buffer(
            struct.pack("<H6xQ", count, ctypes.addressof(self._filter)), 16
        )
        self._prctl = libc().prctl

    def install(self) -> None:  # pragma: no cover - in the child, after fork: tested by effect
        """Install the filter on the calling process (after ``no_new_privs``).

        Raises:
            OSError: the kernel refused.
        """
        if self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._fprog, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def seccomp_available() -> bool:
    """Whether the kernel takes seccomp filters (asked without installing one)."""
    if platform.system() != "Linux" or seccomp_program() is None:
        return False
    action = ctypes.c_uint32(_SECCOMP_RET_ERRNO)
    # seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action); the number differs by architecture.
    number = {"x86_64": 317, "aarch64": 277}[platform.machine()]
    return int(libc().syscall(number, 2, 0, ctypes.byref(action))) == 0


def prctl(option: int, arg: int) -> None:
    """``prctl(option, arg, 0, 0, 0)``, raising :class:`OSError` on failure."""
    if libc().prctl(option, arg, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")
