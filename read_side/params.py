"""Query parameter checks: a missing or ill-typed param is error 12."""
from __future__ import annotations

from common.errors import INT64_MAX, MALFORMED, ProtocolError


def bad_param(detail: str) -> ProtocolError:
    """A query whose params are missing or ill-typed: error 12."""
    return ProtocolError(MALFORMED, detail)


def text(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str):
        raise bad_param(f"param {key} must be a string")
    return value


def _whole(params: dict, key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_param(f"param {key} must be an integer from {low} to {high}")
    return value


def paging(params: dict) -> tuple[int, int]:
    """(offset, limit) from optional `page` (from 1) and `limit` (1..1000, default 10)."""
    page = _whole(params, "page", 1, 1, INT64_MAX)
    limit = _whole(params, "limit", 10, 1, 1000)
    return (page - 1) * limit, limit

