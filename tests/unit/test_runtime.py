"""Runtime folders: a folder whose launcher still runs is kept. (The removal of one whose
launcher is gone needs a real zombie process: tests/e2e/test_runtime_zombie.py.)"""
import os

from common import runtime


def test_a_folder_whose_launcher_runs_is_kept(tmp_path, monkeypatch):
    folder = tmp_path / "rt"
    folder.mkdir()
    monkeypatch.setattr(runtime, "owner", lambda _folder: os.getpid())
    assert not runtime.remove_if_orphaned(str(folder))
    assert folder.exists()
