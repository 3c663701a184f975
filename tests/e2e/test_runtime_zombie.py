"""Runtime folders: a folder whose launcher is gone is removed even before the launcher is
reaped (a killed launcher is a zombie until its parent waits for it). It makes a zombie, so
it starts a process and is not a unit test; see tests/unit/test_runtime.py."""
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
