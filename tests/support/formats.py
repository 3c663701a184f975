"""The text forms the node writes: random ids and the one time form of recorded events."""
from __future__ import annotations

import re
from datetime import datetime, timezone

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # lower case
CANONICAL_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")  # UTC, microseconds
TIME_FORM = "%Y-%m-%dT%H:%M:%S.%fZ"  # CANONICAL_TIME for strftime / strptime


def parse_time(text: str) -> datetime:
    """A time in the canonical form, as an aware UTC datetime."""
    return datetime.strptime(text, TIME_FORM).replace(tzinfo=timezone.utc)
