"""The node's one timestamp form: UTC, microseconds, 'Z' (e.g. 2024-01-10T00:00:00.000000Z).

Fixed width, so canonical strings sort in time order and can be bisected as text.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

_TICK = timedelta(microseconds=1)  # the form's resolution


def format_utc(moment: datetime) -> str:
    """Render an aware (or naive-as-UTC) datetime in the canonical form.

    Raises OverflowError when the moment falls outside years 1 to 9999 in UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    m = moment.astimezone(timezone.utc)
    # Not strftime: its %Y does not pad years before 1000 on every platform, and the
    # text must keep its fixed width to sort in time order.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond:06d}Z")


def now_utc() -> str:
    return format_utc(datetime.now(timezone.utc))


def canonical(text: str) -> str:
    """Parse an ISO-8601 timestamp (no zone means UTC) into the canonical form.

    Raises ValueError when it does not parse.
    """
    moment = _parse(text)
    try:
        return format_utc(moment)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError(f"timestamp {text!r} is out of range") from exc


def after(text: str) -> str:
    """The canonical timestamp one microsecond after `text` (any form canonical() reads):
    the least time that is later, for stamping an event after one whose time the clock
    has not passed yet. The last instant of year 9999 has no later one: it is returned
    as it is. Raises ValueError when `text` does not parse."""
    moment = _parse(text)
    try:
        return format_utc(moment + _TICK)
    except OverflowError:
        return canonical(text)  # itself, or ValueError if it is out of range in UTC


def _parse(text: str) -> datetime:
    if not isinstance(text, str) or not text.strip():
        raise ValueError("timestamp must be a non-empty string")
    raw = text.strip()
    if raw[-1] in "zZ":
        raw = raw[:-1] + "+00:00"
    return datetime.fromisoformat(raw)
