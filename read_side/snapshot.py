"""Snapshots of a read side's projections, so a restart replays only the tail of the store.

File `read-side.snapshot` in the data folder:
  8 bytes  MAGIC
  4 bytes  FORMAT (big-endian)
  8 bytes  position: the last event the projections include
  rest     pickle of {"event_id": <that event's id>, "projections": {...}}

A snapshot is taken in a forked child, so the read side keeps serving while the
state is written; the child writes a temporary file, syncs it and renames it over
the old one, so a reader sees a whole snapshot or the previous one. Replicas share
the file; a lock lets one of them write at a time. On start the snapshot is used
only if the store still holds an event with the same position and id; otherwise
(another store, a restored backup) the read side rebuilds from the start.
"""
from __future__ import annotations

import fcntl
import logging
import os
import pickle
import signal
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from common.lifeline import signal_on_parent_death
from common.runtime import is_running

MAGIC = b"CQRSSNAP"
FORMAT = 1
_HEADER = struct.Struct(">8sIQ")
FILE = "read-side.snapshot"

log = logging.getLogger("read")


@dataclass
class Snapshot:
    position: int
    event_id: str
    projections: dict


class Snapshots:
    """Where one read side keeps and finds its snapshots; at most one child at a time."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, FILE)
        self.child: int | None = None
        # A replica on a host without the data folder simply works without snapshots.
        self.enabled = os.path.isdir(folder) and os.access(folder, os.W_OK)
        if not self.enabled:
            log.info("no writable data folder %s here: no snapshots", folder)

    def position_on_disk(self) -> int:
        """The position of the snapshot on disk, 0 if there is none."""
        try:
            with open(self.path, "rb") as f:
                return _read_header(f) or 0
        except OSError:
            return 0

    def load(self) -> Snapshot | None:
        """The snapshot on disk, or None if there is none or it cannot be read."""
        if not self.enabled:
            return None
        try:
            with open(self.path, "rb") as f:
                position = _read_header(f)
                if position is None:
                    log.warning("snapshot %s has another format; ignored", self.path)
                    return None
                body = pickle.load(f)
            return Snapshot(position, body["event_id"], body["projections"])
        except FileNotFoundError:
            return None
        except Exception as exc:  # truncated, or written by other code: rebuild instead
            log.warning("snapshot %s cannot be read (%s); ignored", self.path, exc)
            return None

    def busy(self) -> bool:
        """True while a child is still writing; reaps it once done."""
        if self.child is None:
            return False
        pid, status = os.waitpid(self.child, os.WNOHANG)
        if pid == 0:
            return True
        if status != 0:
            log.warning("snapshot writer exited with status %d", status)
        self.child = None
        return False

    def save_in_background(self, position: int, event_id: str, projections: dict) -> bool:
        """Fork a child that writes the snapshot; False if another writer holds the lock."""
        if not self.enabled or self.busy():
            return False
        try:
            lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("snapshots off: %s", exc)
            self.enabled = False
            return False
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            return False  # another replica is writing one right now
        pid = os.fork()
        if pid == 0:  # the child: owns the lock through its copy of the descriptor
            _child_write(self.path, position, event_id, projections)
        os.close(lock_fd)
        self.child = pid
        return True

    def stop(self) -> None:
        """Stop a writer still running (its temporary file is removed; the old snapshot stays)."""
        if self.child is not None:
            try:
                os.kill(self.child, signal.SIGKILL)
                os.waitpid(self.child, 0)
            except (ChildProcessError, ProcessLookupError):
                pass
            self.child = None
        self.remove_orphans()

    def remove_orphans(self) -> None:
        """Remove temporary files whose writer is gone (killed with its read side)."""
        if not self.enabled:
            return
        folder = os.path.dirname(self.path) or "."
        for name in os.listdir(folder):
            if name.startswith(FILE + ".tmp."):
                _remove_if_orphaned(os.path.join(folder, name))


def _child_write(path: str, position: int, event_id: str, projections: Any) -> None:
    """Runs in the forked child only: write, sync, rename, exit without cleanup."""
    status = 1
    try:
        signal_on_parent_death(signal.SIGKILL)  # never outlive the read side
        tmp = _temporary(path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(_HEADER.pack(MAGIC, FORMAT, position))
            pickle.dump({"event_id": event_id, "projections": projections}, f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        status = 0
    finally:
        os._exit(status)


def _read_header(f: BinaryIO) -> int | None:
    """The snapshot's position, or None when the file is not a snapshot of this FORMAT."""
    try:
        magic, fmt, position = _HEADER.unpack(f.read(_HEADER.size))
    except struct.error:  # shorter than a header
        return None
    return position if (magic, fmt) == (MAGIC, FORMAT) else None


def _temporary(path: str, pid: int) -> str:
    return f"{path}.tmp.{pid}"


def _remove_if_orphaned(tmp: str) -> None:
    try:
        writer = int(tmp.rsplit(".", 1)[1])
    except ValueError:
        writer = 0
    if writer and is_running(writer):
        return
    try:
        os.unlink(tmp)
    except OSError:
        pass
