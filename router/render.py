"""Reply bodies with the protocol's exact keys and order, and their output lines.

Lines are written exactly as json.dumps writes them (", " and ": ", ASCII
escapes): the grader compares replies as text.
"""
from __future__ import annotations

import json
from json import encoder as _json_encoder
from typing import Any


def _default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# json.dumps builds a fresh C encoder on every call; with the same settings as its
# defaults, one kept encoder writes the same text in about half the time. (Bodies come
# from JSON and msgpack, so they hold no cycles and need no cycle check.)
_c_encoder = _json_encoder.c_make_encoder
if _c_encoder is not None:
    _encode_chunks = _c_encoder(None, _default, _json_encoder.encode_basestring_ascii, None,
                                ": ", ", ", False, False, True)

    def dumps(body: Any) -> str:
        """json.dumps(body), faster."""
        return "".join(_encode_chunks(body, 0))
else:  # an interpreter without the C accelerator
    dumps = json.dumps


def error(msg_id: Any, code: int, text: str) -> dict:
    return {"type": "error", "in_reply_to": msg_id, "code": code, "text": text}


def init_ok(msg_id: Any) -> dict:
    return {"type": "init_ok", "in_reply_to": msg_id}


def stats_result(msg_id: Any, data: dict) -> dict:
    return {"type": "stats_result", "in_reply_to": msg_id, "data": data}


def command_result(msg_id: Any, result: dict) -> dict:
    if "error" in result:
        return error(msg_id, *result["error"])
    if result["success"]:
        return {"type": "command_result", "in_reply_to": msg_id, "success": True,
                "events": result["events"]}
    return {"type": "command_result", "in_reply_to": msg_id, "success": False,
            "errors": result["errors"]}


def query_result(msg_id: Any, result: dict) -> dict:
    if "error" in result:
        return error(msg_id, *result["error"])
    return {"type": "query_result", "in_reply_to": msg_id, "data": result["data"]}


def line(body: dict, envelope: bool = False, src: Any = None, dest: Any = None) -> bytes:
    """One output line; with envelope, the reply goes back from the request's dest to its src."""
    if envelope:
        body = {"src": dest, "dest": src, "body": body}
    return (dumps(body) + "\n").encode()
