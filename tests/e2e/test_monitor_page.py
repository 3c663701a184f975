"""The monitor's live page in a real browser: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium (apt-get install
chromium), with background networking off, since the machine has no network. Without
Chromium or Playwright the tests are skipped with the reason, unless CQRS_REQUIRE_BROWSER=1
(set by .ci/run), where they fail instead.

One test takes a screenshot; with UPDATE_SCREENSHOT=1 it becomes docs/dashboard.png, the README's picture.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.support import envelope
from tests.support.dialogue import unique
from tests.support.nodeproc import ROOT, Node, alive, cmdline, role_pid, wait_until
from tests.support.ports import free_ports

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(ROOT) / "docs" / "dashboard.png"
DEADLINE_MS = 30_000  # generous: a busy 2-core machine


def _unavailable(reason: str) -> None:
    if os.environ.get("CQRS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a browser is required here (CQRS_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                  args=CHROMIUM_ARGS)
        except Error as exc:
            _unavailable(f"{CHROMIUM} does not start: {exc}")
        yield chromium
        chromium.close()


class Dashboard:
    """A node with a monitor, and the page open on it; console errors are collected."""

    def __init__(self, browser, node_factory, *args: str) -> None:
        self.port = free_ports(1)[0]
        self.node: Node = node_factory("--http-port", str(self.port), *args)
        self.context = browser.new_context(viewport={"width": 1360, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(DEADLINE_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.msg_id = 0
        # The monitor may need a moment to bind: the node has only just started.
        assert wait_until(self._opened, 30, 0.2), f"the page never loaded\n{self.node.stderr()}"
        self.wait_live()

    def wait_live(self) -> None:
        """The page is fed and the router answers the monitor."""
        try:
            self.page.wait_for_selector("#status.live")
        except Exception:
            status = self.page.locator("#status").inner_text()
            raise AssertionError(f"the page says {status!r}; console errors {self.errors}\n"
                                 f"{self.node.stderr()[-3000:]}") from None

    def _opened(self) -> bool:
        try:
            self.page.goto(f"http://127.0.0.1:{self.port}/", timeout=5_000)
            return True
        except Exception:  # connection refused while the monitor binds
            return False

    def request(self, body: dict) -> dict:
        self.msg_id += 1
        return self.node.request({**body, "msg_id": self.msg_id}, timeout=30)

    def create(self, uid: str, name: str) -> None:
        reply = self.request(envelope.create(uid, name))
        assert reply["success"], reply

    def look(self, pid: int) -> tuple[int, str]:
        """A process's lag and its row's text with the lag cell's classes, read at once (a
        new sample may redraw the row between two reads)."""
        lag, text = self.page.locator(f'#process-rows tr[data-pid="{pid}"]').evaluate(
            "row => { const cell = row.querySelector('td.lag');"
            "         return [cell.textContent, `${row.innerText} ${cell.className}`]; }")
        return int(re.sub(r"[^0-9]", "", lag) or 0), text

    def wait_look(self, pid: int, check) -> int:
        """Wait until check(lag, look) holds for the process's row; its lag then."""
        seen: list[tuple[int, str]] = []

        def holds() -> bool:
            seen[:] = [self.look(pid)]
            return check(*seen[0])

        assert wait_until(holds, DEADLINE_MS / 1000, 0.1), f"pid {pid} looked {seen}"
        return seen[0][0]

    def close(self) -> None:
        self.context.close()


@contextmanager
def traffic(board: Dashboard, queries: bool) -> Iterator[None]:
    """Commands (and queries) from a thread, paced, until the block ends: bounded in count
    and in time, and joined before the block is left."""
    stop = threading.Event()

    def send() -> None:
        for n in range(2_000):
            if stop.is_set():
                return
            uid = unique("traffic")
            board.create(uid, f"User {n}")
            if queries:
                board.request(envelope.get_user(uid))
                board.request(envelope.get_user("user-123"))
            stop.wait(0.02)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive(), "the traffic did not stop"


@pytest.fixture
def dashboard(browser, node_factory) -> Iterator[Dashboard]:
    board = Dashboard(browser, node_factory)
    yield board
    board.close()


def test_the_page_loads_cleanly_and_shows_a_new_command_within_3_seconds(dashboard):
    page = dashboard.page
    for panel in ("#chart", "#process-rows", "#event-rows", "#stream-form", "#type-rows"):
        assert page.locator(panel).count() == 1
    # The sample data's events are there from the start: the monitor replays the store.
    page.wait_for_selector('#event-rows tr td:text-is("user-123")')
    roles = page.locator("#process-rows tr").evaluate_all("rows => rows.map(r => r.dataset.role)")
    assert sorted(roles) == ["monitor", "read", "router", "write"]
    uid = unique("page")
    started = time.monotonic()
    dashboard.create(uid, "Seen On The Page")
    page.wait_for_selector(f'#event-rows tr td:text-is("{uid}")', timeout=3_000)
    assert time.monotonic() - started < 3.0 + 1.0  # the reply itself takes a moment too
    row = page.locator(f'#event-rows tr:has(td:text-is("{uid}"))')
    assert "UserCreated" in row.inner_text() and "Seen On The Page" in row.inner_text()
    # The filters keep only what they name.
    page.fill("#event-stream", uid)
    assert page.locator("#event-rows tr").count() == 1
    page.select_option("#event-context", "directory")
    assert page.locator("#event-rows tr").count() == 0
    assert dashboard.errors == []


def test_a_stopped_replica_shows_a_growing_lag_that_falls_after_it_resumes(browser,
                                                                            node_factory):
    board = Dashboard(browser, node_factory, "--read-replicas", "2")
    try:
        page = board.page
        readers = [p for p in board.node.children() if b"read_side" in cmdline(p)]
        assert len(readers) == 2
        for pid in readers:
            page.wait_for_selector(f'#process-rows tr[data-pid="{pid}"] .state-ready')
        victim, other = readers
        os.kill(victim, signal.SIGSTOP)
        try:
            with traffic(board, queries=False):
                first = board.wait_look(victim, lambda lag, look: lag >= 20 and "growing" in look)
                board.wait_look(victim, lambda lag, look: lag >= first + 20 and "growing" in look)
                board.wait_look(victim, lambda lag, look: "not reporting" in look)
            # The other replica kept up: once the commands stop, it is at the head.
            board.wait_look(other, lambda lag, look: lag == 0 and "ready" in look)
            assert board.look(victim)[0] >= first + 20
        finally:
            os.kill(victim, signal.SIGCONT)
        board.wait_look(victim, lambda lag, look: lag == 0 and "ready" in look)
    finally:
        board.close()


def test_the_stream_browser_shows_a_history_and_a_past_state(dashboard):
    page = dashboard.page
    page.select_option("#stream-context", "accounts")
    page.fill("#stream-id", "user-123")
    page.fill("#stream-at", "2024-01-15T00:00:00Z")
    page.click("#stream-show")
    page.wait_for_selector("#history-rows tr >> nth=2")
    history = page.locator("#history-rows tr").all_inner_texts()
    assert len(history) == 3
    assert ["UserCreated", "UserRenamed", "UserRenamed"] == [
        re.split(r"\t", row)[2].strip() for row in history]
    state = page.locator("#stream-state")
    assert "version 2" in state.inner_text() and '"John Doe"' in state.inner_text()
    # Rows after the chosen time are greyed; clicking the first shows the state right then.
    assert page.locator("#history-rows tr.after").count() == 1
    page.locator("#history-rows tr").first.click()
    page.wait_for_function("() => document.querySelector('#stream-state').textContent"
                           ".includes('version 1')")
    assert '"John"' in state.inner_text()
    # Before the stream began it had no state.
    page.fill("#stream-at", "2023-06-01T00:00:00Z")
    page.click("#stream-show")
    page.wait_for_selector("#stream-state .none")
    # A live event opens its stream in the browser when clicked.
    uid = unique("click")
    dashboard.create(uid, "Clicked")
    page.locator(f'#event-rows tr:has(td:text-is("{uid}"))').click()
    page.wait_for_function("uid => document.querySelector('#stream-summary').textContent"
                           ".includes(`${uid}: 1 events`)", arg=uid)
    assert '"Clicked"' in state.inner_text()
    assert dashboard.errors == []


def test_the_page_reconnects_by_itself_when_the_monitor_restarts(dashboard):
    page = dashboard.page
    old = role_pid(dashboard.node, "monitor")
    os.kill(old, signal.SIGKILL)
    assert wait_until(lambda: not alive(old), 30)
    page.wait_for_selector("#status.down")  # the feed broke
    # The launcher restarts the monitor; the page's EventSource finds it again.
    page.wait_for_selector("#status.live")
    assert role_pid(dashboard.node, "monitor") != old
    uid = unique("again")
    dashboard.create(uid, "After The Restart")
    page.wait_for_selector(f'#event-rows tr td:text-is("{uid}")', timeout=3_000)


def test_dashboard_screenshot(dashboard, tmp_path):
    """Some steady traffic for a few seconds, then a screenshot: in the test's folder, and
    into docs/dashboard.png (the README's picture) only when UPDATE_SCREENSHOT=1, so a
    test run leaves the working tree as it was."""
    page = dashboard.page
    with traffic(dashboard, queries=True):
        # Enough samples for the chart to show lines (the page gets one a second).
        page.wait_for_function("() => document.querySelectorAll('#chart path').length === 3 "
                               "&& page.rates.filter(r => r[1] > 0).length >= 8")
    page.select_option("#stream-context", "accounts")
    page.fill("#stream-id", "user-123")
    page.fill("#stream-at", "2024-01-15T00:00:00Z")
    page.click("#stream-show")
    page.wait_for_selector("#history-rows tr >> nth=2")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert dashboard.errors == []
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)
