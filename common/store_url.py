"""Store URLs: which event store the write side opens, named in one string.

  sqlite:////abs/path/events.sqlite3   a SQLite file at an absolute path (four slashes,
                                       as SQLAlchemy writes it)
  sqlite:///relative/events.sqlite3    a SQLite file relative to the working folder
  sqlite://  or  sqlite:///:memory:    a SQLite store in memory (gone when the process ends)
  postgresql://USER@HOST:PORT/DBNAME   a PostgreSQL database (postgres:// too), as libpq
                                       reads the URL: a password may be in it, or come from
                                       PGPASSWORD or ~/.pgpass; query parameters
                                       (?sslmode=require, ...) are libpq's

Pure stdlib, so the launcher can check a URL before any process starts; the write side
turns a parsed URL into an engine (write_side.store.open_store).

A URL may hold a password, so what is logged or shown is `StoreURL.redacted` (also its
str()): the URL without its password and query string. Only the engine that connects
reads `text`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

# The schemes this node can open. A new engine adds its word here and a branch in parse().
SCHEMES = ("sqlite", "postgresql")
# Other spellings of a scheme, as the URL's own library accepts them (libpq: postgres://).
ALIASES = {"postgres": "postgresql"}
MEMORY = ":memory:"
STORE_FILE = "events.sqlite3"  # the store's file name inside a data or runtime folder


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    path: str  # sqlite: a file path (absolute or relative) or MEMORY; postgresql: the URL
    text: str  # the URL as it was written (with any password: never log it)

    @property
    def redacted(self) -> str:
        """The URL as it may be logged or shown in an error: without a password."""
        return redact(self.text) if self.scheme == "postgresql" else self.text

    def __str__(self) -> str:
        # str() is what a log line or an f-string takes: never the password.
        return self.redacted


def parse(url: str) -> StoreURL:
    """The parts of a store URL; ValueError (naming the known schemes) when it is unusable."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise _error(url, "not a URL (expected <scheme>://...)")
    scheme = ALIASES.get(scheme, scheme)
    if scheme not in SCHEMES:
        raise _error(url, f"unknown scheme {scheme!r}")
    if scheme == "postgresql":
        return _parse_postgresql(url)
    return _parse_sqlite(url, rest)


def redact(url: str) -> str:
    """A database URL without what may be secret: scheme, user, hosts and database only.
    The password goes (in the user part, or as ?password= in the query, which is left
    out whole: libpq takes any setting there)."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return f"{parts.scheme}://{user}{at}{hosts}{parts.path}"


def _parse_postgresql(url: str) -> StoreURL:
    """Checked only as far as a mistake would otherwise surface late: libpq reads the rest
    (and its errors come back when the write side connects)."""
    parts = urlsplit(url)
    if parts.fragment or "#" in url:
        raise _error(url, "a PostgreSQL URL has no fragment (#...)")
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):  # libpq takes a list of host:port for failover
        port = host.rpartition("]")[2].partition(":")[2] if host.startswith("[") else \
            host.partition(":")[2]
        if port and not port.isdigit():
            raise _error(url, f"port {port!r} is not a number")
    if parts.path.count("/") > 1:
        raise _error(url, "the path is one database name (postgresql://USER@HOST:PORT/DBNAME)")
    return StoreURL("postgresql", url, url)


def _parse_sqlite(url: str, rest: str) -> StoreURL:
    if rest == "":
        return StoreURL("sqlite", MEMORY, url)
    if not rest.startswith("/"):
        # sqlite://host/... : SQLite has no server, so a host is a slash too few.
        raise _error(url, "a SQLite URL has no host: use sqlite:////absolute/path or "
                          "sqlite:///relative/path")
    path = rest[1:]
    if path in ("", "/") or path.endswith("/"):
        raise _error(url, "no file name after sqlite:///")
    if "?" in path or "#" in path:
        # SQLAlchemy would read these as options; silently taking them as part of the
        # file name would open a store nobody meant.
        raise _error(url, "query strings and fragments are not supported")
    return StoreURL("sqlite", path, url)


def _error(url: str, why: str) -> ValueError:
    # Usage errors are printed and logged: a URL that could hold a password is redacted.
    scheme = url.partition("://")[0]
    shown = redact(url) if ALIASES.get(scheme, scheme) == "postgresql" else url
    return ValueError(f"bad store URL {shown!r}: {why}; known schemes: {', '.join(SCHEMES)}")


def sqlite_file(path: str) -> StoreURL:
    """The URL of a SQLite file (sqlite:////abs/... or sqlite:///rel/...). Built, not parsed:
    any folder name that worked as --data-dir keeps working, even one with a '?' in it."""
    return StoreURL("sqlite", path, f"sqlite:///{path}")


def absolute(url: StoreURL) -> StoreURL:
    """The same store named so that it means the same from any working folder: a
    relative file path made absolute (a process started elsewhere must find it)."""
    if url.scheme == "sqlite" and url.path != MEMORY and not os.path.isabs(url.path):
        return sqlite_file(os.path.abspath(url.path))
    return url


def resolve(store: str, data_dir: str, runtime_dir: str) -> StoreURL:
    """The store the write side opens: `store` if given; else the data folder's store file;
    else the runtime folder's (removed with it at exit), or the working folder's."""
    if store:
        return parse(store)
    return sqlite_file(os.path.join(data_dir or runtime_dir or ".", STORE_FILE))
