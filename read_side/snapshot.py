"""Snapshots of a read side's projections, so a restart replays only the tail of the store.

File `read-side.snapshot` in the data folder (FORMAT 2):
  8 bytes  MAGIC
  4 bytes  FORMAT (big-endian)
  8 bytes  position: the last event the projections include
  32 bytes contexts: SHA-256 of the contexts this node runs (signature())
  32 bytes checksum: SHA-256 of the 52 bytes above and of the whole body
  rest     body: pickle of {"event_id": <that event's id>, "projections": {...}}

A snapshot is only a cache of the store, so whatever is wrong with one costs a replay
of the store from the start, never a wrong answer. The file is checked before anything
in it is unpickled: its format, its contexts (a snapshot of other contexts, say from
before a query was added, would answer that query with error 10), and its checksum
(a byte changed anywhere, header or body, by a disk or by hand). Any mismatch means a
full replay and one log line. The checksum makes a change evident, it is no signature:
whoever can write the data folder can write a matching checksum, or rewrite the store.

FORMAT 1 (before the checksum and the contexts: `>8sIQ` MAGIC, 1, position, then the
pickle) is simply not taken up: the replay rebuilds the state and the next snapshot is
written in format 2. Its projections lack the indexes added with format 2 anyway.
Bump FORMAT whenever what the projections pickle changes shape in the same way.

A snapshot is taken in a forked child, so the read side keeps serving while the
state is written; the child writes a temporary file, syncs it and renames it over
the old one, so a reader sees a whole snapshot or the previous one. Replicas share
the file; a lock lets one of them write at a time. On start the snapshot is used
only if the store still holds an event with the same position and id; otherwise
(another store, a restored backup) the read side rebuilds from the start.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import pickle
import signal
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from common.contexts import CONTEXTS, ContextSpec, RegistryError, check_handlers
from common.lifeline import signal_on_parent_death
from common.runtime import is_running

MAGIC = b"CQRSSNAP"
FORMAT = 2
_KIND = struct.Struct(">8sI")  # MAGIC and FORMAT: the same in every format
_SIGNED = struct.Struct(">8sIQ32s")  # what the checksum covers of the header
_HEADER = struct.Struct(">8sIQ32s32s")
FILE = "read-side.snapshot"

log = logging.getLogger("read")


def signature(contexts: Iterable[ContextSpec] = CONTEXTS) -> bytes:
    """SHA-256 of the contexts' names, dialects and query names, in registry order: what
    the projections in a snapshot must answer. (The read side refuses to start unless each
    Projection's query table is exactly its context's query names.)"""
    described = [[spec.name, spec.dialect, list(spec.queries)] for spec in contexts]
    return hashlib.sha256(json.dumps(described).encode()).digest()


@dataclass
class Snapshot:
    position: int
    event_id: str
    projections: dict
    header: bytes  # the file's header, by which Snapshots.refuse knows it again


class _Hashing:
    """A file's write() that also feeds every byte written to a running SHA-256."""

    def __init__(self, f: BinaryIO, digest: Any) -> None:
        self.f = f
        self.digest = digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.f.write(data)


class Snapshots:
    """Where one read side keeps and finds its snapshots; at most one child at a time."""

    def __init__(self, folder: str, contexts: Iterable[ContextSpec] = CONTEXTS) -> None:
        """`contexts`: those this node runs; a snapshot of others is refused."""
        self.path = os.path.join(folder, FILE)
        self.contexts = tuple(contexts)
        self.signature = signature(self.contexts)
        self.child: int | None = None
        # The header of a snapshot load() refused: it does not count as one on disk, so a
        # new snapshot replaces it as soon as one is due.
        self.refused: bytes | None = None
        # A replica on a host without the data folder simply works without snapshots.
        self.enabled = os.path.isdir(folder) and os.access(folder, os.W_OK)
        if not self.enabled:
            log.info("no writable data folder %s here: no snapshots", folder)

    def position_on_disk(self) -> int:
        """The position of the snapshot on disk, 0 if there is none this node could take up
        (another format or other contexts, or one already refused). Reads the header only:
        the checksum is checked by load()."""
        try:
            with open(self.path, "rb") as f:
                header = f.read(_HEADER.size)
        except OSError:
            return 0
        if len(header) < _HEADER.size or header == self.refused:
            return 0
        magic, fmt, position, contexts, _ = _HEADER.unpack(header)
        return position if (magic, fmt, contexts) == (MAGIC, FORMAT, self.signature) else 0

    def load(self) -> Snapshot | None:
        """The snapshot on disk, or None if there is none or it cannot be taken up (then
        one line says why)."""
        if not self.enabled:
            return None
        try:
            with open(self.path, "rb") as f:
                # Whole, so that what is unpickled is exactly what was checked.
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("snapshot %s cannot be read (%s); ignored: replaying the store", self.path,
                        exc)
            return None
        refusal = self._refusal(data)
        if refusal is not None:
            level, why = refusal
            log.log(level, "snapshot %s %s; not taken up: replaying the store from the start",
                    self.path, why)
            self.refused = data[:_HEADER.size]
            return None
        position = _HEADER.unpack_from(data)[2]
        try:
            body = pickle.loads(memoryview(data)[_HEADER.size:])
            snap = Snapshot(position, body["event_id"], body["projections"], data[:_HEADER.size])
            self._check_projections(snap.projections)
        except Exception as exc:  # written by other code under the same format and contexts
            log.warning("snapshot %s cannot be taken up (%s); ignored: replaying the store",
                        self.path, exc)
            self.refused = data[:_HEADER.size]
            return None
        return snap

    def refuse(self, snap: Snapshot) -> None:
        """Count this snapshot as none (it does not belong to the store): position_on_disk
        says 0 until another one replaces it."""
        self.refused = snap.header

    def _refusal(self, data: bytes) -> tuple[int, str] | None:
        """(log level, why) if the file is not a sound snapshot of this format and of these
        contexts; None if it is. Looks at bytes only: nothing is unpickled."""
        if len(data) < _KIND.size or _KIND.unpack_from(data)[0] != MAGIC:
            return logging.WARNING, "is not a snapshot"
        fmt = _KIND.unpack_from(data)[1]
        if fmt != FORMAT:
            # An older format after an upgrade is expected: the store rebuilds it.
            level = logging.INFO if fmt < FORMAT else logging.WARNING
            return level, f"is in format {fmt}, this node reads format {FORMAT}"
        if len(data) < _HEADER.size:
            return logging.WARNING, "is shorter than its header"
        _magic, _fmt, _position, contexts, checksum = _HEADER.unpack_from(data)
        # The checksum first: it covers the contexts field too, so a damaged file is said
        # to be damaged, not to be of other contexts.
        if _checksum(data) != checksum:
            return logging.WARNING, "fails its checksum (damaged, or changed since written)"
        if contexts != self.signature:
            return logging.WARNING, "was written for other contexts than this node runs"
        return None

    def _check_projections(self, projections: Any) -> None:
        """Raise unless the projections are exactly those of this node's contexts, each
        answering exactly its context's queries (the signature says so already; this checks
        what was actually unpickled)."""
        if not isinstance(projections, dict) or list(projections) != [
                spec.name for spec in self.contexts]:
            raise RegistryError("its projections are not those of this node's contexts")
        for spec in self.contexts:
            check_handlers(spec, "query", projections[spec.name].queries,
                           f"the snapshot's {spec.name} projection")

    def write(self, position: int, event_id: str, projections: dict) -> None:
        """Write the snapshot now, in this process: a temporary file, synced, then renamed
        over the old one. (save_in_background runs this in a child.)"""
        tmp = _temporary(self.path, os.getpid())
        signed = _SIGNED.pack(MAGIC, FORMAT, position, self.signature)
        digest = hashlib.sha256(signed)
        try:
            with open(tmp, "wb") as f:
                # The checksum is known once the body is written: its place is filled last.
                f.write(bytes(_HEADER.size))
                pickle.dump({"event_id": event_id, "projections": projections},
                            _Hashing(f, digest), protocol=5)
                f.seek(0)
                f.write(signed + digest.digest())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

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
            _child_write(self, position, event_id, projections)
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


def _child_write(snapshots: Snapshots, position: int, event_id: str, projections: Any) -> None:
    """Runs in the forked child only: write, sync, rename, exit without cleanup."""
    status = 1
    try:
        signal_on_parent_death(signal.SIGKILL)  # never outlive the read side
        snapshots.write(position, event_id, projections)
        status = 0
    finally:
        os._exit(status)


def _checksum(data: bytes) -> bytes:
    """SHA-256 of a format-2 file's bytes but its own checksum field."""
    view = memoryview(data)
    digest = hashlib.sha256(view[:_SIGNED.size])
    digest.update(view[_HEADER.size:])
    return digest.digest()


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
