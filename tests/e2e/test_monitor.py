"""The monitor end to end, without a browser: /metrics from a real node (run_node.py
--http-port, and `python -m monitor` in service mode), the stream replay from the store,
the rules on its HTTP address, and proof that its failures never disturb the node."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from common.catchup_sources import EndpointSource
from monitor.scan import scan_stream
from tests.support import bus, envelope
from tests.support.dialogue import unique
from tests.support.nodeproc import ROOT, Node, alive, cmdline, role_pid, wait_until
from tests.support.ports import free_ports
from tests.support.service_node import running_node

DEADLINE = 30.0  # generous: a busy 2-core machine


def fetch(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.status, response.read()


def scrape(port: int) -> dict[str, dict]:
    """sample name -> {sorted labels: value}, through prometheus_client's own parser."""
    _status, body = fetch(port, "/metrics")
    out: dict[str, dict] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of a sample over the series whose labels include `labels`."""
    return sum(v for k, v in samples.get(name, {}).items() if set(labels.items()) <= set(k))


def scraped(port: int) -> dict | None:
    try:
        return scrape(port)
    except OSError:
        return None


def wait_for_metrics(port: int, check, what: str, timeout: float = DEADLINE) -> dict:
    """Scrape until check(samples) holds; the samples that passed."""
    seen: list[dict] = []

    def passes() -> bool:
        samples = scraped(port)
        if samples is None:
            return False
        seen[:] = [samples]
        return bool(check(samples))

    assert wait_until(passes, timeout, 0.2), f"/metrics never showed {what}: {seen[-1:]}"
    return seen[0]


def monitored_node(node_factory, *args: str) -> tuple[Node, int]:
    port = free_ports(1)[0]
    node = node_factory("--http-port", str(port), *args)
    wait_for_metrics(port, lambda s: total(s, "cqrs_up") == 1, "cqrs_up 1")
    return node, port


def test_metrics_parse_and_move_with_the_traffic(node_factory):
    node, port = monitored_node(node_factory)
    before = scrape(port)
    for family in text_string_to_metric_families(fetch(port, "/metrics")[1].decode()):
        assert family.name.startswith("cqrs_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    uids = [unique("metrics") for _ in range(5)]
    replies = [node.request(envelope.create(uid, "Metric", msg_id=i))
               for i, uid in enumerate(uids, 1)]
    assert all(r["success"] for r in replies), replies
    assert node.request(envelope.get_user(uids[0], msg_id=10))["type"] == "query_result"
    assert node.request(bus.create("", "bad", msg_id=11))["success"] is False
    assert node.request("{not json")["code"] == 12

    def moved(s: dict) -> bool:
        def grew(name: str, by: float, **labels: str) -> bool:
            return total(s, name, **labels) >= total(before, name, **labels) + by

        return (grew("cqrs_requests_total", 5, kind="command", outcome="ok")
                and grew("cqrs_requests_total", 1, kind="command", outcome="rejected")
                and grew("cqrs_requests_total", 1, kind="query", outcome="ok")
                and grew("cqrs_requests_total", 1, kind="invalid", outcome="malformed")
                and grew("cqrs_request_duration_seconds_count", 6, kind="command")
                and grew("cqrs_events_appended_total", 5, context="accounts", type="UserCreated")
                and grew("cqrs_write_commands_total", 6)
                and grew("cqrs_write_batch_size_count", 1)
                and grew("cqrs_write_commit_duration_seconds_count", 1)
                and grew("cqrs_head_position", 5))

    after = wait_for_metrics(port, moved, "the counters moving with 7 requests")
    # A histogram's buckets are cumulative and end with all of its values.
    buckets = sorted((float(dict(k)["le"]), v) for k, v in
                     after["cqrs_request_duration_seconds_bucket"].items()
                     if dict(k)["kind"] == "command")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert buckets[-1][1] == total(after, "cqrs_request_duration_seconds_count", kind="command")
    # Every process is listed with its position and lag, the monitor among them.
    roles = {dict(k)["role"] for k in after["cqrs_process_position"]}
    assert roles == {"router", "write", "read", "monitor"}
    assert total(after, "cqrs_restarts_total") == 0


def test_stats_reach_the_monitor_from_a_node_that_wraps_its_replies(node_factory):
    """--envelope wraps every reply, the monitor's stats replies included."""
    node, port = monitored_node(node_factory, "--envelope")
    reply = node.request({"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1}})
    assert reply["body"]["type"] == "init_ok"
    wait_for_metrics(port, lambda s: total(s, "cqrs_requests_total", kind="init") == 1,
                     "the init request counted")


def test_the_latest_events_and_streams_are_served_as_json(node_factory):
    node, port = monitored_node(node_factory)
    uid = unique("json")
    assert node.request(envelope.create(uid, "Jay", msg_id=1))["success"]
    assert node.request(envelope.rename(uid, "Jay Two", msg_id=2))["success"]

    def shown() -> bool:
        return any(e["stream_id"] == uid and e["version"] == 2
                   for e in json.loads(fetch(port, "/api/state")[1])["events"])

    assert wait_until(shown, DEADLINE, 0.2)
    streams = json.loads(fetch(port, f"/api/streams?context=accounts&prefix={uid}")[1])
    assert [(s["stream_id"], s["version"]) for s in streams] == [(uid, 2)]
    stream = json.loads(fetch(port, f"/api/stream?context=accounts&id={uid}")[1])
    assert stream["source"] == "monitor" and stream["complete"]
    assert [e["type"] for e in stream["events"]] == ["UserCreated", "UserRenamed"]
    assert stream["state"]["fields"] == {"name": "Jay Two"}
    past = json.loads(fetch(port, "/api/stream?context=accounts&id=user-123&at=2024-01-15")[1])
    assert past["at"] == "2024-01-15T00:00:00.000000Z"
    assert past["state"]["fields"] == {"name": "John Doe"} and past["state"]["version"] == 2
    # A stream the monitor does not hold is read from the store: here, one that has none.
    missing = json.loads(fetch(port, "/api/stream?context=accounts&id=nobody")[1])
    assert (missing["source"], missing["events"], missing["state"]) == ("store", [], None)


def test_a_stream_is_replayed_from_the_store_through_the_catch_up_endpoint(node_factory):
    node = node_factory()
    uid = unique("scan")
    assert node.request(envelope.create(uid, "Scan", msg_id=1))["success"]
    catchup = f"ipc://{os.path.join(node.runtime_dir(), 'catchup.sock')}"
    ctx = zmq.Context()
    sources: list[EndpointSource] = []

    def new_source() -> EndpointSource:
        sources.append(EndpointSource(ctx, catchup))
        return sources[-1]

    try:
        events = scan_stream(new_source, "accounts", "user-123")
        assert [(e["version"], e["data"]["name"]) for e in events] == [
            (1, "John"), (2, "John Doe"), (3, "John")]
        assert [e["stream_id"] for e in scan_stream(new_source, "accounts", uid)] == [uid]
        assert scan_stream(new_source, "directory", uid) == []  # another context's stream
        assert len(sources) == 3  # one each, closed after it (or ctx.term() would hang)
    finally:
        ctx.term()


def test_a_port_already_taken_never_disturbs_the_node_and_is_tried_again(node_factory):
    port = free_ports(1)[0]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        node = node_factory("--http-port", str(port))
        assert wait_until(lambda: "cannot serve HTTP" in node.stderr(), DEADLINE), node.stderr()
        uid = unique("squat")
        assert node.request(envelope.create(uid, "Still", msg_id=1))["success"]
        assert node.request(envelope.get_user(uid, msg_id=2))["data"] == {"id": uid,
                                                                         "name": "Still"}
    finally:
        squatter.close()
    # Freed: the monitor takes the port at its next try (every 5 s).
    wait_for_metrics(port, lambda s: total(s, "cqrs_up") == 1, "the monitor once the port "
                     "was free")
    node.close_stdin()
    node.read_all()
    assert node.wait() == 0


def test_a_monitor_that_keeps_crashing_is_left_stopped_and_the_node_serves_on(node_factory):
    port = free_ports(1)[0]
    node = node_factory("--http-port", str(port))
    killed: list[int] = []
    for _ in range(5):  # the supervisor's crash-loop limit: 5 deaths within 60 s
        pid = role_pid(node, "monitor")
        assert pid not in killed
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        assert wait_until(lambda: not alive(pid), DEADLINE)
    assert wait_until(lambda: "not restarting monitor again" in node.stderr(), DEADLINE), \
        node.stderr()
    uid = unique("crash")
    assert node.request(envelope.create(uid, "Alive", msg_id=1))["success"]
    assert node.request(envelope.get_user(uid, msg_id=2))["data"]["name"] == "Alive"
    assert not [p for p in node.children() if b"monitor" in cmdline(p)]
    node.close_stdin()
    node.read_all()
    assert node.wait() == 0, node.stderr()[-2000:]


@pytest.mark.parametrize("program", ["run_node", "monitor"])
def test_a_non_loopback_http_address_needs_insecure(program):
    """CURVE or not: it covers ZeroMQ sockets, not HTTP."""
    command = ([sys.executable, os.path.join(ROOT, "run_node.py")] if program == "run_node"
               else [sys.executable, "-m", "monitor"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
    run = subprocess.run(command + ["--http-port", "9", "--http-host", "0.0.0.0"], cwd=ROOT,
                         env=env, input=b"", capture_output=True, timeout=DEADLINE)
    assert run.returncode == 2, run.stderr
    assert b"0.0.0.0 (--http-host, CQRS_HTTP_HOST) can be reached from other hosts" in run.stderr


def test_service_mode_monitor_follows_a_router_that_restarts(tmp_path: Path):
    port = free_ports(1)[0]
    with running_node(tmp_path) as node:
        node.start("monitor", "monitor", env={"CQRS_HTTP_PORT": str(port)})
        wait_for_metrics(port, lambda s: total(s, "cqrs_up") == 1
                         and total(s, "cqrs_process_ready", role="read") == 1, "a ready node")
        assert node.probe() is None
        before = scrape(port)
        node.procs["router"].send_signal(signal.SIGTERM)
        node.procs["router"].wait(DEADLINE)
        wait_for_metrics(port, lambda s: total(s, "cqrs_up") == 0, "cqrs_up 0 without a router")
        node.start("router")
        node.wait_ready()
        wait_for_metrics(port, lambda s: total(s, "cqrs_up") == 1 and total(
            s, "cqrs_events_appended_total") >= total(before, "cqrs_events_appended_total") + 1,
            "the monitor back with the new router and its events")
        assert node.dead(["monitor"]) == []
