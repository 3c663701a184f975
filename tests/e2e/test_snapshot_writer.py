"""Read-side snapshots written in the background: each by a forked child, found again once it
is done, and only one writer at a time across replicas. (They start a process, so they are
not unit tests; the rest of the Snapshots tests are in tests/unit/test_snapshot.py.)"""
import fcntl
import os

from read_side.snapshot import FILE, Snapshots
from tests.support.nodeproc import wait_until
from tests.support.projections import projections_with_one_user


def test_a_snapshot_written_in_the_background_is_found_again(tmp_path):
    snaps = Snapshots(str(tmp_path))
    assert snaps.load() is None and snaps.position_on_disk() == 0
    assert snaps.save_in_background(1, "e1", projections_with_one_user())
    assert wait_until(lambda: not snaps.busy(), timeout=30)
    snap = snaps.load()
    assert (snap.position, snap.event_id) == (1, "e1")
    assert snap.projections["accounts"].get_user({"userId": "u"}, None) == {"id": "u",
                                                                            "name": "Ann"}
    assert snaps.position_on_disk() == 1
    assert sorted(os.listdir(tmp_path)) == [FILE, FILE + ".lock"]  # no temporary file left


def test_one_writer_at_a_time_across_replicas(tmp_path):
    first, second = Snapshots(str(tmp_path)), Snapshots(str(tmp_path))
    held = os.open(os.path.join(tmp_path, FILE + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a writing replica would hold it
    try:
        assert not first.save_in_background(1, "e1", projections_with_one_user())
    finally:
        os.close(held)
    assert second.save_in_background(1, "e1", projections_with_one_user())
    assert wait_until(lambda: not second.busy(), timeout=30)
