"""Holds replies until every earlier request has its reply, so output keeps input order."""
from __future__ import annotations


class OrderBuffer:
    def __init__(self) -> None:
        self._next = 0
        self._held: dict[int, bytes] = {}

    def put(self, seq: int, line: bytes) -> None:
        self._held[seq] = line

    def take(self) -> list[bytes]:
        """Every reply that can go out now, in order."""
        out = []
        held = self._held
        while self._next in held:
            out.append(held.pop(self._next))
            self._next += 1
        return out

    def __len__(self) -> int:
        return len(self._held)
