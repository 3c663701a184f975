"""One write side per store: an exclusive lock on the store's folder, held for the
process's lifetime.

The lock is a file (node.lock) in the folder, locked with flock: the kernel ties it to
the file itself, so two write sides that name the same store differently (a data folder,
a store URL, a relative path, a symlink) still meet on it, and it is freed when the
holder dies, however it dies.

The folder and the lock are private: a folder made here is 0700, and the lock file 0600
(an older node's looser lock file is tightened), like the store beside them.
"""
from __future__ import annotations

import fcntl
import logging
import os
import stat

from write_side.store import StoreError

LOCK_FILE = "node.lock"
log = logging.getLogger("write")


def lock_folder(folder: str) -> int:
    """Make `folder` if needed (0700) and lock it for this process; StoreError if it cannot
    be made or written, or another write side holds it. A folder that is there already
    keeps its mode: it may be one the user shares on purpose (the working folder, say)."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"data folder {folder} cannot be created: {exc.strerror}") from exc
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"data folder {folder} is not writable: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreError(f"data folder {folder} is in use by another node (write side pid "
                         f"{holder}); refusing to start") from None
    _make_private(fd, path)  # once it is ours: another node's lock file is left alone
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _make_private(fd: int, path: str) -> None:
    """Tighten a lock file an older node left open to other users, so that nothing in the
    store's folder is readable by them."""
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    if mode & 0o077:
        try:
            os.fchmod(fd, mode & 0o700)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"lock file {path} is open to other users (mode {mode:04o}) and "
                             f"cannot be made private: {exc.strerror}") from exc
        log.warning("lock file %s was open to other users (mode %04o); made it %04o", path,
                    mode, mode & 0o700)
