"""Random UUIDs: canonical version 4 strings, never repeated, not even across a fork."""
import os
import uuid

from common.ids import new_uuid


def test_ids_are_canonical_version_4_uuids():
    for _ in range(3000):  # more than one pool's worth
        text = new_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat():
    ids = [new_uuid() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_ids_of_its_own():
    new_uuid()  # the parent now holds a partly used pool
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, new_uuid().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.waitpid(pid, 0)
    assert child_id != new_uuid()
