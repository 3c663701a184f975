"""Stores written by an older node: format 3 is upgraded in place after a backup, any other
format is refused with a message.

The format-3 stores here are built as format 3 wrote them, by the builder below: its
schema is format 3's DDL as the node shipped it (write_side/store.py, three commits
before the store became a package), and its rows are packed the way that code packed
them. Nothing of the current engine is used to build them.
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import uuid
import zlib
from pathlib import Path

import msgpack
import pytest

from common import store_url
from write_side.store import Commit, NewEvent, StoreError, all_events, open_store

# Format 3's schema, exactly as it shipped.
FORMAT_3_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    context     TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        BLOB NOT NULL,
    UNIQUE (context, stream_id, version)
);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    result     BLOB NOT NULL,
    position   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    boot     TEXT NOT NULL,
    seq_from INTEGER NOT NULL,
    seq_to   INTEGER NOT NULL,
    results  BLOB NOT NULL,        -- packed [[seq, result, position], ...]
    PRIMARY KEY (boot, seq_to)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uniques (
    context   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    PRIMARY KEY (context, kind, value)
) WITHOUT ROWID;
"""
OK = {"success": True, "events": [{"eventType": "UserCreated", "aggregateId": "u1"}]}


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # format 3's packer


def build_format_3(path: Path, count: int = 40, stamp: int = 3) -> tuple[
        list[dict], sqlite3.Connection]:
    """A store as a format-3 node left it: WAL mode, `count` events (a user each, the first
    renamed too), a client-named and a router-made command, one claim. Returns the events'
    maps and the builder's connection, still open (its caller closes it, or keeps it open
    to leave the last commit in the WAL)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA wal_autocheckpoint = 0")  # what is in the WAL stays there
    db.execute("BEGIN IMMEDIATE")
    for statement in FORMAT_3_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {stamp}")
    db.execute("COMMIT")
    events = []
    for position in range(1, count + 1):
        # u1 is created then renamed; every later event creates a user of its own.
        stream, version = ("u1", position) if position <= 2 else (f"u{position}", 1)
        events.append({"position": position, "context": "accounts", "stream_id": stream,
                       "version": version, "type": "UserRenamed" if version > 1 else
                       "UserCreated", "data": {"name": f"User {position}"},
                       "recorded_at": f"2024-03-01T00:00:{position % 60:02d}.000000Z",
                       "event_id": str(uuid.uuid4())})
    # Two commits, as two batches of a node: the second is the one left in the WAL.
    for chunk in (events[:count // 2], events[count // 2:]):
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO events (position, context, stream_id, version, body) "
                       "VALUES (?, ?, ?, ?, ?)",
                       [(e["position"], e["context"], e["stream_id"], e["version"], pack(e))
                        for e in chunk])
        db.execute("COMMIT")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO commands VALUES (?, ?, ?)", ("c:accounts:k1", pack(OK), 1))
    db.execute("INSERT INTO batches VALUES (?, ?, ?, ?)",
               ("b00t", 7, 7, pack([[7, OK, 2]])))
    db.execute("INSERT INTO uniques VALUES (?, ?, ?, ?)", ("directory", "email", "a@x.io", "u1"))
    db.execute("COMMIT")
    return events, db


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "events.sqlite3"


def url_of(path: Path) -> str:
    return store_url.sqlite_file(str(path)).text


def format_of(path: Path) -> tuple[int, list[str]]:
    """(format stamp, columns of events) of the store file at `path`, read without the node
    (immutable: no side files are made beside it)."""
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        stamp = db.execute("PRAGMA user_version").fetchone()[0]
        columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
        return stamp, columns
    finally:
        db.close()


def test_a_format_3_store_is_upgraded_in_place_after_a_backup(path, caplog):
    events, builder = build_format_3(path)
    builder.close()  # as a node that stopped cleanly left it
    original = path.read_bytes()
    caplog.set_level(logging.INFO)
    store = open_store(url_of(path))
    try:
        # Every event is there, as it was packed, and is served (so its checksum matches).
        assert list(all_events(store)) == events
        assert store.head == len(events)
        assert store.load_stream("accounts", "u1") == events[:2]
        assert store.find_commands(["c:accounts:k1", "n:b00t:7"]) == {
            "c:accounts:k1": (OK, 1), "n:b00t:7": (OK, 2)}
        assert store.claim_owner("directory", "email", "a@x.io") == "u1"
        (new,) = store.commit(Commit([NewEvent("accounts", "n1", 1, "UserCreated",
                                               {"name": "N"}, "2024-04-01T00:00:00.000000Z")],
                                     [], [], []))
        assert new.event["position"] == len(events) + 1
    finally:
        store.close()
    assert format_of(path) == (4, ["position", "context", "stream_id", "version", "body",
                                   "checksum"])
    # Each stored checksum is the CRC-32 of the row's bytes, computed here independently.
    db = sqlite3.connect(path)
    rows = db.execute("SELECT body, checksum FROM events").fetchall()
    db.close()
    assert len(rows) == len(events) + 1
    assert all(zlib.crc32(body) == checksum for body, checksum in rows)
    # The backup is the untouched original, private like the store.
    backup = Path(str(path) + ".format3.bak")
    assert backup.read_bytes() == original
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert format_of(backup) == (3, ["position", "context", "stream_id", "version", "body"])
    (said,) = [r.getMessage() for r in caplog.records if "upgraded" in r.getMessage()]
    assert re.fullmatch(f"upgraded event store {re.escape(str(path))} from format 3 to format "
                        f"4: checksums added to {len(events)} events in [0-9.]+ s; the "
                        f"format-3 file is kept as {re.escape(str(backup))}", said)
    # Upgraded once: opening it again changes nothing and keeps no second copy.
    caplog.clear()
    open_store(url_of(path)).close()
    assert not [r for r in caplog.records if "upgraded" in r.getMessage()]
    assert sorted(p.name for p in path.parent.iterdir()) == ["events.sqlite3",
                                                             "events.sqlite3.format3.bak"]


def test_the_commits_a_format_3_node_left_in_its_wal_are_upgraded_and_kept(path):
    """A node killed without a checkpoint leaves its last commits in the WAL: they are in
    the backup and in the upgraded store alike."""
    events, builder = build_format_3(path)
    assert os.path.getsize(str(path) + "-wal") > 0
    try:
        store = open_store(url_of(path))
        try:
            assert list(all_events(store)) == events
        finally:
            store.close()
    finally:
        builder.close()
    backup = sqlite3.connect(f"file:{path}.format3.bak?mode=ro&immutable=1", uri=True)
    try:
        bodies = [r[0] for r in backup.execute("SELECT body FROM events ORDER BY position")]
    finally:
        backup.close()
    assert [msgpack.unpackb(b) for b in bodies] == events


def test_an_earlier_backup_is_never_overwritten(path):
    build_format_3(path)[1].close()
    earlier = Path(str(path) + ".format3.bak")
    earlier.write_bytes(b"a backup the user made before")
    open_store(url_of(path)).close()
    assert earlier.read_bytes() == b"a backup the user made before"
    assert format_of(Path(str(path) + ".format3.2.bak"))[0] == 3


def test_an_upgrade_that_cannot_keep_its_backup_changes_nothing(path):
    build_format_3(path)[1].close()
    original = path.read_bytes()
    # The backup cannot be written: where its copy goes is a folder.
    os.mkdir(str(path) + ".format3.bak.partial")
    with pytest.raises(StoreError, match="Is a directory"):
        open_store(url_of(path))
    assert format_of(path)[0] == 3
    assert path.read_bytes() == original


def test_a_format_3_store_is_not_upgraded_by_a_reader(path):
    """Read-only openings change nothing: the message says how the store gets upgraded."""
    build_format_3(path)[1].close()
    original = path.read_bytes()
    with pytest.raises(StoreError, match="has format 3: start the node on it once, and its "
                                         "write side upgrades it to format 4"):
        open_store(url_of(path), read_only=True)
    assert path.read_bytes() == original
    assert not list(path.parent.glob("*.bak"))


@pytest.mark.parametrize("stamp", [2, 5])
def test_any_other_format_is_refused_with_a_message(path, stamp):
    build_format_3(path, stamp=stamp)[1].close()
    original = path.read_bytes()
    for options in ({}, {"read_only": True}):
        with pytest.raises(StoreError, match=f"has format {stamp}, this node reads format 4"):
            open_store(url_of(path), **options)
    assert path.read_bytes() == original


def test_a_format_3_store_in_use_elsewhere_is_not_upgraded(path):
    """Its WAL cannot be folded into the file while another process reads from it, so the
    file alone would be no whole backup: the upgrade waits for the next start."""
    events, builder = build_format_3(path)
    builder.execute("BEGIN")
    builder.execute("SELECT COUNT(*) FROM events").fetchone()  # a reader, mid-transaction
    try:
        with pytest.raises(StoreError, match="another process is using it"):
            open_store(url_of(path))
    finally:
        builder.execute("COMMIT")
        builder.close()
    assert format_of(path)[0] == 3
    assert not list(path.parent.glob("*.bak"))
