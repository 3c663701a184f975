"""Read-side snapshots end to end: a restart takes one up and answers exactly as before;
a snapshot that does not belong to the store, is damaged, was changed by hand or is of the
older format is refused, and the store replayed instead."""
from __future__ import annotations

import os
import struct

from common import store_url
from read_side.snapshot import _HEADER, FILE, MAGIC
from tests.support.nodeproc import alive, wait_until

ENV = {"CQRS_SNAPSHOT_MIN": "20"}


def create(msg_id, user_id, name):
    return {"type": "command", "msg_id": msg_id,
            "command": {"type": "CreateUser", "payload": {"id": user_id, "name": name}}}


def rename(msg_id, user_id, name):
    return {"type": "command", "msg_id": msg_id,
            "command": {"type": "RenameUser", "payload": {"id": user_id, "name": name}}}


def query(msg_id, name, **params):
    return {"type": "query", "msg_id": msg_id, "query": {"type": name, "params": params}}


QUESTIONS = [query(1, "GetUser", userId="u7"), query(2, "GetUserHistory", userId="u7"),
             query(3, "GetUserAtTime", userId="user-123", timestamp="2024-01-15T00:00:00Z"),
             query(4, "ListUsers", page=1, limit=100),
             {"type": "GetUser", "msg_id": 5, "params": {"user_id": "user-123"}}]


def answers(node):
    return [node.request(q) for q in QUESTIONS]


def fill(node, first, count):
    node.send(*[create(first + i, f"u{first + i}", f"User {first + i}") for i in range(count)])
    node.send(*[rename(1000 + first + i, f"u{first + i}", f"Renamed {first + i}")
                for i in range(count)])
    replies = [node.read(timeout=30) for _ in range(2 * count)]
    assert all(r.get("success") for r in replies), replies[:3]


def node_with_a_snapshot(node_factory, data: str):
    """A node on `data` that has written a snapshot of 30 users, each renamed once."""
    node = node_factory("--data-dir", data, env=ENV)
    fill(node, 1, 30)
    assert wait_until(lambda: os.path.exists(os.path.join(data, FILE)), timeout=30)
    return node


def end_of_input(node) -> None:
    node.close_stdin()
    assert node.wait(30) == 0


def test_restart_takes_up_the_snapshot_and_answers_the_same(node_factory, tmp_path):
    data = str(tmp_path / "data")
    node = node_with_a_snapshot(node_factory, data)
    fill(node, 100, 5)  # events after the snapshot: replayed from the store at restart
    before = answers(node)
    end_of_input(node)
    assert [pid for pid in node.children_seen if alive(pid)] == []

    again = node_factory("--data-dir", data, env=ENV)
    assert answers(again) == before
    assert "took up the snapshot at position" in again.stderr()


def test_a_snapshot_of_another_store_is_refused(node_factory, tmp_path):
    data = str(tmp_path / "data")
    end_of_input(node_with_a_snapshot(node_factory, data))
    # A new, empty store in the same folder: the snapshot there belongs to the old one.
    other = store_url.sqlite_file(os.path.join(data, "other.sqlite3")).text
    fresh = node_factory("--data-dir", data, "--store", other, env=ENV)
    listed = fresh.request(query(1, "ListUsers", page=1, limit=100))
    assert listed["data"] == [{"id": "user-123", "name": "John"}]  # sample data only
    assert "does not match the store" in fresh.stderr()


def test_a_damaged_snapshot_means_a_full_replay(node_factory, tmp_path):
    data = str(tmp_path / "data")
    node = node_with_a_snapshot(node_factory, data)
    before = answers(node)
    end_of_input(node)
    with open(os.path.join(data, FILE), "r+b") as f:
        f.seek(40)
        f.write(b"\xff" * 64)

    again = node_factory("--data-dir", data, env=ENV)
    assert answers(again) == before
    assert "fails its checksum" in again.stderr()


def snapshot_warnings(node) -> list[str]:
    return [line for line in node.stderr().splitlines() if " WARNING " in line and "snapshot" in line]


def test_a_name_changed_in_the_snapshot_is_refused_with_one_warning(node_factory, tmp_path):
    """One byte of a stored name changed by hand: the node must not serve it (format 1 did,
    silently), but replay the store and say so once."""
    data = str(tmp_path / "data")
    node = node_with_a_snapshot(node_factory, data)
    before = answers(node)
    true_name = node.request(query(6, "GetUser", userId="u17"))
    assert true_name["data"] == {"id": "u17", "name": "Renamed 17"}
    end_of_input(node)
    path = os.path.join(data, FILE)
    with open(path, "rb") as f:
        content = f.read()
    place = content.find(b"Renamed 17")
    assert place > _HEADER.size
    with open(path, "r+b") as f:
        f.seek(place + len("Renamed"))
        f.write(b"_")  # "Renamed_17"

    again = node_factory("--data-dir", data, env=ENV)
    assert again.request(query(6, "GetUser", userId="u17")) == true_name
    assert answers(again) == before
    [warning] = snapshot_warnings(again)
    assert "fails its checksum" in warning
    assert "took up the snapshot" not in again.stderr()


def test_a_format_1_snapshot_is_replayed_and_replaced_by_format_2(node_factory, tmp_path):
    """A snapshot as format 1 wrote it (`>8sIQ` MAGIC, 1, position, then the pickle): not
    taken up, one info line; the next snapshot is written in format 2 and taken up later."""
    data = str(tmp_path / "data")
    node = node_with_a_snapshot(node_factory, data)
    before = answers(node)
    end_of_input(node)
    path = os.path.join(data, FILE)
    with open(path, "rb") as f:
        content = f.read()
    position = struct.unpack_from(">8sIQ", content)[2]
    with open(path, "wb") as f:
        f.write(struct.pack(">8sIQ", MAGIC, 1, position) + content[_HEADER.size:])

    again = node_factory("--data-dir", data, env=ENV)
    assert answers(again) == before
    assert "is in format 1" in again.stderr() and snapshot_warnings(again) == []
    assert "took up the snapshot" not in again.stderr()

    def format_on_disk() -> int:
        with open(path, "rb") as f:
            return struct.unpack(">8sI", f.read(12))[1]

    assert wait_until(lambda: format_on_disk() == 2, timeout=30)
    end_of_input(again)
    third = node_factory("--data-dir", data, env=ENV)
    assert answers(third) == before
    assert "took up the snapshot at position" in third.stderr()
