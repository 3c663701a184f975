"""Store URLs: which event store the write side opens, named in one string.

  sqlite:////abs/path/events.sqlite3   a SQLite file at an absolute path (four slashes,
                                       as SQLAlchemy writes it)
  sqlite:///relative/events.sqlite3    a SQLite file relative to the working folder
  sqlite://  or  sqlite:///:memory:    a SQLite store in memory (gone when the process ends)

Pure stdlib, so the launcher can check a URL before any process starts; the write side
turns a parsed URL into an engine (write_side.store.open_store).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

# The schemes this node can open. A new engine adds its word here and a branch in parse().
SCHEMES = ("sqlite",)
MEMORY = ":memory:"
STORE_FILE = "events.sqlite3"  # the store's file name inside a data or runtime folder


@dataclass(frozen=True)
class StoreURL:
    scheme: str
    path: str  # sqlite: a file path (absolute or relative) or MEMORY
    text: str  # the URL as it was written

    def __str__(self) -> str:
        return self.text


def parse(url: str) -> StoreURL:
    """The parts of a store URL; ValueError (naming the known schemes) when it is unusable."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise _error(url, "not a URL (expected <scheme>://...)")
    if scheme not in SCHEMES:
        raise _error(url, f"unknown scheme {scheme!r}")
    return _parse_sqlite(url, rest)


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
    return ValueError(f"bad store URL {url!r}: {why}; known schemes: {', '.join(SCHEMES)}")


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
