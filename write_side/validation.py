"""Payload checks shared by the contexts' command handlers."""
from __future__ import annotations

import re
from typing import Any

_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def is_text(value: Any) -> bool:
    """A string with something other than white space in it."""
    return isinstance(value, str) and bool(value.strip())


def is_email(value: Any) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


def is_whole(value: Any) -> bool:
    """An integer (or a float with no fraction), never a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def as_payload(value: Any) -> dict:
    """A payload that is not an object counts as an empty one."""
    return value if isinstance(value, dict) else {}


def payload_stream_ids(name: str, args: Any) -> list[str]:
    """The existing stream a command names by its payload's `id`, if any: what a context
    offers the decider as `stream_ids`, so a batch loads all its streams in one go."""
    stream_id = args.get("id") if isinstance(args, dict) else None
    return [stream_id] if isinstance(stream_id, str) and stream_id else []
