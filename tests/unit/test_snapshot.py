"""Read-side snapshot files: taken up only when sound, of this format and of these contexts,
and checked before anything in them is unpickled; leftovers of dead writers removed.
(Writing one in the background forks a child: those tests are in
tests/e2e/test_snapshot_writer.py; here Snapshots.write runs in the test's process.)"""
from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import random
import struct
from pathlib import Path

import pytest

from common.contexts import CONTEXTS, register
from read_side.snapshot import _HEADER, FILE, MAGIC, Snapshots
from tests.support.projections import projections_with_one_user

UNPICKLED: list[str] = []  # every Tripwire unpickled, by its value


def tripped(value: str) -> str:
    UNPICKLED.append(value)
    return value


class Tripwire(str):
    """A str that, once unpickled, says so: it pickles as a call of tripped()."""

    def __reduce__(self) -> tuple:
        return tripped, (str(self),)


@pytest.fixture(autouse=True)
def untripped() -> None:
    UNPICKLED.clear()


def snapshot_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "snapshot" in r.getMessage()]


def good_file(folder: Path) -> bytes:
    """Write a sound snapshot at position 1 whose event id trips when unpickled; its bytes."""
    Snapshots(str(folder)).write(1, Tripwire("e1"), projections_with_one_user())
    return (folder / FILE).read_bytes()


def test_a_sound_snapshot_is_taken_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good_file(tmp_path)
    snaps = Snapshots(str(tmp_path))
    assert snaps.position_on_disk() == 1
    snap = snaps.load()
    assert (snap.position, snap.event_id, UNPICKLED) == (1, "e1", ["e1"])
    assert snap.projections["accounts"].get_user({"userId": "u"}, None) == {"id": "u",
                                                                            "name": "Ann"}
    assert snapshot_records(caplog) == []
    assert sorted(os.listdir(tmp_path)) == [FILE]  # no temporary file left


def changed_places(size: int) -> list[int]:
    """Every byte of the header, and bytes of the body: its first, its last, some between."""
    rng = random.Random(5)
    body = range(_HEADER.size, size)
    return [*range(_HEADER.size), body[0], body[-1], *rng.sample(body, 40)]


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xff])
def test_a_changed_byte_anywhere_is_refused_before_unpickling(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, flip: int) -> None:
    good = good_file(tmp_path)
    for place in changed_places(len(good)):
        caplog.clear()
        changed = bytearray(good)
        changed[place] ^= flip
        (tmp_path / FILE).write_bytes(changed)
        snaps = Snapshots(str(tmp_path))
        assert snaps.load() is None, place
        assert UNPICKLED == [], place
        records = snapshot_records(caplog)
        assert [r.levelno for r in records] == [logging.WARNING], place
        assert snaps.position_on_disk() == 0, place  # refused: a new one replaces it at once


@pytest.mark.parametrize("cut", [1, _HEADER.size, _HEADER.size + 1, -1])
def test_a_truncated_or_lengthened_file_is_refused(tmp_path: Path, cut: int) -> None:
    good = good_file(tmp_path)
    for damaged in (good[:cut], good + b"\x00"):
        (tmp_path / FILE).write_bytes(damaged)
        assert Snapshots(str(tmp_path)).load() is None
    assert UNPICKLED == []


def test_a_format_1_snapshot_is_not_taken_up_and_the_next_is_format_2(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Written as format 1 wrote it: `>8sIQ` MAGIC, 1, position, then the pickle."""
    body = {"event_id": Tripwire("e1"), "projections": projections_with_one_user()}
    (tmp_path / FILE).write_bytes(struct.pack(">8sIQ", MAGIC, 1, 1) + pickle.dumps(body, 5))
    snaps = Snapshots(str(tmp_path))
    assert snaps.position_on_disk() == 0  # so the loop writes a new one as soon as one is due
    caplog.set_level(logging.INFO)
    assert snaps.load() is None and UNPICKLED == []
    [record] = snapshot_records(caplog)
    assert "format 1" in record.getMessage() and record.levelno == logging.INFO
    snaps.write(1, "e1", projections_with_one_user())
    assert (tmp_path / FILE).read_bytes()[8:12] == struct.pack(">I", 2)
    assert snaps.position_on_disk() == 1 and snaps.load().event_id == "e1"


def other_registry(extra_query: str) -> tuple:
    """This node's contexts, but `directory` answers one query more."""
    directory = dataclasses.replace(CONTEXTS[0],
                                    queries=CONTEXTS[0].queries + (extra_query,))
    return register(directory, *CONTEXTS[1:])


def test_a_snapshot_of_other_contexts_is_refused_before_unpickling(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # As if written before the query FindUsersByName was added to this node's registry...
    Snapshots(str(tmp_path)).write(1, Tripwire("e1"), projections_with_one_user())
    newer = Snapshots(str(tmp_path), other_registry("FindUsersByName"))
    assert newer.position_on_disk() == 0
    assert newer.load() is None and UNPICKLED == []
    [record] = snapshot_records(caplog)
    assert "other contexts" in record.getMessage() and record.levelno == logging.WARNING
    # ... and the other way round.
    newer.write(1, Tripwire("e1"), projections_with_one_user())
    assert Snapshots(str(tmp_path)).load() is None and UNPICKLED == []
    # Under the newer signature it is unpickled, but its projections do not answer the new
    # query: what was unpickled is checked too.
    assert newer.load() is None and UNPICKLED == ["e1"]


def test_projections_unlike_this_nodes_are_refused_after_unpickling(tmp_path: Path) -> None:
    """Sound, same format and contexts, but not what this code writes (a context missing,
    or a query table unlike the registry's): refused all the same."""
    projections = projections_with_one_user()
    del projections["directory"]
    Snapshots(str(tmp_path)).write(1, "e1", projections)
    assert Snapshots(str(tmp_path)).load() is None
    projections = projections_with_one_user()
    del projections["accounts"].queries["GetUserHistory"]
    Snapshots(str(tmp_path)).write(1, "e1", projections)
    assert Snapshots(str(tmp_path)).load() is None


def test_a_foreign_file_is_ignored(tmp_path: Path) -> None:
    snaps = Snapshots(str(tmp_path))
    (tmp_path / FILE).write_bytes(b"something else entirely")
    assert snaps.load() is None and snaps.position_on_disk() == 0


def test_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    snaps = Snapshots(str(tmp_path))
    dead = tmp_path / f"{FILE}.tmp.{2 ** 22 + 12345}"  # beyond pid_max: no such process
    live = tmp_path / f"{FILE}.tmp.{os.getpid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    snaps.remove_orphans()
    assert not dead.exists() and live.exists()


def test_a_folder_that_is_not_there_means_no_snapshots(tmp_path: Path) -> None:
    snaps = Snapshots(str(tmp_path / "missing"))
    assert not snaps.save_in_background(1, "e1", projections_with_one_user())
    assert snaps.load() is None
