"""Aggregates: state folded from a stream's events, with small check_* invariants."""
from __future__ import annotations


class Rejected(Exception):
    """A command that breaks a rule: nothing is stored, the errors are the reply."""

    def __init__(self, *errors: str) -> None:
        super().__init__(*errors)
        self.errors = list(errors)


class Aggregate:
    """One stream's state. Subclasses define on_<EventType>(data) and may claim unique values."""

    def __init__(self, stream_id: str) -> None:
        self.id = stream_id
        self.version = 0
        self.last_recorded_at = ""

    @property
    def exists(self) -> bool:
        return self.version > 0

    def apply(self, type_: str, data: dict, recorded_at: str = "") -> None:
        getattr(self, "on_" + type_)(data)
        self.version += 1
        self.last_recorded_at = max(self.last_recorded_at, recorded_at)

    def claims(self) -> set[tuple[str, str]]:
        """(kind, value) pairs this stream holds exclusively, such as a normalised email."""
        return set()

    def check_expected_version(self, expected: int | None) -> None:
        if expected is not None and expected != self.version:
            raise Rejected(f"Expected version {expected}, got {self.version}")
