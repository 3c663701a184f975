"""Read sides and taps fed from the database (issue 15 item 4), against a real PostgreSQL.

First without the node's engine: the agreed `events` table made by hand in a fresh
database and written as the engine will write it (positions from a counter row locked
until the commit), by two writer threads on two connections, each publishing what it
committed on a PUB socket of its own. A Subscription on both streams, with the database
as its catch-up source, must apply every position once and in order, although one
writer's events arrive after the other's later ones and some are never published at all;
a replay from the database alone must give the same; and a damaged row must stop it.

Then, once the PostgreSQL engine is there (write_side/store/postgres.py), through
run_node.py: the tap prints every event once in position order, and the read side's
answers equal a fold of the store.
"""
from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest
import zmq

from common import wire
from common.catchup_sources import DatabaseSource, StoreDamaged
from common.checksum import checksum_bytes
from common.subscription import Subscription
from tests.support.nodeproc import ROOT, Node, role_pid
from tests.support.ports import free_ports

psycopg = pytest.importorskip("psycopg")

WAIT = 60.0  # seconds at most for what should happen much sooner (a busy 2-core host)

SCHEMA = """
CREATE TABLE events (
    position  BIGINT PRIMARY KEY,
    context   TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    body      BYTEA NOT NULL,
    checksum  BYTEA NOT NULL,
    UNIQUE (context, stream_id, version)
);
-- The counter row: its name is the engine's business, the subscribers read only `events`.
CREATE TABLE positions (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), head BIGINT NOT NULL);
INSERT INTO positions (head) VALUES (0);
"""


def make_store(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)


def event_map(position: int, stream_id: str, version: int) -> dict:
    """An event map in PROTOCOL.md's key order, as the engine packs it."""
    return {"position": position, "context": "accounts", "stream_id": stream_id,
            "version": version, "type": "UserRenamed" if version > 1 else "UserCreated",
            "data": {"name": f"{stream_id}-v{version}"},
            "recorded_at": "2024-01-01T00:00:00.000000Z", "event_id": f"ev-{position}"}


def commit(conn, streams: list[tuple[str, int]]) -> list[tuple[dict, bytes]]:
    """One transaction, as the engine commits: take positions from the counter row (its lock
    is held until the commit, so commits end in position order), insert the events with the
    checksums of their packed bytes. The events and their bytes, as stored."""
    with conn.transaction():
        head = conn.execute("UPDATE positions SET head = head + %s RETURNING head",
                            (len(streams),)).fetchone()[0]
        stored = []
        for position, (sid, version) in enumerate(streams, start=head - len(streams) + 1):
            event = event_map(position, sid, version)
            stored.append((event, wire.pack(event)))
        conn.cursor().executemany(
            "INSERT INTO events (position, context, stream_id, version, body, checksum) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(e["position"], e["context"], e["stream_id"], e["version"], body,
              checksum_bytes(body)) for e, body in stored])
    return stored


def stored_events(url: str) -> list[dict]:
    with psycopg.connect(url) as conn:
        return [wire.unpack(body) for (body,) in
                conn.execute("SELECT body FROM events ORDER BY position")]


# ---- two writers, two streams, one database ---------------------------------------------------

@dataclass
class Writers:
    """Two writer threads on one database, each with its connection and its XPUB socket.

    Writer a holds back every third batch's publish until writer b has published a later
    position (a slow writer's events arrive after a faster one's); each drops about one
    publish in twelve (lost on the way: only the database has them)."""
    url: str
    ctx: zmq.Context
    batches: int = 60
    endpoints: list[str] = field(default_factory=list)
    published: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})
    done: dict[str, bool] = field(default_factory=lambda: {"a": False, "b": False})
    held_back: int = 0
    lost: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.endpoints = [f"tcp://127.0.0.1:{port}" for port in free_ports(2)]
        self.cond = threading.Condition()
        self.ready = [threading.Event(), threading.Event()]
        self.go = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(name, i), daemon=True)
                        for i, name in enumerate("ab")]
        for thread in self.threads:
            thread.start()

    def _run(self, name: str, index: int) -> None:
        try:
            self._write(name, index)
        except BaseException as exc:  # reported by join()
            self.errors.append(exc)
        finally:
            with self.cond:
                self.done[name] = True
                self.cond.notify_all()

    def _write(self, name: str, index: int) -> None:
        rng = random.Random(index)
        pub = self.ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.bind(self.endpoints[index])
        versions: dict[str, int] = {}
        try:
            # Until the subscription has reached this publisher (its subscribe message).
            while not (pub.poll(100) and pub.recv() == b"\x01"):
                pass
            self.ready[index].set()
            self.go.wait(WAIT)
            with psycopg.connect(self.url) as conn:
                for batch in range(self.batches):
                    streams = []
                    for _ in range(rng.randint(1, 4)):
                        sid = f"{name}-{rng.randrange(10)}"
                        versions[sid] = versions.get(sid, 0) + 1
                        streams.append((sid, versions[sid]))
                    stored = commit(conn, streams)
                    last = stored[-1][0]["position"]
                    if name == "a" and batch % 3 == 0:
                        with self.cond:  # until b publishes past this batch, or stops
                            self.cond.wait_for(lambda: self.published["b"] > last
                                               or self.done["b"], WAIT)
                            self.held_back += 1
                    if rng.random() < 1 / 12:
                        self.lost += len(stored)
                    else:
                        for event, body in stored:  # after the commit, as the write side
                            pub.send_multipart([b"accounts." + event["type"].encode(), body])
                    with self.cond:
                        self.published[name] = last
                        self.cond.notify_all()
                    if batch % 10 == 9:
                        pub.send_multipart(wire.heartbeat(last, ""))
                # A last heartbeat: the head, which a lost tail is found by.
                pub.send_multipart(wire.heartbeat(last, ""))
        finally:
            pub.close()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT)
        assert not self.errors, self.errors


def follow(sub: Subscription, done, timeout: float = WAIT) -> None:
    """The loop a read side runs, until done()."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not done: at {sub.position}, {sub.counters}"
        due = sub.due_in()
        if sub.socket.poll(200 if due is None else int(due * 1000) + 1):
            sub.drain()
        sub.heal_if_due()


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_two_writers_streams_merge_in_position_order_healed_from_the_database(
        postgres_store, ctx):
    url = postgres_store
    make_store(url)
    applied: list[dict] = []
    writers = Writers(url, ctx)
    sub = Subscription(ctx, writers.endpoints, DatabaseSource(url), applied.append)
    try:
        # Both publishers see the subscription before anything is written.
        deadline = time.monotonic() + WAIT
        while not all(r.is_set() for r in writers.ready):
            assert time.monotonic() < deadline, "the subscription reached no publisher"
            sub.socket.poll(50)
        assert sub.catch_up()  # an empty store: nothing, at once
        writers.go.set()
        total: list[int] = []  # the store's size, once both writers are done

        def finished() -> bool:
            if not total and all(writers.done.values()):
                total.append(len(stored_events(url)))
            return bool(total) and sub.position >= total[0]

        follow(sub, finished)
        writers.join()
        assert [e["position"] for e in applied] == list(range(1, total[0] + 1))
        assert applied == stored_events(url)  # every event as stored, once, in order
        counters = sub.counters
        # The cases this test is for all happened: events arrived ahead and waited, the
        # database filled what no stream brought.
        assert writers.held_back > 0 and writers.lost > 0, (writers.held_back, writers.lost)
        assert counters["held"] > 0 and counters["caught_up_events"] > 0, counters
        assert counters["applied"] == len(applied)
    finally:
        writers.go.set()
        sub.close()


def test_concurrent_writers_leave_no_gap_a_reader_could_see(postgres_store, ctx):
    """Two writers commit as fast as they can while a subscriber replays the database over
    and over: every page it reads is gap-free from where it asked, with no damage reported
    (a gap would raise StoreDamaged), and it ends with every position."""
    url = postgres_store
    make_store(url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            with psycopg.connect(url) as conn:
                version = 0
                while not stop.is_set() and version < 400:
                    version += 1
                    commit(conn, [(f"{name}-{version}", 1), (f"{name}-{version}", 2)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in "ab"]
    applied: list[int] = []
    sub = Subscription(ctx, [], DatabaseSource(url, chunk=7),
                       lambda e: applied.append(e["position"]))
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            assert sub.catch_up(timeout=10.0)
        for thread in threads:
            thread.join(WAIT)
        assert not errors, errors
        assert sub.catch_up(timeout=10.0)
        assert applied == list(range(1, 1601))
    finally:
        stop.set()
        sub.close()


# ---- replay from the database alone, checked ---------------------------------------------------

def filled_store(url: str, count: int = 50) -> list[dict]:
    make_store(url)
    with psycopg.connect(url) as conn:
        for first in range(0, count, 5):
            commit(conn, [(f"s-{(first + i) % 7}", (first + i) // 7 + 1) for i in range(5)])
    return stored_events(url)


def replay(url: str, ctx, chunk: int = 7) -> tuple[list[dict], Subscription]:
    applied: list[dict] = []
    sub = Subscription(ctx, [], DatabaseSource(url, chunk=chunk), applied.append)
    return applied, sub


def test_a_replay_reads_every_event_in_chunks_in_position_order(postgres_store, ctx):
    store = filled_store(postgres_store)
    applied, sub = replay(postgres_store, ctx)
    try:
        assert sub.catch_up()
        assert applied == store and sub.head == 50
        assert sub.counters["caught_up_events"] == 50
        assert sub.event_at(17) == (True, store[16])
        assert sub.event_at(51) == (True, None)
        assert sub.head_only() == 50
    finally:
        sub.close()


def test_the_connection_is_read_only(postgres_store, ctx):
    filled_store(postgres_store, 5)
    source = DatabaseSource(postgres_store)
    try:
        assert source.wait(source.ask(0), 10.0) is not None
        conn = source._conn  # the worker's, idle now: whatever it runs cannot write
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM events")
    finally:
        source.close()
    assert len(stored_events(postgres_store)) == 5


def test_a_database_with_no_store_yet_reads_as_empty(postgres_store, ctx):
    """A read side may start before the first write side has made the tables."""
    applied, sub = replay(postgres_store, ctx)
    try:
        assert sub.catch_up() and applied == [] and sub.head == 0
        assert sub.head_only() == 0
    finally:
        sub.close()


@pytest.mark.parametrize("damage, says", [
    ("UPDATE events SET body = overlay(body PLACING '\\xff'::bytea FROM 12 FOR 1) "
     "WHERE position = 23", "the event at position 23 does not match its checksum"),
    ("UPDATE events SET checksum = '\\x00000000'::bytea WHERE position = 23",
     "the event at position 23 does not match its checksum"),
    ("DELETE FROM events WHERE position = 23", "the event at position 23 is missing"),
    # Both rows keep bytes that match their checksums, but each is filed at the other's
    # position: the checksum cannot tell, the position in the bytes can.
    ("UPDATE events e SET body = o.body, checksum = o.checksum FROM events o "
     "WHERE (e.position, o.position) IN ((23, 24), (24, 23))",
     "the event at position 23 is filed under another position"),
])
def test_a_damaged_row_stops_the_replay_before_it(postgres_store, ctx, damage, says):
    store = filled_store(postgres_store)
    with psycopg.connect(postgres_store, autocommit=True) as conn:
        assert conn.execute(damage).rowcount >= 1
    applied, sub = replay(postgres_store, ctx, chunk=5)
    try:
        with pytest.raises(StoreDamaged) as damaged:
            sub.catch_up()
        assert says in str(damaged.value)
        assert str(damaged.value).startswith("event store postgresql://postgres@")
        # The chunks before it (of 5: up to 20), nothing of the chunk that holds it.
        assert applied == store[:20] and sub.position == 20
    finally:
        sub.close()


def test_a_database_that_goes_away_is_waited_for_not_fatal(postgres_cluster, ctx):
    url = postgres_cluster.new_database()
    store = filled_store(url, 10)
    applied, sub = replay(url, ctx)
    try:
        assert sub.catch_up()
        postgres_cluster.stop_server()
        try:
            started = time.monotonic()
            assert sub.catch_up(timeout=2.0) is False  # no answer: the caller tries again
            assert sub.head_only(timeout=1.0) is None
            assert time.monotonic() - started < 10.0
        finally:
            postgres_cluster.start_server()
        with psycopg.connect(url) as conn:
            commit(conn, [("late", 1)])
        deadline = time.monotonic() + WAIT
        while not sub.catch_up(timeout=2.0):  # as the read side retries
            assert time.monotonic() < deadline, "the database came back but was not read"
        assert applied == store + stored_events(url)[10:] and sub.position == 11
    finally:
        sub.close()


# ---- a read side process fed from the database ------------------------------------------------

class FakeRouter:
    """The router's read endpoint, as far as one read side needs it: takes its hello and
    status reports, sends it queries, takes its answers."""

    def __init__(self, ctx: zmq.Context) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(self.endpoint)
        self.peer: bytes | None = None
        self.status: wire.Report | None = None
        self.seq = 0

    def _take(self, timeout: float) -> wire.Answers | None:
        if not self.socket.poll(int(timeout * 1000) + 1):
            return None
        peer, kind, body = self.socket.recv_multipart()
        if kind in (wire.HELLO, wire.STATUS):
            self.peer, self.status = peer, wire.report(body, "read")
            return None
        assert kind == wire.ANSWERS, kind
        return wire.answers(body)

    def wait_ready_at(self, position: int, proc: subprocess.Popen) -> wire.Report:
        deadline = time.monotonic() + WAIT
        while not (self.status and self.status.ready and self.status.position == position):
            assert proc.poll() is None, f"the read side exited with status {proc.returncode}"
            assert time.monotonic() < deadline, f"read side not ready at {position}: " \
                                                f"{self.status}"
            self._take(0.2)
        return self.status

    def ask(self, context: str, name: str, params: dict, at: int) -> dict:
        self.seq += 1
        assert self.peer is not None
        self.socket.send_multipart([self.peer, *wire.message(
            wire.QUERIES, [wire.QueryRequest(self.seq, context, name, params, at)])])
        deadline = time.monotonic() + WAIT
        while True:
            assert time.monotonic() < deadline, f"no answer to {name} {params}"
            answers = self._take(0.2)
            if answers is not None:
                (answer,) = answers.items
                assert answer.seq == self.seq
                return answer.result


class ReadSideProcess:
    def __init__(self, tmp_path, events: list[str], router: FakeRouter, url: str) -> None:
        (tmp_path / "runtime").mkdir(exist_ok=True)
        (tmp_path / "data").mkdir(exist_ok=True)  # for snapshots (the launcher makes it)
        self.runtime = tmp_path / "runtime"
        self.err = tmp_path / f"read-{time.monotonic_ns()}.err"
        env = {**os.environ, "CQRS_SNAPSHOT_MIN": "20"}
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "read_side", "--events-endpoint", ",".join(events),
                 "--read-endpoint", router.endpoint, "--store", url,
                 "--runtime-dir", str(self.runtime), "--data-dir", str(tmp_path / "data")],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)

    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class HandWriters:
    """Two writers' connections and publishers, driven one step at a time by the test."""

    def __init__(self, url: str, ctx: zmq.Context) -> None:
        self.endpoints = [f"tcp://127.0.0.1:{port}" for port in free_ports(2)]
        self.pubs = []
        for endpoint in self.endpoints:
            pub = ctx.socket(zmq.XPUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.bind(endpoint)
            self.pubs.append(pub)
        self.conns = [psycopg.connect(url), psycopg.connect(url)]
        self.versions: dict[str, int] = {}

    def wait_for_subscriber(self) -> None:
        for pub in self.pubs:
            deadline = time.monotonic() + WAIT
            while not (pub.poll(100) and pub.recv() == b"\x01"):
                assert time.monotonic() < deadline, "the read side reached no publisher"

    def commit(self, writer: int, *streams: str) -> list[tuple[dict, bytes]]:
        batch = []
        for sid in streams:
            self.versions[sid] = self.versions.get(sid, 0) + 1
            batch.append((sid, self.versions[sid]))
        return commit(self.conns[writer], batch)

    def publish(self, writer: int, stored: list[tuple[dict, bytes]]) -> None:
        for event, body in stored:
            self.pubs[writer].send_multipart([b"accounts." + event["type"].encode(), body])

    def beat(self, head: int) -> None:
        for pub in self.pubs:
            pub.send_multipart(wire.heartbeat(head, ""))

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for pub in self.pubs:
            pub.close()


def fold(url: str) -> dict:
    from read_side.contexts import load_all

    projections = load_all()
    for event in stored_events(url):
        projections[event["context"]].apply(event)
    return projections


def test_a_read_side_replays_follows_takes_up_its_snapshot_and_stops_on_damage(
        postgres_store, ctx, tmp_path):
    """A read side process on the database: ready after replaying it, then following two
    writers' streams out of order with a batch never published, answering as a fold of the
    database; restarted, it takes up its snapshot (the database says the snapshot's event is
    still there); restarted on a damaged row, it stops for good (status 78) and says why."""
    from common.jsontext import dumps
    from read_side.snapshot import Snapshots

    url = postgres_store
    make_store(url)
    writers = HandWriters(url, ctx)
    router = FakeRouter(ctx)
    reader = None
    try:
        for i in range(30):  # stored before the read side starts: replayed
            writers.commit(i % 2, f"u{i % 6}")
        reader = ReadSideProcess(tmp_path, writers.endpoints, router, url)
        writers.wait_for_subscriber()
        router.wait_ready_at(30, reader.proc)

        a = writers.commit(0, "u1", "u2")        # 31, 32
        b = writers.commit(1, "u3")              # 33
        lost = writers.commit(0, "u4")           # 34: never published
        c = writers.commit(1, "u5", "u0", "u1")  # 35..37
        writers.publish(1, b)  # the slow writer's 31 and 32 arrive after 33
        writers.publish(1, c)
        writers.publish(0, a)
        writers.beat(37)
        status = router.wait_ready_at(37, reader.proc)
        assert status.counters["held"] > 0 and status.counters["caught_up_events"] >= 1, status
        assert lost[0][0]["position"] == 34
        want = fold(url)
        for name, params in [("ListUsers", {"limit": 100})] + [
                ("GetUserHistory", {"userId": f"u{i}"}) for i in range(6)]:
            got = router.ask("accounts", name, params, at=37)
            assert got == {"json": dumps(want["accounts"].queries[name](params, None))}, name

        # A snapshot once the state grew by CQRS_SNAPSHOT_MIN; then a restart takes it up.
        snapshots = Snapshots(str(tmp_path / "data"))
        deadline = time.monotonic() + WAIT
        while snapshots.position_on_disk() == 0:
            assert time.monotonic() < deadline, "no snapshot was written"
            router._take(0.2)
        taken = snapshots.position_on_disk()
        assert reader.stop() == 0
        reader = ReadSideProcess(tmp_path, writers.endpoints, router, url)
        router.status = None
        router.wait_ready_at(37, reader.proc)
        assert f"took up the snapshot at position {taken}" in reader.log(), reader.log()
        assert reader.stop() == 0

        # Damage past the snapshot: the restarted read side reads it, and stops for good.
        writers.commit(0, "u2", "u3", "u4")  # 38..40
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE events SET body = overlay(body PLACING '\\x00'::bytea "
                         "FROM 20 FOR 1) WHERE position = 39")
        reader = ReadSideProcess(tmp_path, writers.endpoints, router, url)
        assert reader.proc.wait(WAIT) == 78, reader.log()
        reason = (reader.runtime / "fatal.txt").read_text()
        assert "the event at position 39 does not match its checksum" in reason
        assert reason in reader.log()
    finally:
        if reader is not None:
            reader.stop()
        writers.close()


# ---- through the node, once the engine is there -------------------------------------------------



class Tap:
    """`python -m common.tap` with its stdout lines read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "common.tap", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.queue: queue.Queue = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.queue.put(raw.decode().rstrip("\n"))
        self.queue.put(None)

    def read_until(self, count: int, timeout: float = WAIT) -> list[str]:
        """Its lines, once it has printed `count` (fails if it ends or is slow to)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the tap printed {len(self.lines)} of {count} lines")
            if line is None:
                pytest.fail(f"the tap ended after {len(self.lines)} lines: {self.stop()}")
            self.lines.append(line)
        return self.lines

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self.proc.stderr.read().decode(errors="replace")


def read_sides_and_tap_node(url: str, write_sides: int) -> Node:
    args = ["--store", url]
    if write_sides > 1:
        args += ["--write-sides", str(write_sides)]
    return Node(*args)


def fresh_write_counters(node: Node, commands: int) -> list[dict]:
    """Every write side's counters as of now: from status reports made after this call.

    Reports come about twice a second, so what stats shows may predate what just happened.
    Once the reports count all `commands`, each write side is sent commands of new streams
    until its count grows past that: a report counting one of them was made after it."""
    from tests.support import envelope
    from tests.support.stats import processes

    def counters() -> dict[int, dict]:
        return {pid: p["counters"] for pid, p in processes(node, "write").items()}

    deadline = time.monotonic() + WAIT
    seen = counters()
    while sum(c["commands"] for c in seen.values()) < commands:
        assert time.monotonic() < deadline, f"the write sides never reported {commands}: {seen}"
        seen = counters()
    before = {pid: c["commands"] for pid, c in seen.items()}
    sent = 0
    while not all(c["commands"] > before[pid] for pid, c in seen.items()):
        assert time.monotonic() < deadline, f"no fresh report from every write side: {seen}"
        sent += 1
        assert node.request(envelope.create(f"fresh-{sent}", "F", msg_id=900_000 + sent),
                            timeout=WAIT)["success"]
        seen = counters()
    return list(seen.values())


@pytest.mark.parametrize("write_sides", [1, 2])
def test_the_tap_and_the_read_side_follow_the_database(postgres_cluster, write_sides):
    from read_side.contexts import load_all as read_projections
    from common.jsontext import dumps
    from tests.support import bus, envelope
    from tests.support.pipeline import run_commands
    from tests.support.stats import processes
    from write_side.store import read_events

    url = postgres_cluster.new_database()
    node = read_sides_and_tap_node(url, write_sides)
    tap = None
    try:
        endpoints = node.events_endpoint()
        assert len(endpoints.split(",")) == write_sides
        tap = Tap("--endpoint", endpoints, "--store", url, "--from-position", "1")
        commands = []
        for i in range(600):
            commands.append(envelope.create(f"acc-{i % 150}", f"n{i}", msg_id=len(commands) + 1)
                            if i < 150 else
                            envelope.rename(f"acc-{i % 150}", f"n{i}", msg_id=len(commands) + 1))
            commands.append(bus.create(f"B{i}", f"b{i}@example.com", msg_id=len(commands) + 1))
        run_commands(node, commands, chunk=200)
        store = read_events(url)
        assert len(store) >= len(commands)
        # Every event once, in position order, as stored.
        assert tap.read_until(len(store)) == [json.dumps(e) for e in store]

        # The read side's answers equal a fold of the store.
        projections = read_projections()
        for event in store:
            projections[event["context"]].apply(event)
        queries = [envelope.list_users(limit=1000), bus.list_users(limit=1000)]
        queries += [envelope.history(f"acc-{i}") for i in range(150)]
        expected = [projections["accounts"].queries["ListUsers"]({"limit": 1000}, None),
                    projections["directory"].queries["ListUsers"]({"limit": 1000}, None)]
        expected += [projections["accounts"].queries["GetUserHistory"]({"userId": f"acc-{i}"},
                                                                         None)
                     for i in range(150)]

        def check_answers(first_id: int) -> None:
            for n, (query, want) in enumerate(zip(queries, expected)):
                reply = node.request({**query, "msg_id": first_id + n}, timeout=WAIT)
                assert reply.get("data") == json.loads(dumps(want)), (query, reply)

        check_answers(10_000)  # the read side that followed the streams live

        # A read side that starts over replays the whole store, from the database.
        reader = role_pid(node, "read_side")
        os.kill(reader, signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while not any(pid != reader and p["ready"] and p["position"] == len(store)
                      for pid, p in processes(node, "read").items()):
            assert time.monotonic() < deadline, "no read side came back ready at the head"
        check_answers(20_000)

        # Neither the read sides nor the tap asked a write side for stored events.
        served = [c["catchup_served"] for c in fresh_write_counters(node, len(commands))]
        assert served == [0] * write_sides
    finally:
        if tap is not None:
            tap.stop()
        node.stop()
