"""Splits a byte stream into lines, with a size limit that never buffers a huge line whole."""
from __future__ import annotations

from dataclasses import dataclass

_KEEP = 64 * 1024  # of an oversized line, the head and tail kept to look for its msg_id


@dataclass
class Oversized:
    """A line over the limit: only its two ends are kept."""
    head: bytes
    tail: bytes
    size: int


class LineSplitter:
    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._partial = b""
        self._big: Oversized | None = None

    def feed(self, chunk: bytes) -> list:
        """Complete lines (bytes, or Oversized) found in the stream so far; blank lines dropped."""
        out: list = []
        if self._big is not None:
            end = chunk.find(b"\n")
            if end < 0:
                self._grow(chunk)
                return out
            self._grow(chunk[:end])
            out.append(self._big)
            self._big = None
            chunk = chunk[end + 1:]
        lines = (self._partial + chunk).split(b"\n") if self._partial else chunk.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._emit(line, out)
        if len(self._partial) > self.max_line:
            data, self._partial = self._partial, b""
            self._big = Oversized(head=data[:_KEEP], tail=data[-_KEEP:], size=len(data))
        return out

    def finish(self) -> list:
        """At end of input: the last line, if it had no newline."""
        out: list = []
        if self._big is not None:
            out.append(self._big)
            self._big = None
        self._emit(self._partial, out)
        self._partial = b""
        return out

    def _grow(self, piece: bytes) -> None:
        self._big.size += len(piece)
        self._big.tail = (self._big.tail + piece)[-_KEEP:]

    def _emit(self, line: bytes, out: list) -> None:
        if len(line) > self.max_line:
            out.append(Oversized(head=line[:_KEEP], tail=line[-_KEEP:], size=len(line)))
        elif line and not line.isspace():
            out.append(line)
