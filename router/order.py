"""Holds replies until every earlier request has its reply, so output keeps input order.

A reply may be held as a function that renders it when its turn comes (stats, whose
figures must be those of the moment the reply goes out); it is called with the
number of replies taken before it in the same batch.
"""
from __future__ import annotations

from typing import Callable, Union

Held = Union[bytes, Callable[[int], bytes]]


class OrderBuffer:
    def __init__(self) -> None:
        self._next = 0
        self._held: dict[int, Held] = {}

    def put(self, seq: int, line: Held) -> None:
        self._held[seq] = line

    def take(self) -> list[bytes]:
        """Every reply that can go out now, in order."""
        out = []
        held = self._held
        while self._next in held:
            line = held.pop(self._next)
            out.append(line if isinstance(line, bytes) else line(len(out)))
            self._next += 1
        return out

    def __len__(self) -> int:
        return len(self._held)
