"""The benchmark's replay stores (bench/store.py) without a node: the size rule, and copies
with or without the read side's snapshots."""
from __future__ import annotations

import os
import shutil

import pytest

from bench import store
from bench.driver import default_spec


def test_store_needs_enough_events(tmp_path):
    with pytest.raises(ValueError):
        store.build_store(default_spec(), 3, str(tmp_path))


def test_a_copy_without_snapshots_keeps_only_the_rest(tmp_path):
    folder = tmp_path / "built"
    folder.mkdir()
    for name in ("events.sqlite3", "read-side.snapshot", "read-side.snapshot.lock"):
        (folder / name).write_bytes(b"x")
    built = store.Store(str(folder), 1, ("a", "A"), ("b", "B"))
    with_all, without = store.copy_store(built), store.copy_store(built, snapshots=False)
    try:
        assert sorted(os.listdir(with_all)) == sorted(os.listdir(folder))
        assert os.listdir(without) == ["events.sqlite3"]
    finally:
        shutil.rmtree(with_all)
        shutil.rmtree(without)
