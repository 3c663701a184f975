"""The `cqrs-tap` monitoring program against a running node (PROTOCOL.md section 8).

The tap runs as a subprocess on a TCP events endpoint (its catch-up socket is derived as
port + 1); what it prints is compared with the store itself, read-only, and with a plain
pyzmq SUB subscriber.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq

from common import store_url
from tests.support import bus, envelope
from tests.support.nodeproc import ROOT, wait_until
from tests.support.pipeline import run_commands
from write_side.store import read_events

TIMEOUT = 60.0  # generous: a busy 2-core machine


class TapProcess:
    """`python -m common.tap ...` (or another program) with its stdout lines read by a thread."""

    def __init__(self, endpoint: str, *args: str, program: list[str] | None = None) -> None:
        program = program or [sys.executable, "-m", "common.tap"]
        self.proc = subprocess.Popen([*program, "--endpoint", endpoint, *args], cwd=ROOT,
                                     stdout=subprocess.PIPE)  # stderr: shown by pytest on failure
        self.lines: queue.Queue = queue.Queue()
        self.printed: list[str] = []
        self.closed = False  # stdout reached its end
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))
        self.lines.put(None)

    def collect(self, timeout: float = 0.0) -> int:
        """Move what the tap printed into self.printed, waiting up to `timeout` for a first
        line if there is none yet; return how many lines it has printed so far."""
        try:
            line = self.lines.get(timeout=timeout) if timeout else self.lines.get_nowait()
            while line is not None:
                self.printed.append(line)
                line = self.lines.get_nowait()
            self.closed = True
        except queue.Empty:
            pass
        return len(self.printed)

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, list[str]]:
        """Wait for the tap to exit: (exit status, every line it printed)."""
        status = self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.collect(0.1)
        assert self.closed, "the tap exited but its stdout stayed open"
        return status, self.printed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_tap():
    """Start taps with start_tap(endpoint, *args, program=...); all are killed at teardown."""
    taps: list[TapProcess] = []

    def start(endpoint: str, *args: str, **kwargs) -> TapProcess:
        taps.append(TapProcess(endpoint, *args, **kwargs))
        return taps[-1]

    yield start
    for tap in taps:
        tap.stop()


def store_lines(data_dir, context: str = "") -> list[str]:
    """The stored events (of one context, if given) as the tap should print them: one JSON
    line each, in position order, read through the store interface (read-only)."""
    events = read_events(store_url.resolve("", str(data_dir), ""))
    return [json.dumps(e) for e in events if not context or e["context"] == context]


def commands(first_id: int, count: int) -> list[dict]:
    """Both dialects in turn; each command appends exactly one event."""
    out = []
    for i in range(first_id, first_id + count):
        if i % 2:
            out.append(envelope.create(f"t-{i}", f"T{i}", msg_id=i))
        else:
            out.append(bus.create(f"B{i}", f"b{i}@example.com", msg_id=i))
    return out


class Sub:
    """A plain pyzmq SUB subscriber, known to be live once it has seen a heartbeat."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)
        while self._next()[0] != b"_heartbeat":
            pass

    def _next(self) -> tuple[bytes, dict]:
        assert self.sock.poll(int(TIMEOUT * 1000)), "nothing on the event stream"
        topic, body = self.sock.recv_multipart()
        return topic, msgpack.unpackb(body, raw=False)

    def events_until(self, position: int) -> list[dict]:
        """Every event received up to and including `position` (heartbeats skipped)."""
        events: list[dict] = []
        while not events or events[-1]["position"] < position:
            topic, event = self._next()
            if topic != b"_heartbeat":
                assert topic.decode() == f"{event['context']}.{event['type']}"
                events.append(event)
        return events

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def open_sub():
    """Open SUB subscribers with open_sub(endpoint); all are closed at teardown."""
    subs: list[Sub] = []

    def open_one(endpoint: str) -> Sub:
        subs.append(Sub(endpoint))
        return subs[-1]

    yield open_one
    for sub in subs:
        sub.close()


def test_from_position_1_prints_the_store_while_commands_arrive(tcp_node, tmp_path, start_tap,
                                                               open_sub):
    """Replay then live, with commands arriving all along: exactly the store's events, in
    order, no gap, no duplicate -- and the same events a plain SUB socket receives live."""
    node, endpoint = tcp_node("--data-dir", str(tmp_path))
    run_commands(node, commands(1, 400))  # stored before the tap starts: replayed
    sub = open_sub(endpoint)  # live from here on
    total = 4 + 400 + 1200
    tap = start_tap(endpoint, "--from-position", "1", "--count", str(total))

    later = commands(1000, 1200)
    run_commands(node, later[:100])
    assert tap.collect(TIMEOUT) > 0, "the tap printed nothing"
    for start in range(100, len(later), 100):  # it is printing: keep commands coming
        run_commands(node, later[start:start + 100])
    status, printed = tap.finish()
    live = sub.events_until(total)

    expected = store_lines(tmp_path)
    assert len(expected) == total
    assert status == 0
    assert printed == expected
    assert [json.dumps(e) for e in live] == expected[404:]


def test_filter_prints_only_matching_topics(tcp_node, tmp_path, start_tap):
    """--filter accounts. prints the accounts events and nothing else, in store order."""
    node, endpoint = tcp_node("--data-dir", str(tmp_path))
    run_commands(node, commands(1, 300))
    accounts = "accounts"
    assert len(store_lines(tmp_path)) == 4 + 300
    assert len(store_lines(tmp_path, accounts)) == 3 + 150
    tap = start_tap(endpoint, "--from-position", "1", "--filter", "accounts.",
                    "--count", str(3 + 150 + 50))
    run_commands(node, commands(1000, 100))  # 50 more accounts events, then the tap is done
    status, printed = tap.finish()
    assert status == 0
    assert printed == store_lines(tmp_path, accounts)


def test_without_from_position_prints_only_new_events(tcp_node, tmp_path, start_tap):
    """Started at head H, the tap prints nothing at or below H, then every event in order."""
    node, endpoint = tcp_node("--data-dir", str(tmp_path))
    run_commands(node, commands(1, 200))
    head = 4 + 200
    tap = start_tap(endpoint, "--count", "30")
    msg_id = 1000
    while not tap.closed:  # one command at a time until the tap has printed its 30 and exited
        assert msg_id < 1000 + 500, f"the tap printed {len(tap.printed)} of 30 lines"
        run_commands(node, commands(msg_id, 1))
        msg_id += 1
        tap.collect(0.2)
    status, printed = tap.finish()
    assert status == 0 and len(printed) == 30
    first = json.loads(printed[0])["position"]
    assert first > head, f"it printed position {first}, stored before the tap started"
    assert printed == store_lines(tmp_path)[first - 1:first - 1 + 30]


def test_count_exits_zero_after_n_lines(tcp_node, start_tap):
    """--count N: exactly N lines, then exit status 0, whether the lines come from the replay
    alone or need live events too (run as the installed `cqrs-tap` script)."""
    node, endpoint = tcp_node()
    program = [os.path.join(os.path.dirname(sys.executable), "cqrs-tap")]
    replayed = start_tap(endpoint, "--from-position", "2", "--count", "2", program=program)
    status, printed = replayed.finish()
    assert status == 0
    assert [json.loads(line)["position"] for line in printed] == [2, 3]

    mixed = start_tap(endpoint, "--from-position", "1", "--count", "6", program=program)
    assert wait_until(lambda: mixed.collect() == 4, TIMEOUT), mixed.printed  # the samples
    msg_id = 1
    while mixed.collect(0.2) < 6:  # one live event at a time until it has printed 6
        assert msg_id <= 50 and not mixed.closed, mixed.printed
        run_commands(node, commands(msg_id, 1))
        msg_id += 1
    run_commands(node, commands(100, 3))  # more events: it must stop at 6 all the same
    status, printed = mixed.finish()
    assert status == 0
    assert [json.loads(line)["position"] for line in printed] == [1, 2, 3, 4, 5, 6]


def script(first_id: int) -> list[dict]:
    """Commands and queries whose replies do not depend on time or random ids."""
    out = []
    for i in range(first_id, first_id + 1500, 3):
        sid = f"s-{i % 100}"
        kind = "CreateUser" if i < first_id + 300 else "RenameUser"
        out.append(envelope.command(kind, {"id": sid, "name": f"n{i}"}, msg_id=i))
        out.append(envelope.get_user(sid, msg_id=i + 1))
        out.append(envelope.list_users(msg_id=i + 2, page=2, limit=7))
    return out


def test_tap_does_not_disturb_the_node(tcp_node, node_factory, tmp_path, start_tap):
    """Two taps following from position 1 while a script runs: the replies are exactly those of
    a node without taps, and the taps print the whole store."""
    quiet = node_factory()
    quiet.send(*script(1))
    expected = [quiet.read_line(timeout=TIMEOUT) for _ in range(1500)]
    assert all(json.loads(line).get("success") is True for line in expected[0::3])

    node, endpoint = tcp_node("--data-dir", str(tmp_path))
    watchers = [start_tap(endpoint, "--from-position", "1") for _ in range(2)]
    assert wait_until(lambda: all(w.collect() == 4 for w in watchers), TIMEOUT), \
        "the taps did not print the sample events"
    node.send(*script(1))
    assert [node.read_line(timeout=TIMEOUT) for _ in range(1500)] == expected

    stored = store_lines(tmp_path)
    assert len(stored) == 4 + 500
    assert wait_until(lambda: all(w.collect() >= len(stored) for w in watchers), TIMEOUT), \
        f"the taps printed {[len(w.printed) for w in watchers]} of {len(stored)} events"
    for watcher in watchers:
        watcher.proc.send_signal(signal.SIGTERM)
        status, printed = watcher.finish()
        assert (status, printed) == (0, stored)
