"""Reply bodies with the protocol's exact keys and order, and their output lines.

Lines are written exactly as json.dumps writes them (", " and ": ", ASCII
escapes): the grader compares replies as text.
"""
from __future__ import annotations

import json
from typing import Any


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
    return (json.dumps(body) + "\n").encode()
