"""Who could change a path: the owner and mode checks behind the trust model
(docs/reliability.md, "Threat model").

A path is *private* when it is not a symlink, belongs to this user and cannot be written by
group or others; only its owner can change that mode, so a private directory stays private.
A *parent* is acceptable when it belongs to this user or root and, if others may write to it,
carries the sticky bit (as /tmp does): then nobody else can rename what is in it.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


def owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _why_not_private(st: os.stat_result, what: str, uid: int) -> str | None:
    if st.st_uid != uid:
        return f"{what} belongs to {owner_name(st.st_uid)}, not to you"
    if st.st_mode & WRITABLE_BY_OTHERS:
        return f"{what} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def why_not_private(path: Path, uid: int | None = None) -> str | None:
    """Why another user could change `path` (None: they cannot, as far as `path` itself goes).
    A symlink is never private: what it points at can change under us."""
    uid = os.geteuid() if uid is None else uid
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"{path}: {e.strerror}"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    return _why_not_private(st, str(path), uid)


def why_not_safe_parent(path: Path, uid: int | None = None) -> str | None:
    """Why another user could rename or replace what is in directory `path`."""
    uid = os.geteuid() if uid is None else uid
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path}: {e.strerror}"
    if st.st_uid not in (uid, 0):
        return f"{path} belongs to {owner_name(st.st_uid)}"
    if st.st_mode & WRITABLE_BY_OTHERS and not st.st_mode & stat.S_ISVTX:
        return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def why_not_trusted_file(
    path: Path, uid: int | None = None, root_ok: bool = False, parents: bool = True
) -> str | None:
    """Why the file `path` (followed if a link) may not name programs to run: it (or, with
    `parents`, a directory above it) could be changed by someone other than this user (or
    root, when `root_ok`: a site file)."""
    uid = os.geteuid() if uid is None else uid
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except OSError as e:
        return f"{path}: {e.strerror}"
    owners = (uid, 0) if root_ok else (uid,)
    if st.st_uid not in owners:
        return f"{path} belongs to {owner_name(st.st_uid)}, not to you"
    if st.st_mode & WRITABLE_BY_OTHERS:
        return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    for parent in real.parents if parents else ():
        why = why_not_safe_parent(parent, uid)
        if why:
            return why
    return None
