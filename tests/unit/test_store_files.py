"""The store's files are private: the store, its WAL and SHM, and the lock are 0600, and a
data folder the write side makes is 0700; looser modes left by an older node are
tightened when the store is opened, and said in the log."""
from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Iterator

import pytest

from common import store_url
from write_side.lock import LOCK_FILE, lock_folder
from write_side.store import Commit, NewEvent, open_store


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The most permissive umask: the modes below must come from the code, not from a
    umask that happens to take bits off."""
    before = os.umask(0)
    yield
    os.umask(before)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def one_event() -> Commit:
    return Commit([NewEvent("accounts", "a", 1, "UserCreated", {"name": "A"},
                            "2024-01-01T00:00:00.000000Z")], [], [], [])


def test_a_new_store_and_its_side_files_are_private(tmp_path):
    path = tmp_path / "events.sqlite3"
    store = open_store(store_url.sqlite_file(str(path)))
    try:
        store.commit(one_event())
        files = {p.name: mode(p) for p in tmp_path.iterdir()}
    finally:
        store.close()
    assert files == {"events.sqlite3": 0o600, "events.sqlite3-wal": 0o600,
                     "events.sqlite3-shm": 0o600}


def test_an_open_store_is_made_private_and_the_change_logged(tmp_path, caplog):
    path = tmp_path / "events.sqlite3"
    url = store_url.sqlite_file(str(path))
    open_store(url).close()
    # An older node's store, open to everyone, its WAL and SHM there as a running one has them.
    holder = sqlite3.connect(path)
    holder.execute("SELECT COUNT(*) FROM events").fetchone()
    names = [str(path), f"{path}-wal", f"{path}-shm"]
    for name in names:
        os.chmod(name, 0o644)
    caplog.set_level(logging.WARNING)
    try:
        store = open_store(url)
        try:
            store.commit(one_event())
            assert [mode(n) for n in names] == [0o600] * 3
        finally:
            store.close()
    finally:
        holder.close()
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"event store file {n} was open to other users (mode 0644); made it 0600"
                    for n in names]


def test_owner_bits_are_kept_when_others_are_taken_off(tmp_path):
    path = tmp_path / "events.sqlite3"
    url = store_url.sqlite_file(str(path))
    open_store(url).close()
    os.chmod(path, 0o664)
    open_store(url).close()
    assert mode(path) == 0o600


def test_a_read_only_opening_changes_no_mode(tmp_path):
    path = tmp_path / "events.sqlite3"
    url = store_url.sqlite_file(str(path))
    open_store(url).close()
    os.chmod(path, 0o644)
    open_store(url, read_only=True).close()
    assert mode(path) == 0o644


def test_a_data_folder_the_write_side_makes_is_private(tmp_path):
    folder = tmp_path / "parent" / "data"
    fd = lock_folder(str(folder))
    try:
        assert mode(folder) == 0o700
        assert mode(folder / LOCK_FILE) == 0o600
    finally:
        os.close(fd)


def test_a_folder_that_was_there_keeps_its_mode(tmp_path):
    """It may be one the user shares on purpose; only what the node writes is private."""
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o755)
    os.close(lock_folder(str(folder)))
    assert mode(folder) == 0o755
    assert mode(folder / LOCK_FILE) == 0o600


def test_an_older_lock_file_is_made_private_and_the_change_logged(tmp_path, caplog):
    lock = tmp_path / LOCK_FILE
    lock.write_text("123")
    os.chmod(lock, 0o666)
    caplog.set_level(logging.WARNING)
    os.close(lock_folder(str(tmp_path)))
    assert mode(lock) == 0o600
    assert [r.getMessage() for r in caplog.records] == [
        f"lock file {lock} was open to other users (mode 0666); made it 0600"]
