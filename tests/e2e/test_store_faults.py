"""A damaged or unknown store file stops the node with a reason, through real processes:
every request read is answered with error 11 naming it, and the node exits 1. No crash
loop (the write side is never restarted), no exit 0, nothing served from the damage.

Each test writes a store with a real node, stops it, damages the file as a disk or a
hand would, and starts the node on it again."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from common import store_url
from tests.support.nodeproc import run_lines


def create(msg_id: int, user: str, name: str) -> dict:
    return {"type": "command", "msg_id": msg_id,
            "command": {"type": "CreateUser", "payload": {"id": user, "name": name}}}


def get(msg_id: int, user: str) -> dict:
    return {"type": "query", "msg_id": msg_id,
            "query": {"type": "GetUser", "params": {"userId": user}}}


def store_of(data_dir: Path) -> Path:
    return Path(store_url.resolve("", str(data_dir), "").path)


def write_store(data_dir: Path, *users: tuple[str, str]) -> None:
    """Run a node on `data_dir` that creates these users, and stop it cleanly: its store
    is then whole in one file (the write side checkpoints its WAL when it closes)."""
    out, status, err = run_lines([create(i, u, n) for i, (u, n) in enumerate(users, 1)],
                                 "--data-dir", str(data_dir), timeout=120)
    assert status == 0, err[-2000:]
    assert len(out) == len(users) and all(json.loads(line)["success"] for line in out), out[:3]
    assert not os.path.exists(f"{store_of(data_dir)}-wal")


def assert_stopped_with(out: list[str], status: int, err: str, msg_ids: list[int],
                        reason: str) -> list[str]:
    """Every request answered with error 11 naming `reason`, exit 1, no restart; returns
    the error texts."""
    assert status == 1, err[-3000:]
    replies = [json.loads(line) for line in out]
    assert [r["in_reply_to"] for r in replies] == msg_ids, out
    assert all(r["type"] == "error" and r["code"] == 11 for r in replies), out
    texts = [r["text"] for r in replies]
    assert all(t.startswith("temporarily unavailable: ") and reason in t for t in texts), texts
    assert "exited with status 78" in err  # the write side's fatal status, once
    assert "restarting" not in err, err[-3000:]
    return texts


def test_a_byte_changed_in_a_stored_name_stops_the_node(tmp_path):
    write_store(tmp_path, ("bart", "Bartholomew"), ("zed", "Zed"))
    store = store_of(tmp_path)
    content = store.read_bytes()
    assert content.count(b"Bartholomew") == 1  # in its event's bytes, and nowhere else
    at = content.index(b"Bartholomew") + len("Barth")
    with open(store, "r+b") as f:
        f.seek(at)
        f.write(b"X")  # "BarthXlomew": still a well-formed event, with another name
    # The changed event is not the last: the read side's replay, through the write side's
    # catch-up, is what reaches it.
    out, status, err = run_lines([get(1, "bart"), get(2, "zed")], "--data-dir", str(tmp_path),
                                 timeout=60)
    texts = assert_stopped_with(out, status, err, [1, 2], "does not match its checksum")
    assert f"event store {store} is corrupt: the event at position" in texts[0]
    assert "BarthXlomew" not in "".join(out)


def test_a_page_of_random_bytes_stops_the_node_before_it_serves(tmp_path):
    write_store(tmp_path, *[(f"u{i}", f"User number {i}") for i in range(3000)])
    store = store_of(tmp_path)
    page_size = int.from_bytes(store.read_bytes()[16:18], "big")  # from the SQLite header
    pages = store.stat().st_size // page_size
    assert pages > 20
    with open(store, "r+b") as f:
        f.seek(pages // 2 * page_size)
        f.write(os.urandom(page_size))
    damaged = store.read_bytes()
    out, status, err = run_lines([get(1, "u1"), create(2, "new", "New"), get(3, "u2999")],
                                 "--data-dir", str(tmp_path), timeout=60)
    assert_stopped_with(out, status, err, [1, 2, 3], f"event store {store} is corrupt")
    assert store.read_bytes() == damaged  # nothing was committed into it


def test_an_empty_store_file_is_refused_and_nothing_seeded(tmp_path):
    """A 0-byte file was taken for a new store, and the sample data seeded into it."""
    store = store_of(tmp_path)
    store.write_bytes(b"")
    out, status, err = run_lines([get(1, "user-123"), create(2, "new", "New")],
                                 "--data-dir", str(tmp_path), timeout=60)
    assert_stopped_with(out, status, err, [1, 2], f"event store {store} is an empty file")
    assert store.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.sqlite3", "node.lock"]


def test_a_data_folder_the_node_makes_holds_only_private_files(tmp_path):
    data = tmp_path / "made-by-the-node"
    write_store(data, ("a", "Ann"))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert modes == {"events.sqlite3": 0o600, "node.lock": 0o600}
