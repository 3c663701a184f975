"""A data folder holding N events, built once per harness run by driving a node, for replays.

The store is written by the node under test itself, through its stdin like any client:
a store's format belongs to the node that wrote it. Half the events are creations and
half renames of existing users, in both contexts, so a replay folds real histories.
"""
from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import messages
from bench.driver import NodeError, NodeProcess, NodeSpec, remove_data
from bench.verify import ReplyMismatch, body, verify

WINDOW = 5_000        # unanswered requests at most while building (see write_windowed)
CHUNK = WINDOW // 4   # requests per write
MIN_RATE = 1_000.0    # requests/s a node must manage where only the end state is measured
MIN_EVENTS = 8        # two users and a rename of each, in both contexts


@dataclass(frozen=True)
class Store:
    """A built data folder, its number of events, and the last user renamed in each context."""

    folder: str
    events: int
    last_bus: tuple[str, str]      # (user id, final name) in the directory context
    last_account: tuple[str, str]  # (user id, final name) in the accounts context
    databases: Any = None          # the node's bench.postgres.Databases, if its store is there

    def checks(self, first_id: int) -> list[messages.Pair]:
        """Queries whose answers prove a node replayed up to the last event of each context."""
        return [messages.bus_get(first_id, *self.last_bus),
                messages.env_get(first_id + 1, *self.last_account)]


_built: dict[tuple, Store] = {}


def replay_store(spec: NodeSpec, events: int) -> Store:
    """The store of that many events for this node command, built on first use this run."""
    server = spec.databases.server if spec.databases is not None else None
    key = (tuple(spec.argv), tuple(sorted(spec.env.items())), server, events)
    if key not in _built:
        folder = tempfile.mkdtemp(prefix="bench-store-")
        atexit.register(remove_data, spec, folder)  # kept for the whole harness run
        print(f"  building a store of {events:,} events with {spec.name} (once per run)...",
              file=sys.stderr, flush=True)
        started = time.perf_counter()
        _built[key] = build_store(spec, events, folder)
        print(f"  store built in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
    return _built[key]


def copy_store(store: Store, snapshots: bool = True) -> str:
    """A fresh copy of the store's folder, so every run replays the same untouched data;
    without the node's snapshot files (any name with "snapshot") if snapshots is False."""
    folder = tempfile.mkdtemp(prefix="bench-replay-")
    ignore = None if snapshots else shutil.ignore_patterns("*snapshot*")
    shutil.copytree(store.folder, folder, dirs_exist_ok=True, ignore=ignore)
    if store.databases is not None:  # the events are in the database: it is copied too
        store.databases.copied(folder)
    return folder


def _plan(events: int) -> tuple[int, int]:
    """(users per context, account renames): a quarter each of bus creations, bus renames
    and account creations, the rest account renames, so the very last event is one of them."""
    if events < MIN_EVENTS:
        raise ValueError(f"a replay store needs at least {MIN_EVENTS} events, not {events}")
    users = events // 4
    return users, events - 3 * users


def build_store(spec: NodeSpec, events: int, folder: str) -> Store:
    """Fill folder with exactly `events` events (plus sample data) by sending commands."""
    users, account_renames = _plan(events)
    msg_id = 1
    creates: list[messages.Pair] = []
    for i in range(users):
        creates.append(messages.bus_create(msg_id, i))
        creates.append(messages.env_create(msg_id + 1, f"acct-{i}", f"Account {i}"))
        msg_id += 2
    node = NodeProcess(spec, data_dir=folder, keep_data=True)
    try:
        replies = _send(node, creates)
        bus_ids = [_created_id(line) for line in replies[::2]]
        renames, last_bus, last_account = _renames(msg_id, bus_ids, account_renames)
        _send(node, renames)
    except BaseException:
        node.stop(kill=True)
        raise
    status = node.stop()
    if status != 0:
        raise NodeError(f"node exited with status {status} after building the store\n"
                        f"{node.stderr_tail()}")
    return Store(folder, events, last_bus, last_account, spec.databases)


def _renames(msg_id: int, bus_ids: list[str], count: int
             ) -> tuple[list[messages.Pair], tuple[str, str], tuple[str, str]]:
    """Interleaved renames: each bus user once, then `count` account renames round-robin."""
    users = len(bus_ids)
    pairs: list[messages.Pair] = []
    last_bus = last_account = ("", "")
    for i in range(max(users, count)):
        if i < users:
            last_bus = (bus_ids[i], f"Renamed User {i}")
            pairs.append(messages.bus_rename(msg_id, *last_bus))
            msg_id += 1
        if i < count:
            last_account = (f"acct-{i % users}", f"Account {i % users} rename {i // users + 1}")
            pairs.append(messages.env_rename(msg_id, *last_account))
            msg_id += 1
    return pairs, last_bus, last_account


def _send(node: NodeProcess, pairs: list[messages.Pair]) -> list[bytes]:
    """Send the commands windowed, insist every one succeeded, return the reply lines."""
    requests, expected = messages.split(pairs)
    deadline = time.perf_counter() + 60 + len(requests) / MIN_RATE
    lines, _, _ = node.exchange(messages.chunks(requests, CHUNK), deadline, WINDOW)
    if len(lines) < len(requests):
        raise NodeError(f"building the replay store: {len(lines)} of {len(requests)} replies "
                        f"in time")
    verify(expected, lines)
    return lines


def _created_id(line: bytes) -> str:
    """The node-chosen id in a bus CreateUser reply."""
    try:
        return body(line)["events"][0]["payload"]["id"]
    except (KeyError, IndexError, TypeError):
        raise ReplyMismatch(f"no user id in {line[:200]!r}") from None
