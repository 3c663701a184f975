"""The monitor's smaller parts: the SSE hub, integer-counter histograms, the router's request
counts, the HTTP address rule, the stats client and the HTTP server's routes (a real
server on a free loopback port, in a thread: no process is started)."""
from __future__ import annotations

import http.client
import json
import threading
from typing import Iterator

import pytest
import zmq

from common import buckets, config
from monitor import sse
from monitor.stats_client import StatsClient
from monitor.view import NodeView
from monitor.web import MonitorServer
from router.request_stats import RequestStats, outcome

# -- SSE hub -----------------------------------------------------------------------------------


def test_every_page_gets_each_message_and_a_page_that_falls_behind_is_cut_off():
    hub = sse.Hub()
    keeping_up, stalled = hub.subscribe(), hub.subscribe()
    for n in range(sse.QUEUE_SIZE):
        hub.publish("stats", {"n": n})
        keeping_up.get_nowait()
    assert hub.pages == 2 and stalled.qsize() == sse.QUEUE_SIZE
    hub.publish("stats", {"n": "one too many"})
    assert hub.pages == 1  # the stalled page is gone; its handler is told to end
    assert stalled.get_nowait() == sse.CLOSE
    assert keeping_up.get_nowait() == 'event: stats\ndata: {"n":"one too many"}\n\n'
    hub.close()
    assert keeping_up.get_nowait() == sse.CLOSE
    assert hub.subscribe().get_nowait() == sse.CLOSE  # none joins a closed hub


# -- histograms as integer counters --------------------------------------------------------------


def test_a_flat_histogram_reads_back_as_it_was_written():
    h = buckets.FlatHistogram("batch_size", (1, 8, 64))
    for value in (1, 1, 5, 64, 65, 1000):
        h.observe(value)
    counters = h.counters()
    assert all(type(v) is int for v in counters.values())  # what a status Report may carry
    back = buckets.read({**counters, "commands": 9, "batch_size_le_x": 3}, "batch_size")
    assert back == buckets.Histogram([1, 8, 64], [2, 1, 1, 2], 6, 1136)
    assert buckets.read({"commands": 1}, "batch_size") is None


# -- the router's request counts -------------------------------------------------------------


@pytest.mark.parametrize("body, expected", [
    ({"type": "command_result", "success": True, "events": []}, "ok"),
    ({"type": "command_result", "success": False, "errors": ["x"]}, "rejected"),
    ({"type": "error", "code": 0, "text": "timeout"}, "timeout"),
    ({"type": "error", "code": 11, "text": "unavailable"}, "unavailable"),
    ({"type": "error", "code": 12, "text": "malformed"}, "malformed"),
    ({"type": "error", "code": 13, "text": "crash"}, "crash"),
    ({"type": "error", "code": 99, "text": "?"}, "error"),
    ("a query result rendered as text", "ok"),
])
def test_each_answer_has_an_outcome(body, expected):
    assert outcome(body) == expected


def test_latencies_fall_in_the_first_bucket_at_or_above_them():
    stats = RequestStats()
    for seconds in (0.0001, 0.0005, 0.0006, 11.0):
        stats.answered_after("command", {"type": "command_result", "success": True}, seconds)
    stats.count("init", "ok")
    shown = stats.as_dict()
    assert shown["answered"] == {"command": {"ok": 4}, "init": {"ok": 1}}
    command = shown["latency"]["command"]
    assert command["buckets"][:2] == [2, 1] and command["buckets"][-1] == 1
    assert sum(command["buckets"]) == 4 and abs(command["sum"] - 11.0012) < 1e-9
    assert sum(shown["latency"]["query"]["buckets"]) == 0
    json.dumps(shown)  # it travels in a stats reply


# -- where the HTTP server may bind --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_addresses_may_serve_http(host):
    cfg = config.Config(http_port=8080, http_host=host)
    assert config.exposed_http(cfg, config.BOUND_BY["monitor"]) == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "monitor.example"])
def test_other_addresses_need_insecure_even_with_curve(host):
    cfg = config.Config(http_port=8080, http_host=host)
    reason = config.exposed_http(cfg, config.BOUND_BY["monitor"])
    assert reason.startswith(f"{host} (--http-host, CQRS_HTTP_HOST) can be reached")
    assert "--insecure" in reason and "CURVE does not cover HTTP" in reason
    # exposed_bind (the ZeroMQ rule, which CURVE satisfies) leaves HTTP to exposed_http.
    assert config.exposed_bind(cfg, config.BOUND_BY["monitor"], env={}) == ""
    cfg.insecure = True
    assert config.exposed_http(cfg, config.BOUND_BY["monitor"]) == ""
    # No port, no server; a process that binds no HTTP is not asked.
    assert config.exposed_http(config.Config(http_host=host), config.BOUND_BY["monitor"]) == ""
    assert config.exposed_http(config.Config(http_port=1, http_host=host), ()) == ""


def test_the_http_settings_are_flags_with_variables():
    cfg = config.parse(["--http-port", "9000"], env={"CQRS_HTTP_HOST": "127.0.0.3"})
    assert (cfg.http_port, cfg.http_host) == (9000, "127.0.0.3")
    assert config.parse(cfg.to_argv(), env={}) == cfg
    assert config.with_service_defaults(config.Config()).http_port == 5555
    assert config.parse([], env={}).http_port == 0  # off unless asked for


# -- the stats client -----------------------------------------------------------------------------


def test_the_stats_client_takes_its_own_answer_plain_or_wrapped():
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("inproc://router")
    client = StatsClient(ctx, "inproc://router")
    try:
        client.ask_if_due(10.0)
        identity, frame = router.recv_multipart()
        request = json.loads(frame)
        assert request == {"type": "stats", "msg_id": 1}
        client.ask_if_due(10.5)  # one out at a time
        assert not router.poll(50)
        router.send_multipart([identity, b'{"type": "stats_result", "in_reply_to": 0, "data": {}}'])
        router.send_multipart([identity, b"not json"])
        wrapped = {"src": "n1", "dest": None,
                   "body": {"type": "stats_result", "in_reply_to": 1, "data": {"router": {}}}}
        router.send_multipart([identity, json.dumps(wrapped).encode()])
        assert router.poll(0) == 0
        got = None
        for _ in range(100):
            got = got or client.receive(11.0)
            if got is not None:
                break
            client.socket.poll(10)
        assert got == {"router": {}}
        client.ask_if_due(11.5)
        assert not router.poll(50)  # the next one a second after the answer
        client.ask_if_due(12.0)
        assert json.loads(router.recv_multipart()[1])["msg_id"] == 2
    finally:
        client.close()
        router.close(0)
        ctx.term()


# -- the HTTP server -------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[MonitorServer]:
    def lookup(context: str, stream_id: str, at: str) -> dict:
        if at == "bad":
            raise ValueError("timestamp does not parse")
        return {"context": context, "stream_id": stream_id, "at": at}

    srv = MonitorServer("127.0.0.1", 0, NodeView(), lookup)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.view.hub.close()
    srv.shutdown()
    srv.server_close()
    thread.join(10)


def get(srv: MonitorServer, path: str, host: str | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    headers = {"Host": host} if host else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def test_the_page_and_its_files_are_served_with_a_strict_policy(server):
    page = get(server, "/")
    assert page.status == 200 and b'<script src="/static/app.js"' in page.body
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        response = get(server, f"/static/{name}")
        assert response.status == 200 and response.headers["Content-Type"].startswith(kind)
    for path in ("/static/../web.py", "/static/missing.js", "/nothing"):
        assert get(server, path).status == 404
    assert get(server, "/favicon.ico").status == 204


def test_a_page_that_names_another_host_is_refused(server):
    """DNS rebinding: a name of someone else's pointed at 127.0.0.1 reads nothing here."""
    port = server.server_address[1]
    assert get(server, "/metrics", host=f"evil.example:{port}").status == 421
    assert get(server, "/api/state", host="evil.example").status == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}"):
        assert get(server, "/metrics", host=host).status == 200


def test_api_routes_answer_json(server):
    state = get(server, "/api/state")
    assert state.status == 200 and set(json.loads(state.body)) >= {"processes", "rates", "events"}
    assert json.loads(get(server, "/api/streams?context=accounts").body) == []
    found = get(server, "/api/stream?context=accounts&id=u%201&at=2024-01-01")
    assert json.loads(found.body) == {"context": "accounts", "stream_id": "u 1",
                                      "at": "2024-01-01"}
    assert get(server, "/api/stream?context=accounts").status == 400
    bad = get(server, "/api/stream?context=accounts&id=u&at=bad")
    assert bad.status == 400 and "does not parse" in json.loads(bad.body)["error"]


def test_the_feed_starts_with_a_snapshot_and_ends_when_the_monitor_stops(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/events")
    response = conn.getresponse()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline() == b"retry: 1000\n"
    assert response.readline() == b"\n"
    assert response.readline() == b"event: hello\n"
    assert json.loads(response.readline()[len(b"data: "):])["events"] == []
    server.view.hub.publish("stats", {"n": 1})
    assert response.readline() == b"\n"
    assert response.readline() == b"event: stats\n"
    server.view.hub.close()
    assert response.read() == b'data: {"n":1}\n\n'  # then the response ends
    conn.close()
