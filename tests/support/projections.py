"""Read-side projections filled by hand, for tests of what is built on them (snapshots)."""
from __future__ import annotations

from read_side.contexts import load_all


def projections_with_one_user() -> dict:
    """Every context's projection, with one accounts user `u` named Ann at position 1."""
    projections = load_all()
    projections["accounts"].apply({"position": 1, "context": "accounts", "stream_id": "u",
                                   "version": 1, "type": "UserCreated", "data": {"name": "Ann"},
                                   "recorded_at": "2024-01-01T00:00:00.000000Z",
                                   "event_id": "e1"})
    return projections
