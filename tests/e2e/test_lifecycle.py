"""A node's life from start to exit, with real processes and real signals: crash loops end the
node (issue 12 item 5), SIGTERM at any moment of start stops it cleanly (item 9), its files
are private (item 8), an endpoint reachable from other hosts needs CURVE or --insecure
(issue 11 item 4), and common.keepalive keeps a router up and stops it cleanly (item 6)."""
from __future__ import annotations

import glob
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

from common import config, runtime
from tests.support import bus
from tests.support.dealer import Dealer
from tests.support.dialogue import init_ok
from tests.support.nodeproc import (ROOT, RUN_NODE, VENV_BIN, alive, cmdline, descendants,
                                    wait_until)
from tests.support.ports import free_port_pair
from tests.support.service import role_endpoints, service_env, start_module

# The tests set the CQRS_* variables they mean; none may come from the shell running them.
NO_CQRS = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_")}
VENV_PYTHON = os.path.join(VENV_BIN, "python")
STOP_WITHIN = 10.0  # seconds from SIGTERM to exit, however early it came


# ---- what a node leaves behind -----------------------------------------------------------

def launched_by(launcher: int) -> list[int]:
    """Live processes started by this launcher, wherever they are now in the process tree:
    the launcher names itself in its children's environment (config.child_env), and an
    orphan keeps that environment."""
    marker = f"{config.setting('launcher_pid').var}={launcher}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if marker in environ and alive(int(entry)):
            found.append(int(entry))
    return found


def runtime_folders_of(launcher: int) -> list[str]:
    """Runtime folders this launcher made (marked with its pid) that still exist."""
    pattern = os.path.join(tempfile.gettempdir(), runtime.PREFIX + "*")
    return [f for f in glob.glob(pattern) if runtime.owner(f) == launcher]


def logged_runtime_folder(stderr: str) -> str | None:
    """The runtime folder named by the `events endpoint:` line, if the node got that far."""
    m = re.search(r"^events endpoint: ipc://(\S+)/events\.sock$", stderr, re.M)
    return m.group(1) if m else None


def assert_nothing_left(launcher: int, stderr: str) -> None:
    assert launched_by(launcher) == [], stderr[-3000:]
    folder = logged_runtime_folder(stderr)
    if folder is not None:
        assert not os.path.exists(folder), stderr[-3000:]
    assert runtime_folders_of(launcher) == [], stderr[-3000:]


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (its SigCgt mask in /proc);
    True once it is gone, as there is nothing left to wait for."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return True


class Launcher:
    """run_node.py (or another command) with stdin held open, stdout and stderr to files."""

    def __init__(self, tmp_path: Path, argv: list[str], env: dict[str, str] | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        self.out_path, self.err_path = tmp_path / "stdout", tmp_path / "stderr"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                         env={**NO_CQRS, **(env or {})}, cwd=ROOT,
                                         preexec_fn=preexec)
        self.pid = self.proc.pid

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stdout_lines(self) -> list[str]:
        return self.out_path.read_text(errors="replace").splitlines()

    def send(self, *bodies: dict) -> None:
        self.proc.stdin.write(b"".join(json.dumps(b).encode() + b"\n" for b in bodies))
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s; stderr:\n{self.stderr()[-3000:]}")

    def kill(self) -> None:
        """Teardown: nothing of this test may outlive it, whatever the test found."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in launched_by(self.pid) + [p for p in descendants(self.pid) if alive(p)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass


@pytest.fixture
def launch(tmp_path: Path):
    started: list[Launcher] = []

    def start(argv: list[str], env: dict[str, str] | None = None,
              preexec: Callable[[], None] | None = None, name: str = "") -> Launcher:
        folder = tmp_path / (name or f"run-{len(started)}")
        folder.mkdir()
        node = Launcher(folder, argv, env, preexec)
        started.append(node)
        return node

    yield start
    for node in started:
        node.kill()


def node_argv(*args: str, python: str = sys.executable) -> list[str]:
    return [python, RUN_NODE, *args]


# ---- A. no silent crash loops -----------------------------------------------------------------

@pytest.mark.parametrize("role,request_,name", [
    ("read", bus.get_user("user-123", msg_id=2), "read side 1"),
    ("write", bus.create("Ann", "ann@example.com", msg_id=2), "write side"),
], ids=["read side", "write side"])
def test_a_crash_loop_answers_error_11_with_the_reason_and_exits_1(launch, role, request_, name):
    """A side that raises at every start is restarted 4 times, then not again: what the node
    holds is answered with error 11 naming the reason, and the node exits 1 on its own (stdin
    still open), leaving no process and no runtime folder."""
    node = launch(node_argv(), env={config.setting("fault_crash_at_start").var: role})
    # The router answers init alone: once it has, it reads stdin, so the request below is
    # surely held by the router (not left unread) when the crash loop is declared.
    node.send({"type": "init", "msg_id": 1})
    assert wait_until(lambda: node.stdout_lines(), 20), node.stderr()[-3000:]
    assert node.stdout_lines() == [json.dumps(init_ok(1))]
    node.send(request_)
    assert node.wait(60) == 1
    reason = f"{name} crashed 5 times within 60 s; see stderr"
    replies = [json.loads(line) for line in node.stdout_lines()[1:]]
    assert replies == [{"type": "error", "in_reply_to": 2, "code": 11,
                        "text": f"temporarily unavailable: {reason}"}], node.stderr()[-3000:]
    err = node.stderr()
    assert f"not restarting {name} again: {reason}" in err
    assert len(re.findall(rf"{name} \(pid \d+\) exited with status 1", err)) == 5
    assert err.count(f"names {role}: crashing at start on purpose") == 5  # each start raised
    assert_nothing_left(node.pid, err)


def test_keepalive_gives_up_on_a_crash_loop_with_status_1(launch, tmp_path):
    """Service mode: keepalive restarts a process that dies at every start 4 times, then exits
    1 with the reason on stderr (a crash loop never ends in status 0)."""
    env = {**service_env(role_endpoints(), tmp_path / "data"),
           config.setting("fault_crash_at_start").var: "router"}
    keeper = launch([VENV_PYTHON, "-m", "common.keepalive", VENV_PYTHON, "-m", "router"], env)
    assert keeper.wait(60) == 1
    err = keeper.stderr()
    assert len(re.findall(r"keepalive: router \(pid \d+\) exited with status 1; restarting in",
                          err)) == 4
    assert re.search(r"keepalive: router \(pid \d+\) exited with status 1; not restarting it: "
                     r"router crashed 5 times within 60 s; see stderr", err), err[-3000:]
    assert err.count("names router: crashing at start on purpose") == 5


# ---- B. prompt, clean stops ---------------------------------------------------------------------

DELAYS = [0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0]


def pythons() -> list:
    """The project's python, and where there is one, a python without pyzmq: run_node.py
    then re-runs itself under the .venv, and a stop must survive that exec too."""
    found = [pytest.param(sys.executable, id="venv")]
    for candidate in ("/usr/bin/python3", "/bin/python3"):
        if os.path.exists(candidate) and subprocess.run(
                [candidate, "-c", "import zmq"], capture_output=True, env=NO_CQRS).returncode:
            found.append(pytest.param(candidate, id="re-exec"))
            break
    return found


@pytest.mark.parametrize("python", pythons())
@pytest.mark.parametrize("delay", DELAYS)
def test_sigterm_at_any_moment_of_start_exits_0_leaving_nothing(launch, python, delay):
    """SIGTERM `delay` seconds into start (stdin open, so only the signal can end the node):
    exit 0 within STOP_WITHIN seconds, no process and no runtime folder left.

    The signal goes no earlier than the moment the process catches SIGTERM: before that the
    Python interpreter itself is starting (10 to 40 ms), no line of run_node.py has run, and
    a signal kills it as it would any program (that moment: test_sigterm_before_the_first_line_...)."""
    node = launch(node_argv(python=python))
    time.sleep(delay)  # the moment of start under test, not a wait for a condition
    assert wait_until(lambda: catches_sigterm(node.pid), 10, 0.001)
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait(STOP_WITHIN) == 0, node.stderr()[-3000:]
    assert node.stdout_lines() == []
    assert_nothing_left(node.pid, node.stderr())


def test_sigterm_while_run_node_re_runs_itself_exits_0(launch):
    """The moment after run_node.py has re-run itself under the .venv's python (exec: its
    handler is gone) and before the new image has caught SIGTERM again: the signal waits,
    blocked across exec, for the new image's handler. Exit 0, nothing left."""
    plain = [p.values[0] for p in pythons() if p.id == "re-exec"]
    if not plain:
        pytest.skip("no python without pyzmq here: run_node.py never re-runs itself")
    node = launch(node_argv(python=plain[0]))

    def between_images() -> bool:
        argv = cmdline(node.pid)
        return bool(argv) and argv[0] == VENV_PYTHON.encode() and not catches_sigterm(node.pid)

    # Polled closely: the new interpreter takes 10 to 40 ms to reach its first line.
    if not wait_until(between_images, 10, 0.0005):
        pytest.skip("the new image caught SIGTERM before the test saw the exec (a busy host)")
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait(STOP_WITHIN) == 0, node.stderr()[-3000:]
    assert_nothing_left(node.pid, node.stderr())


def _block_sigterm() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def test_sigterm_before_the_first_line_is_honoured_by_that_line(launch):
    """A SIGTERM held pending across exec (as run_node.py holds it when it re-runs itself
    under the .venv) reaches the handler run_node.py installs first: exit 0, nothing left.
    The signal is sent before the interpreter has run anything."""
    node = launch(node_argv(), preexec=_block_sigterm)
    node.proc.send_signal(signal.SIGTERM)
    assert node.wait(STOP_WITHIN) == 0, node.stderr()[-3000:]
    assert_nothing_left(node.pid, node.stderr())


# ---- C. private files -----------------------------------------------------------------------------

def modes(folder: Path) -> dict[str, str]:
    """Every entry under folder, with its permission bits in octal."""
    return {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode))
            for p in sorted(folder.rglob("*"))}


def _loose_umask() -> None:
    os.umask(0o022)  # what most shells give: the node must not rely on a stricter one


def test_a_new_data_folder_and_every_file_in_it_are_private(launch, tmp_path):
    data = tmp_path / "new" / "data"  # neither folder exists yet
    node = launch(node_argv("--data-dir", str(data)), preexec=_loose_umask,
                  env={config.setting("snapshot_min").var: "1"})
    node.send(*(bus.create(f"P{i}", f"p{i}@example.com", msg_id=i) for i in range(1, 21)))
    assert wait_until(lambda: len(node.stdout_lines()) == 20, 30), node.stderr()[-3000:]
    assert all(json.loads(line)["success"] for line in node.stdout_lines())
    # The read side's snapshot (a tiny minimum, so it comes soon) and the WAL of a running store.
    assert wait_until(lambda: (data / "read-side.snapshot").exists(), 30), modes(data)
    running = modes(data)
    assert any(name.endswith("-wal") for name in running), running
    node.proc.stdin.close()
    assert node.wait(30) == 0, node.stderr()[-3000:]
    for files in (running, modes(data)):
        assert files and files == {name: "0o600" for name in files}, files
    assert oct(stat.S_IMODE(data.stat().st_mode)) == "0o700"
    assert oct(stat.S_IMODE(data.parent.stat().st_mode)) == "0o700"


# ---- D. secure by default across hosts -----------------------------------------------------------

def test_a_bind_beyond_loopback_without_curve_exits_2_and_starts_nothing(launch, tmp_path):
    folder = tmp_path / "runtime"
    node = launch(node_argv("--events-endpoint", f"tcp://0.0.0.0:{free_port_pair()}",
                            "--runtime-dir", str(folder)))
    assert node.wait(30) == 2
    err = node.stderr()
    assert "can be reached from other hosts, and CURVE is off" in err
    assert "--insecure" in err and "events endpoint:" not in err
    assert not folder.exists()  # made before the first child starts: it never got there
    assert_nothing_left(node.pid, err)


def test_insecure_allows_a_bind_beyond_loopback(launch):
    endpoint = f"tcp://0.0.0.0:{free_port_pair()}"
    node = launch(node_argv("--insecure", "--events-endpoint", endpoint))
    node.send({"type": "init", "msg_id": 1}, bus.get_user("user-123", msg_id=2))
    assert wait_until(lambda: len(node.stdout_lines()) == 2, 30), node.stderr()[-3000:]
    assert json.loads(node.stdout_lines()[1])["data"] == {"id": "user-123", "name": "John Doe"}
    assert f"events endpoint: {endpoint}" in node.stderr()
    node.proc.stdin.close()
    assert node.wait(30) == 0
    assert_nothing_left(node.pid, node.stderr())


@pytest.mark.parametrize("module,role", [("router", "CLIENT"), ("router", "READ"),
                                         ("write_side", "EVENTS"), ("write_side", "CATCHUP")])
def test_a_service_process_refuses_a_bind_beyond_loopback(launch, tmp_path, module, role):
    endpoints = role_endpoints()
    endpoints[role] = endpoints[role].replace("127.0.0.1", "0.0.0.0")
    proc = launch([VENV_PYTHON, "-m", module], service_env(endpoints, tmp_path / "data"))
    assert proc.wait(30) == 2
    flag = f"--{role.lower()}-endpoint"
    assert f"{endpoints[role]} ({flag}, CQRS_{role}_ENDPOINT) can be reached from other hosts" \
        in proc.stderr()
    assert not (tmp_path / "data").exists()  # the write side never opened its store


# ---- E. keepalive keeps the router up ------------------------------------------------------------

def router_pids(keeper: Launcher) -> list[int]:
    return [pid for pid in descendants(keeper.pid)
            if cmdline(pid)[1:3] == [b"-m", b"router"] and alive(pid)]


def test_keepalive_restarts_a_killed_router_and_stops_it_cleanly(launch, tmp_path):
    endpoints = role_endpoints()
    env = service_env(endpoints, tmp_path / "data")
    keeper = launch([VENV_PYTHON, "-m", "common.keepalive", VENV_PYTHON, "-m", "router"], env,
                    name="keepalive")
    sides = [start_module(m, env, tmp_path, tmp_path / f"{m}.err")
             for m in ("write_side", "read_side")]
    client = Dealer(endpoints["CLIENT"])
    try:
        assert wait_until(lambda: client.serves(1, 5), 60, 0), keeper.stderr()[-3000:]
        [first] = router_pids(keeper)
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: router_pids(keeper) not in ([], [first]), 20), \
            keeper.stderr()[-3000:]
        assert f"keepalive: router (pid {first}) exited with status -9; restarting in" \
            in keeper.stderr()
        # The same client and the back-ends reconnect to the new router by themselves.
        assert wait_until(lambda: client.serves(2, 5), 60, 0), keeper.stderr()[-3000:]
        [second] = router_pids(keeper)

        keeper.proc.send_signal(signal.SIGTERM)
        assert keeper.wait(STOP_WITHIN) == 0, keeper.stderr()[-3000:]
        assert not alive(second)  # keepalive passed the signal on and waited for it
    finally:
        client.close()
        for side in sides:
            side.terminate()
            side.wait(20)
