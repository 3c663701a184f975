"""Reply bodies with the protocol's exact keys and order, and their output lines.

Lines are written exactly as json.dumps writes them (", " and ": ", ASCII
escapes): the grader compares replies as text. A query's data arrives already
rendered by the read side (which has cores to spare, and scales out), and is
spliced into its line.
"""
from __future__ import annotations

from typing import Any

from common import errors
from common.jsontext import Rendered, dumps


error = errors.reply  # the error reply body: one definition, in common.errors


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


def query_result(msg_id: Any, result: dict) -> dict | Rendered:
    """The reply to a query whose result holds its data as JSON text under "json"."""
    if "error" in result:
        return error(msg_id, *result["error"])
    return Rendered(f'{{"type": "query_result", "in_reply_to": {_id_text(msg_id)}, '
                    f'"data": {result["json"]}}}')


def _id_text(msg_id: Any) -> str:
    """A msg_id as JSON text; an integer (the usual case) without the encoder."""
    return str(msg_id) if type(msg_id) is int else dumps(msg_id)


def line(body: dict | Rendered, envelope: bool = False, src: Any = None,
         dest: Any = None) -> bytes:
    """One output line; with envelope, the reply goes back from the request's dest to its src."""
    text = body if isinstance(body, Rendered) else dumps(body)
    if envelope:
        text = f'{{"src": {dumps(dest)}, "dest": {dumps(src)}, "body": {text}}}'
    return (text + "\n").encode()
