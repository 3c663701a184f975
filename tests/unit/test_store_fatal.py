"""A damaged store gets through the write side's error handling to its loop, which stops
the node: it never becomes one error reply (a crash, code 13) or one failed batch (code 11)
while the node goes on serving from the same store."""
from __future__ import annotations

import os
import sqlite3
from types import SimpleNamespace

import pytest

from common import store_url
from common.wire import CommandRequest
from write_side import accounts
from write_side.contexts import load_all
from write_side.decider import Decider
from write_side.store import StoreCorrupt, open_store


def acc(seq: int, name: str, user: str, **payload) -> CommandRequest:
    return CommandRequest(seq, "accounts", name, {"id": user, "name": user.upper(), **payload},
                          f"n:{seq}", None)


def test_a_damaged_event_loaded_by_a_command_stops_the_batch(tmp_path):
    """Loaded inside the handler (a context without `stream_ids`, so nothing is
    prefetched), where any Exception is answered as a crash of that one command."""
    path = tmp_path / "events.sqlite3"
    store = open_store(store_url.sqlite_file(str(path)))
    try:
        Decider(store, load_all()).run([acc(1, "CreateUser", "bartholomew")])
        other = sqlite3.connect(path)
        (body,) = other.execute("SELECT body FROM events WHERE position = 1").fetchone()
        other.execute("UPDATE events SET body = ? WHERE position = 1",
                      (body.replace(b"BARTHOLOMEW", b"BARTHOLOMEX"),))
        other.commit()
        other.close()
        plain = SimpleNamespace(AGGREGATE=accounts.AGGREGATE, COMMANDS=accounts.COMMANDS)
        decider = Decider(store, {"accounts": plain})  # a new cache: the stream is read
        with pytest.raises(StoreCorrupt, match="position 1 does not match its checksum"):
            decider.run([acc(2, "RenameUser", "bartholomew")])
        # And when the batch prefetches the stream, as the real contexts make it do.
        with pytest.raises(StoreCorrupt, match="position 1 does not match its checksum"):
            Decider(store, load_all()).run([acc(3, "RenameUser", "bartholomew")])
        assert store.head == 1  # nothing was committed
    finally:
        store.close()


def test_damage_found_while_committing_stops_the_batch(tmp_path):
    """Not a failed batch answered with error 11, as a full disk is: the next batch would
    commit into the same damaged file."""
    path = tmp_path / "events.sqlite3"
    store = open_store(store_url.sqlite_file(str(path)))
    try:
        decider = Decider(store, load_all())
        decider.run([acc(i, "CreateUser", f"u{i:05d}") for i in range(1, 2001)])
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the pages are in the file
        other = sqlite3.connect(path, isolation_level=None)
        (index_page,) = other.execute("SELECT rootpage FROM sqlite_master WHERE name = "
                                      "'sqlite_autoindex_events_1'").fetchone()
        page_size = other.execute("PRAGMA page_size").fetchone()[0]
        with open(path, "r+b") as f:
            f.seek((index_page - 1) * page_size)
            f.write(os.urandom(page_size))
        other.execute("PRAGMA user_version = 4")  # the store reads its pages again
        other.close()
        with pytest.raises(StoreCorrupt, match="database disk image is malformed"):
            decider.run([acc(9999, "CreateUser", "new-one")])
    finally:
        store.close()
