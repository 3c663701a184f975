"""One write side per data folder: an exclusive lock held for the process's lifetime."""
from __future__ import annotations

import fcntl
import os

from write_side.store import StoreError


def lock_folder(folder: str) -> int:
    """Lock `folder` for this process (the kernel frees it when the process dies)."""
    path = os.path.join(folder, "node.lock")
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
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
