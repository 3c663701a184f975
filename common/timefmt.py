"""The node's one timestamp form: UTC, microseconds, 'Z' (e.g. 2024-01-10T00:00:00.000000Z).

Fixed width, so canonical strings sort in time order and can be bisected as text.
"""
from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_utc(moment: datetime) -> str:
    """Render an aware (or naive-as-UTC) datetime in the canonical form."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(_FORMAT)


def now_utc() -> str:
    return format_utc(datetime.now(timezone.utc))


def canonical(text: str) -> str:
    """Parse an ISO-8601 timestamp (no zone means UTC) into the canonical form.

    Raises ValueError when it does not parse.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("timestamp must be a non-empty string")
    raw = text.strip()
    if raw[-1] in "zZ":
        raw = raw[:-1] + "+00:00"
    moment = datetime.fromisoformat(raw)
    return format_utc(moment)
