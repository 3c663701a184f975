"""Random UUIDs: canonical version 4 strings, never repeated (across a fork too: that test
starts a process, so it is in tests/e2e/test_forked_ids.py)."""
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
