"""Who a sandboxed job runs as on the host, and whether that user can reach what the sandbox binds.

Inside its user namespace a job is uid 65534 with no capability; outside, the namespace maps
that uid to the user who started ``bwrap``. A server started as root therefore starts ``bwrap``
as an unprivileged host user (:class:`CodeUser`: ``nobody`` by default), so that a job that
escaped its namespace would still be that user, never root.

``bwrap`` makes its bind mounts after that switch, as that user: every folder it binds (the
Python environment, the kit's packages, the job's folder) must be reachable by it. On machines
where Python lives under a private home (``/root``, mode 0700) it is not, and the code track
refuses to start with :class:`~grader.errors.CodeUserError` naming the first unreachable path.
"""
from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from typing import Iterable, Optional

from data_spec.errors import BadArgumentError

#: The host user of a server started as root, unless the instructor names another (``--code-user``).
DEFAULT_USER = "nobody"


@dataclass(frozen=True)
class CodeUser:
    """An unprivileged host user a job's ``bwrap`` is started as (its primary group; no other group).

    Examples
    --------
    >>> CodeUser("nobody", 65534, 65534).popen_args()
    {'user': 65534, 'group': 65534, 'extra_groups': []}
    """

    name: str
    uid: int
    gid: int

    def popen_args(self) -> dict:
        """:class:`subprocess.Popen`'s arguments that start the child as this user, with no supplementary group."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def current_user_name() -> str:
    """The name of the user this process runs as (its uid when it has no name)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def code_user(name: Optional[str] = None) -> Optional[CodeUser]:
    """The host user to start a job's ``bwrap`` as, or None when it runs as this process's own user.

    Parameters
    ----------
    name : str, optional
        The instructor's choice (``--code-user``). Default: :data:`DEFAULT_USER` when this
        process is root, else this process's own user. Naming root (or this process's user)
        means no switch: the instructor's explicit choice, refused by default.

    Raises
    ------
    BadArgumentError
        No such user, or another user than its own asked of a process that is not root
        (only root can start a process as someone else).

    Examples
    --------
    >>> code_user(current_user_name()) is None
    True
    """
    euid = os.geteuid()
    if name is None:
        if euid != 0:
            return None
        name = DEFAULT_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise BadArgumentError(f"code user {name!r} does not exist on this machine", where="--code-user",
                               expected="an existing unprivileged user",
                               hint="create one, e.g. 'useradd --system --no-create-home --shell /usr/sbin/nologin "
                                    f"{name}', or leave --code-user out ({DEFAULT_USER})") from None
    if entry.pw_uid == euid:
        return None
    if euid != 0:
        raise BadArgumentError(f"code user {name!r} asked of a process running as {current_user_name()!r}",
                               where="--code-user", expected=f"{current_user_name()!r} (this process's own user)",
                               hint="only a server started as root can run jobs as another user; leave --code-user out")
    return CodeUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _allows(st: os.stat_result, user: CodeUser, want: int) -> bool:
    """Whether ``user`` (its primary group only: a job's process has no other) has the ``want`` bits (4 r, 1 x)."""
    if user.uid == st.st_uid:
        bits = st.st_mode >> 6
    elif user.gid == st.st_gid:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return (bits & want) == want


def unreachable(paths: Iterable[str], user: Optional[CodeUser]) -> Optional[str]:
    """The first of ``paths`` (or of their parent folders) ``user`` cannot reach, with why; None when all are reachable.

    A folder on the way needs ``x``; the path itself ``r`` (and ``x`` for a folder). Mode
    bits only: an ACL that forbids more is caught by the sandbox probe, which runs a real job.

    Examples
    --------
    >>> unreachable(["/usr/bin"], CodeUser("nobody", 65534, 65534)) is None
    True
    >>> unreachable(["/usr/bin"], None) is None
    True
    """
    if user is None:
        return None
    seen = set()
    for path in paths:
        path = os.path.realpath(path)
        parts = path.strip("/").split("/") if path != "/" else []
        current = "/"
        for i, part in enumerate([""] + parts):
            current = os.path.join(current, part) if part else current
            last = i == len(parts)
            if (current, last) in seen:
                continue
            try:
                st = os.stat(current)
            except OSError as exc:
                return f"{current} ({exc.strerror})"
            want = (5 if stat.S_ISDIR(st.st_mode) else 4) if last else 1
            if not _allows(st, user, want):
                what = "read" if last else "enter"
                mode = stat.filemode(st.st_mode)
                return f"{current} (mode {mode}, owner uid {st.st_uid}: {user.name} cannot {what} it)"
            seen.add((current, last))
    return None
