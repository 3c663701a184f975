"""Bad storage gets a clear answer, never silent loss."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from common import store_url
from tests.support.nodeproc import run_lines

CREATE = {"type": "command", "msg_id": 1,
          "command": {"type": "CreateUser", "payload": {"id": "s1", "name": "Sam"}}}
GET = {"type": "query", "msg_id": 2, "query": {"type": "GetUser", "params": {"userId": "s1"}}}


def data_dir_store(data_dir) -> str:
    """The path of the store file that --data-dir names."""
    return store_url.resolve("", str(data_dir), "").path


def test_corrupt_store_refuses_to_start_and_keeps_the_file(tmp_path):
    store = Path(data_dir_store(tmp_path))
    store.write_bytes(b"this is not a database" * 100)
    out, status, err = run_lines([CREATE], "--data-dir", str(tmp_path))
    assert status == 1
    assert out == ['{"type": "error", "in_reply_to": 1, "code": 11, "text": "temporarily '
                   'unavailable: cannot open event store ' + str(store) +
                   ': file is not a database"}']
    assert "file is not a database" in err
    assert store.read_bytes() == b"this is not a database" * 100  # never overwritten


def test_store_of_another_format_is_refused_and_kept(tmp_path):
    store = Path(data_dir_store(tmp_path))
    # A store of another format can only be written by hand, in the engine's own terms.
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, type TEXT)")
    db.execute("INSERT INTO events VALUES (1, 'UserCreated')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    before = store.read_bytes()
    out, status, err = run_lines([CREATE], "--data-dir", str(tmp_path))
    assert status == 1
    assert len(out) == 1 and '"code": 11' in out[0] and "has format 1" in out[0]
    assert "has format 1, this node reads format" in err
    assert store.read_bytes() == before  # kept byte for byte: refused before any change


def test_data_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out, status, err = run_lines([CREATE], "--data-dir", str(blocker / "store"))
    # Every request read is answered with error 11 naming the reason, then exit 1.
    assert status == 1 and len(out) == 1, (out, err)
    reply = json.loads(out[0])
    assert (reply["type"], reply["code"]) == ("error", 11), reply
    assert "data folder" in reply["text"] and "cannot be created" in reply["text"], reply
    assert "cannot start: data folder" in err


def test_second_node_on_the_same_folder_is_refused(node_factory, tmp_path):
    first = node_factory("--data-dir", str(tmp_path))
    assert first.request(CREATE)["success"] is True
    out, status, err = run_lines([GET], "--data-dir", str(tmp_path))
    assert status == 1
    assert out[0].startswith('{"type": "error", "in_reply_to": 2, "code": 11, "text": '
                             '"temporarily unavailable: data folder ')
    assert "in use by another node" in out[0]
    # The first node is untouched and still serves.
    assert first.request(GET)["data"] == {"id": "s1", "name": "Sam"}


def test_full_disk_fails_the_batch_and_keeps_serving(node_factory, tmp_path):
    node = node_factory("--data-dir", str(tmp_path), env={"CQRS_FAULT_MAX_PAGES": "12"})
    stored, refused = [], None
    for i in range(1, 400):
        reply = node.request({"type": "command", "msg_id": i, "command": {
            "type": "CreateUser", "payload": {"id": f"f{i}", "name": "F" * 500}}})
        if reply["type"] == "error":
            refused = reply
            break
        assert reply["success"] is True
        stored.append(f"f{i}")
    assert refused is not None, "the store never filled up"
    assert refused["code"] == 11 and "full" in refused["text"], refused
    # Everything acknowledged before is still there, and queries are still answered.
    for n, user_id in enumerate(stored, start=1000):
        assert node.request({"type": "query", "msg_id": n, "query": {
            "type": "GetUser", "params": {"userId": user_id}}})["data"]["id"] == user_id
    node.close_stdin()
    assert node.wait() == 0
    out, status, _ = run_lines([{"type": "query", "msg_id": 5, "query": {
        "type": "ListUsers", "params": {"limit": 1000}}}], "--data-dir", str(tmp_path))
    assert status == 0
    assert len(__import__("json").loads(out[0])["data"]) == len(stored) + 1  # + sample user


def test_without_data_dir_the_store_is_removed_at_exit(node_factory):
    node = node_factory()
    assert node.request(CREATE)["success"] is True
    runtime = node.runtime_dir()
    assert os.path.exists(store_url.resolve("", "", runtime).path)
    node.close_stdin()
    assert node.wait() == 0
    assert not os.path.exists(runtime)


def test_a_store_url_keeps_the_store_across_restarts(tmp_path):
    url = store_url.sqlite_file(str(tmp_path / "elsewhere" / "events.sqlite3")).text
    out, status, _ = run_lines([CREATE], "--store", url)
    assert status == 0 and json.loads(out[0])["success"] is True
    out, status, _ = run_lines([GET], "--store", url)
    assert status == 0 and json.loads(out[0])["data"] == {"id": "s1", "name": "Sam"}


def test_second_node_on_the_same_store_is_refused_however_it_is_named(node_factory, tmp_path):
    """A data folder, its store URL, and a URL through a symlink name one store: one lock."""
    data = tmp_path / "data"
    (tmp_path / "alias").symlink_to(data, target_is_directory=True)
    first = node_factory("--data-dir", str(data))
    assert first.request(CREATE)["success"] is True
    for url in (store_url.resolve("", str(data), "").text,
                store_url.sqlite_file(str(tmp_path / "alias" / "events.sqlite3")).text):
        out, status, err = run_lines([GET], "--store", url)
        assert status == 1, err
        assert "in use by another node" in out[0]
    assert first.request(GET)["data"] == {"id": "s1", "name": "Sam"}
