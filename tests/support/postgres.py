"""A throw-away PostgreSQL cluster for the tests: bench/postgres.py's Cluster (one definition,
for the benchmark and the tests), with pytest's answer where none can be had.

Where no server can be had the tests skip with the reason, unless CQRS_REQUIRE_POSTGRES=1
(set by .ci/run), where a server that cannot start fails the run.
"""
from __future__ import annotations

import os

import pytest

from bench import postgres
from bench.postgres import server_bin  # noqa: F401  (for tests that ask what is installed)

REQUIRE = os.environ.get("CQRS_REQUIRE_POSTGRES", "") == "1"  # read by the tests only


def unavailable(why: str) -> None:
    """Skip, or fail where a server is required."""
    if REQUIRE:
        pytest.fail(f"PostgreSQL is required (CQRS_REQUIRE_POSTGRES=1) but {why}")
    pytest.skip(f"no PostgreSQL server: {why}")


class Cluster(postgres.Cluster):
    """One running server. `url(db)` names a database on it for the node's --store."""

    @classmethod
    def start(cls, port: int | None = None) -> "Cluster":
        try:
            return super().start(port)  # type: ignore[return-value]
        except postgres.Unavailable as exc:
            unavailable(str(exc))
            raise  # not reached: unavailable() skips or fails
