"""The wire format between the node's processes: ZeroMQ multipart messages, msgpack bodies.

Every internal message is two frames: a short ASCII kind, then one msgpack
body. The kinds and their bodies:

Router <-> back-ends (the router binds ROUTER sockets, back-ends connect DEALERs)
  hello    back-end -> router  {"role", "pid", "ready", "position"}  sent on connect
  status   back-end -> router  {"role", "pid", "ready", "position", "counters"}  ~every 0.5 s
  cmds     router -> write     [[seq, context, name, args, command_id, expected_version], ...]
  results  write -> router     [[seq, result, position], ...]
  queries  router -> read      [[seq, context, name, params, at_position], ...]
  answers  read -> router      {"position": P, "items": [[seq, result], ...]}

  A command result is {"success": true, "events": [...]} or
  {"success": false, "errors": [...]}; any result may instead be
  {"error": [code, text]} (a Maelstrom error). A query result is
  {"json": "<its data as JSON text, as json.dumps writes it>"} or {"error": [code, text]}. `position` is the store head right after that
  command; `at_position` asks the read side for the state as of that position.

Event stream (write side binds PUB; see PROTOCOL.md section 8)
  topic "<context>.<EventType>" then the event map; "_heartbeat" then {"head": N}.

Catch-up (write side binds ROUTER, subscribers connect DEALERs)
  request  {"after": N, "limit": M}
  reply    {"events": [event map, ...], "head": H}
"""
from __future__ import annotations

from typing import Any

import msgpack
import zmq

HELLO = b"hello"
STATUS = b"status"
CMDS = b"cmds"
RESULTS = b"results"
QUERIES = b"queries"
ANSWERS = b"answers"
HEARTBEAT_TOPIC = b"_heartbeat"

_packer = msgpack.Packer(use_bin_type=True)
# What pack() raises for a value msgpack cannot carry (an integer past 64 bits, a lone
# surrogate in a string, a nesting too deep).
PACK_ERRORS = (OverflowError, ValueError, TypeError, msgpack.PackException)


def pack(value: Any) -> bytes:
    return _packer.pack(value)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def splice_map(fields: dict, key: str, packed_items: list[bytes]) -> bytes:
    """Pack `fields` plus `key`: an array of already-packed items, spliced in unchanged."""
    out = [_packer.pack_map_header(len(fields) + 1)]
    for name, value in fields.items():
        out += [_packer.pack(name), _packer.pack(value)]
    out += [_packer.pack(key), _packer.pack_array_header(len(packed_items)), *packed_items]
    return b"".join(out)


def message(kind: bytes, body: Any) -> list[bytes]:
    """Frames for one internal message."""
    return [kind, pack(body)]


def context() -> zmq.Context:
    """A ZeroMQ context whose sockets reconnect quickly: peers restart, and start-up should
    not wait out the default 100 ms reconnect interval."""
    ctx = zmq.Context()
    ctx.setsockopt(zmq.RECONNECT_IVL, 10)
    ctx.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
    return ctx
