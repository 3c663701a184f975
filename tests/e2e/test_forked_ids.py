"""Random UUIDs across a fork: the child draws ids of its own, not the rest of the parent's
pool. (It starts a process, so it is not a unit test; see tests/unit/test_ids.py.)"""
import os

from common.ids import new_uuid


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
