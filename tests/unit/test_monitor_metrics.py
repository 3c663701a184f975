"""What the monitor makes of a stats reply and the event stream: its view (monitor.view) and
the Prometheus metrics built from it at scrape time (monitor.metrics)."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.buckets import BATCH_SIZES, COMMIT_MICROSECONDS, FlatHistogram
from monitor import metrics
from monitor.view import SILENT_KEPT, NodeView
from router.request_stats import LATENCY_BOUNDS, RequestStats


def write_counters() -> dict:
    sizes, commits = FlatHistogram("batch_size", BATCH_SIZES), FlatHistogram("commit_us",
                                                                               COMMIT_MICROSECONDS)
    for size, micros in ((1, 800), (3, 1_500), (5000, 3_000_000)):
        sizes.observe(size)
        commits.observe(micros)
    return {"commands": 5004, "published": 5004, "catchup_served": 2, "dropped_messages": 1,
            **sizes.counters(), **commits.counters()}


def stats(head: int = 10, read_position: int = 10, router_pid: int = 100,
          answered: dict | None = None, with_read: bool = True) -> dict:
    requests = RequestStats()
    for kind, body, seconds in (("command", {"type": "command_result", "success": True}, 0.002),
                                ("command", {"type": "command_result", "success": False}, 0.2),
                                ("query", "rendered", 0.0004),
                                ("query", {"type": "error", "code": 0}, 7.0)):
        requests.answered_after(kind, body, seconds)
    router = {"role": "router", "pid": router_pid, "head": head, "pending": 2,
              "dropped_messages": 3, "restarts": {"read side 1": 1}, **requests.as_dict()}
    if answered is not None:
        router["answered"] = answered
    processes = [{"role": "write", "pid": 201, "ready": True, "position": head, "lag": 0,
                  "counters": write_counters()}]
    if with_read:
        processes.append({"role": "read", "pid": 301, "ready": True, "position": read_position,
                          "lag": head - read_position,
                          "counters": {"gaps": 2, "catchups": 3, "duplicates": 4,
                                       "caught_up_events": 5, "queries": 6,
                                       "dropped_messages": 0}})
    return {"router": router, "processes": processes}


def scrape(view: NodeView) -> dict[str, dict[tuple, float]]:
    """family name -> {(sample name, sorted labels): value}, through the real parser."""
    text = generate_latest(metrics.registry(view)).decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("cqrs_"), family.name
        for sample in family.samples:
            out.setdefault(family.name, {})[(sample.name, tuple(sorted(sample.labels.items())))] \
                = sample.value
    return out


def test_requests_by_kind_and_outcome_and_their_latency_histogram():
    view = NodeView()
    view.on_stats(stats(), now=1000.0)
    families = scrape(view)
    requests = families["cqrs_requests"]
    assert requests[("cqrs_requests_total", (("kind", "command"), ("outcome", "ok"),
                                             ("pid", "100")))] == 1
    assert requests[("cqrs_requests_total", (("kind", "command"), ("outcome", "rejected"),
                                             ("pid", "100")))] == 1
    assert requests[("cqrs_requests_total", (("kind", "query"), ("outcome", "timeout"),
                                             ("pid", "100")))] == 1
    durations = families["cqrs_request_duration_seconds"]
    labels = (("kind", "command"), ("le", "0.0025"), ("pid", "100"))
    assert durations[("cqrs_request_duration_seconds_bucket", labels)] == 1  # the 2 ms one
    labels = (("kind", "command"), ("le", "+Inf"), ("pid", "100"))
    assert durations[("cqrs_request_duration_seconds_bucket", labels)] == 2
    assert durations[("cqrs_request_duration_seconds_count",
                      (("kind", "command"), ("pid", "100")))] == 2
    # The 7 s query is above every bound but one: counted in 10 s and +Inf only.
    query = {dict(k[1]).get("le"): v for k, v in durations.items()
             if k[0].endswith("_bucket") and dict(k[1])["kind"] == "query"}
    assert query["5"] == 1 and query["10"] == 2 and query["+Inf"] == 2
    assert len(query) == len(LATENCY_BOUNDS) + 1


def test_write_side_histograms_come_from_its_integer_counters():
    view = NodeView()
    view.on_stats(stats(), now=1000.0)
    families = scrape(view)
    sizes = families["cqrs_write_batch_size"]
    assert sizes[("cqrs_write_batch_size_bucket", (("le", "1"), ("pid", "201")))] == 1
    assert sizes[("cqrs_write_batch_size_bucket", (("le", "2048"), ("pid", "201")))] == 2
    assert sizes[("cqrs_write_batch_size_bucket", (("le", "+Inf"), ("pid", "201")))] == 3
    assert sizes[("cqrs_write_batch_size_sum", (("pid", "201"),))] == 5004
    commits = families["cqrs_write_commit_duration_seconds"]
    assert commits[("cqrs_write_commit_duration_seconds_bucket",
                    (("le", "0.001"), ("pid", "201")))] == 1
    assert commits[("cqrs_write_commit_duration_seconds_bucket",
                    (("le", "2.5"), ("pid", "201")))] == 2
    assert commits[("cqrs_write_commit_duration_seconds_count", (("pid", "201"),))] == 3
    assert abs(commits[("cqrs_write_commit_duration_seconds_sum", (("pid", "201"),))]
               - 3.0023) < 1e-9
    assert families["cqrs_write_commands"][("cqrs_write_commands_total",
                                            (("pid", "201"),))] == 5004


def test_process_figures_subscription_counters_restarts_and_events_appended():
    view = NodeView()
    view.apply_event({"position": 1, "context": "accounts", "stream_id": "u", "version": 1,
                      "type": "UserCreated", "data": {"name": "A"},
                      "recorded_at": "2024-01-01T00:00:00.000000Z", "event_id": "x"})
    view.set_own(1, 10, True, {"gaps": 0, "catchups": 1, "duplicates": 0,
                               "caught_up_events": 1, "dropped_messages": 0})
    view.on_stats(stats(head=10, read_position=7), now=1000.0)
    families = scrape(view)
    lag = families["cqrs_process_lag_events"]
    assert lag[("cqrs_process_lag_events", (("pid", "301"), ("role", "read")))] == 3
    assert lag[("cqrs_process_lag_events", (("pid", str(view.pid)), ("role", "monitor")))] == 9
    gaps = families["cqrs_subscription_gaps"]
    assert gaps[("cqrs_subscription_gaps_total", (("pid", "301"), ("role", "read")))] == 2
    assert families["cqrs_subscription_duplicates"][
        ("cqrs_subscription_duplicates_total", (("pid", "301"), ("role", "read")))] == 4
    dropped = families["cqrs_dropped_messages"]
    assert dropped[("cqrs_dropped_messages_total", (("pid", "100"), ("role", "router")))] == 3
    assert dropped[("cqrs_dropped_messages_total", (("pid", "201"), ("role", "write")))] == 1
    assert families["cqrs_restarts"][("cqrs_restarts_total",
                                      (("pid", "100"), ("process", "read side 1")))] == 1
    assert families["cqrs_processes_seen"][("cqrs_processes_seen_total",
                                            (("pid", str(view.pid)), ("role", "read")))] == 1
    assert families["cqrs_events_appended"][
        ("cqrs_events_appended_total", (("context", "accounts"), ("type", "UserCreated")))] == 1
    assert families["cqrs_head_position"][("cqrs_head_position", ())] == 10
    assert families["cqrs_up"][("cqrs_up", ())] == 0  # scraped long after now=1000


def test_a_process_the_router_stops_reporting_stays_with_a_growing_lag_then_goes():
    view = NodeView()
    view.on_stats(stats(head=10, read_position=10), now=1000.0)
    view.on_stats(stats(head=50, with_read=False), now=1001.0)
    with view.lock:
        rows = {p["role"]: p for p in view.processes(1001.5)}
    silent = rows["read"]
    assert (silent["pid"], silent["position"], silent["lag"]) == (301, 10, 40)
    assert not silent["reporting"] and not silent["ready"] and silent["silent_for"] == 1.5
    assert rows["write"]["reporting"]
    view.on_stats(stats(head=60, with_read=False), now=1000.0 + SILENT_KEPT + 1)
    with view.lock:
        assert "read" not in {p["role"] for p in view.processes(1000.0 + SILENT_KEPT + 1)}
    assert view.pids_seen == {"write": {201}, "read": {301}}


def test_rates_come_from_consecutive_replies_of_the_same_router():
    view = NodeView()
    pages = view.hub.subscribe()
    view.on_stats(stats(head=10, answered={"command": {"ok": 10}, "query": {"ok": 4}}),
                  now=1.0, wall=100.0)
    view.on_stats(stats(head=30, answered={"command": {"ok": 30, "rejected": 10},
                                           "query": {"ok": 8}}), now=3.0, wall=102.0)
    assert list(view.rates) == [[102000, 15.0, 2.0, 10.0]]
    # Another router (restarted): its counters start again, so no rate from this pair.
    view.on_stats(stats(head=31, router_pid=101, answered={"command": {"ok": 1}}),
                  now=4.0, wall=103.0)
    assert len(view.rates) == 1
    sent = [pages.get_nowait() for _ in range(pages.qsize())]
    assert len(sent) == 3 and all(text.startswith("event: stats\n") for text in sent)
    assert '"rate":[102000,15.0,2.0,10.0]' in sent[1]


def test_new_events_go_to_the_pages_in_one_message_with_what_was_skipped():
    view = NodeView()
    pages = view.hub.subscribe()
    for n in range(1, 106):
        view.apply_event({"position": n, "context": "directory", "stream_id": f"s{n}",
                          "version": 1, "type": "UserCreated", "data": {},
                          "recorded_at": "2024-01-01T00:00:00.000000Z", "event_id": "x"})
    view.flush_events()
    view.flush_events()  # nothing new: nothing sent
    sent = [pages.get_nowait() for _ in range(pages.qsize())]
    assert len(sent) == 1 and sent[0].startswith("event: events\n")
    assert '"skipped":5' in sent[0] and '"position":6,' in sent[0]
    assert '"position":5,' not in sent[0]
    assert len(view.snapshot(0.0)["events"]) == 105
