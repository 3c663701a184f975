"""Runtime folders: a folder whose launcher is gone is removed, even before the launcher
is reaped (a killed launcher is a zombie until its parent waits for it)."""
import os
import signal

from common import runtime
from tests.support.nodeproc import wait_until


def _zombie() -> int:
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
                      == "Z", 5)
    return pid


def test_a_folder_whose_launcher_is_a_zombie_is_removed(tmp_path, monkeypatch):
    folder = tmp_path / "rt"
    folder.mkdir()
    pid = _zombie()
    try:
        monkeypatch.setattr(runtime, "owner", lambda _folder: pid)
        assert runtime.remove_if_orphaned(str(folder))
        assert not folder.exists()
    finally:
        os.waitpid(pid, 0)


def test_a_folder_whose_launcher_runs_is_kept(tmp_path, monkeypatch):
    folder = tmp_path / "rt"
    folder.mkdir()
    monkeypatch.setattr(runtime, "owner", lambda _folder: os.getpid())
    assert not runtime.remove_if_orphaned(str(folder))
    assert folder.exists()
