"""A seccomp filter that forbids new processes (threads stay allowed), for bubblewrap's ``--seccomp``.

``RLIMIT_NPROC`` does not bind a process whose host user is root (the kernel
exempts it), and a sandbox started by root maps its user to root outside. A
prediction needs no child process, so ``fork``, ``vfork`` and any ``clone``
without ``CLONE_THREAD`` fail with ``EPERM`` (``clone3`` with ``ENOSYS``, so
that the C library falls back to ``clone``, which is checked). Threads (numpy's
BLAS) are bounded by the memory limit and ``RLIMIT_NPROC``.
"""
from __future__ import annotations

import errno
import platform
import struct
from typing import Optional

_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_CLONE_THREAD = 0x00010000
_X32_BIT = 0x40000000

#: audit arch, clone, clone3, and the other process-creating syscalls of each architecture.
_ARCH = {
    "x86_64": (0xC000003E, 56, 435, (57, 58)),
    "aarch64": (0xC00000B7, 220, 435, ()),
}


def _insn(code, k, jt=0, jf=0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def no_fork_filter(machine: Optional[str] = None) -> Optional[bytes]:
    """The classic-BPF program, or None on an architecture it does not know.

    Examples
    --------
    >>> len(no_fork_filter("x86_64")) % 8, no_fork_filter("sparc") is None
    (0, True)
    """
    machine = machine or platform.machine()
    if machine not in _ARCH:
        return None
    arch, clone, clone3, forks = _ARCH[machine]
    body = [("ld", 0)]  # the syscall number
    if machine == "x86_64":
        body.append(("jge_kill", _X32_BIT))
    body += [("jeq_clone", clone), ("jeq_enosys", clone3)] + [("jeq_eperm", nr) for nr in forks]
    # Layout: arch check, body, ALLOW, clone check (ld arg0, jset, ALLOW, EPERM), ENOSYS, KILL.
    n_head = 2
    allow = n_head + len(body)
    clone_at, eperm = allow + 1, allow + 4
    enosys, kill = allow + 5, allow + 6
    prog = [_insn(_LD_W_ABS, 4), _insn(_JEQ_K, arch, 0, kill - 2)]
    for i, (op, k) in enumerate(body):
        at = n_head + i
        if op == "ld":
            prog.append(_insn(_LD_W_ABS, k))
        elif op == "jge_kill":
            prog.append(_insn(_JGE_K, k, kill - at - 1, 0))
        else:
            target = {"jeq_clone": clone_at, "jeq_enosys": enosys, "jeq_eperm": eperm}[op]
            prog.append(_insn(_JEQ_K, k, target - at - 1, 0))
    prog += [
        _insn(_RET_K, _ALLOW),
        _insn(_LD_W_ABS, 16),  # low 32 bits of clone's flags (little-endian)
        _insn(_JSET_K, _CLONE_THREAD, 0, 1),
        _insn(_RET_K, _ALLOW),
        _insn(_RET_K, _ERRNO | errno.EPERM),
        _insn(_RET_K, _ERRNO | errno.ENOSYS),
        _insn(_RET_K, _KILL),
    ]
    return b"".join(prog)
