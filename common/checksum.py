"""The checksum stored beside every event's bytes, and checked on every read of them.

It lives in common/ because two kinds of process compute it: the write side's engines
when they commit (write_side/store) and, on a store every process can reach (PostgreSQL),
the read sides and cqrs-tap, which read the events there themselves
(common.event_source) and may import nothing but common.

CRC-32 (zlib). It finds every change of up to 32 bits in a row (any changed byte, always)
and misses other damage once in 2**32; it costs about 0.17 us for a 240-byte event,
against 0.5 us for an 8-byte BLAKE2b, which could promise neither of the first. Neither
would stop someone who rewrites the checksum too: this guards against damage, not against
a forger (docs/storage.md).
"""
from __future__ import annotations

import zlib

SIZE = 4  # bytes of the checksum as a byte string (checksum_bytes)


def checksum(body: bytes) -> int:
    """The checksum of an event's stored bytes, as an integer (SQLite's INTEGER column)."""
    return zlib.crc32(body)


def checksum_bytes(body: bytes) -> bytes:
    """The same checksum as SIZE bytes, big-endian: what a store whose column holds bytes
    keeps (PostgreSQL's `checksum BYTEA`). One encoding, so the engine that writes it and
    the subscribers that check it agree."""
    return zlib.crc32(body).to_bytes(SIZE, "big")
