"""Read-side snapshots: written whole by a child, found again, refused when not sound."""
import os

from read_side.contexts import load_all
from read_side.snapshot import FILE, Snapshots
from tests.support.nodeproc import wait_until


def projections_with_one_user():
    projections = load_all()
    projections["accounts"].apply({"position": 1, "context": "accounts", "stream_id": "u",
                                   "version": 1, "type": "UserCreated", "data": {"name": "Ann"},
                                   "recorded_at": "2024-01-01T00:00:00.000000Z",
                                   "event_id": "e1"})
    return projections


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
    import fcntl
    held = os.open(os.path.join(tmp_path, FILE + ".lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # as a writing replica would hold it
    try:
        assert not first.save_in_background(1, "e1", projections_with_one_user())
    finally:
        os.close(held)
    assert second.save_in_background(1, "e1", projections_with_one_user())
    assert wait_until(lambda: not second.busy(), timeout=30)


def test_a_damaged_or_foreign_file_is_ignored(tmp_path):
    snaps = Snapshots(str(tmp_path))
    (tmp_path / FILE).write_bytes(b"CQRSSNAP\x00\x00\x00\x01" + b"\x00" * 7 + b"\x05garbage")
    assert snaps.load() is None
    (tmp_path / FILE).write_bytes(b"something else entirely")
    assert snaps.load() is None and snaps.position_on_disk() == 0


def test_temporary_files_of_dead_writers_are_removed(tmp_path):
    snaps = Snapshots(str(tmp_path))
    dead = tmp_path / f"{FILE}.tmp.{2 ** 22 + 12345}"  # beyond pid_max: no such process
    live = tmp_path / f"{FILE}.tmp.{os.getpid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    snaps.remove_orphans()
    assert not dead.exists() and live.exists()


def test_a_folder_that_is_not_there_means_no_snapshots(tmp_path):
    snaps = Snapshots(str(tmp_path / "missing"))
    assert not snaps.save_in_background(1, "e1", projections_with_one_user())
    assert snaps.load() is None
