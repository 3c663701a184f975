#!/usr/bin/env python3
"""Run the sample cases against the node, each on a fresh node, the way a grader does.

    python tests/conformance/run.py [--node 'python run_node.py'] [--cases FILE] [-k TEXT]

A case (one JSON object a line in cases.jsonl, beside this file) has a `name`, the
`input` lines and the `expect`ed reply lines. For each case a new node is started in
the project folder; the input lines are written and stdin is closed at once; within
--deadline seconds (5, as the grader allows) the node must write exactly one line per
input line, each matching its expected line, and exit with status 0. An expected line
is literal text in which `.*` stands for any run of characters (a random id, say).

Prints one line per case, then `N passed, M failed`; exit status 0 only when none
failed. Standard library only, so any python3 runs it (run_node.py moves itself into
the project's .venv when the interpreter lacks its packages).
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WILDCARD = ".*"
DEADLINE = 5.0  # seconds from closing stdin to the last reply line and the exit


@dataclass
class Case:
    name: str
    input: list[str]
    expect: list[str]


def load(path: str) -> list[Case]:
    """The cases of a JSON-lines file; blank lines are skipped."""
    cases = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            raw = json.loads(text)
            try:
                cases.append(Case(str(raw["name"]), list(raw["input"]), list(raw["expect"])))
            except (KeyError, TypeError) as exc:
                raise SystemExit(f"{path}:{number}: not a case (name, input, expect): {exc}")
    return cases


def matches(expected: str, line: str) -> bool:
    """Whether `line` is `expected`, each `.*` in it standing for any run of characters.

    The literal pieces between wildcards must appear in order: the first at the start,
    the last at the end, each middle one at its leftmost place after the one before
    (leftmost is never worse: it leaves the most room for the pieces that follow)."""
    pieces = expected.split(WILDCARD)
    if len(pieces) == 1:
        return line == expected
    first, *middle, last = pieces
    end = len(line) - len(last)
    if end < len(first) or not line.startswith(first) or not line.endswith(last):
        return False
    at = len(first)
    for piece in middle:
        found = line.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


@dataclass
class Outcome:
    lines: list[str]       # what the node wrote on stdout, one entry a line
    status: int | None     # its exit status; None if it had not exited by the deadline
    stdout_closed: bool    # stdout reached its end by the deadline
    stderr: str


def run_node(command: Sequence[str], lines: Sequence[str], deadline: float) -> Outcome:
    """Start the node, write `lines`, close stdin, and collect stdout until it ends or
    `deadline` seconds pass; then wait, up to the same deadline, for the exit."""
    with tempfile.TemporaryFile() as err:
        # A session of its own, so a node that overruns is stopped with all its processes.
        proc = subprocess.Popen(list(command), cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write("".join(line + "\n" for line in lines).encode())
            proc.stdin.close()
        except BrokenPipeError:  # it died before reading: its output tells why
            pass
        until = time.monotonic() + deadline
        data, closed = _read_until(proc.stdout, until)
        try:
            status: int | None = proc.wait(max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = None
        if status is None or not closed:
            _stop(proc)
        proc.stdout.close()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    lines = data.decode("utf-8", "replace").split("\n")
    if lines[-1] == "":
        lines.pop()  # after the newline that ends the last line (or in empty output)
    return Outcome(lines, status, closed, stderr)


def _read_until(stream, until: float) -> tuple[bytes, bool]:
    """Everything `stream` gives until its end or the monotonic time `until`; (bytes, ended)."""
    chunks = []
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while (left := until - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:
                return b"".join(chunks), True
            chunks.append(chunk)
    return b"".join(chunks), False


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def verdict(case: Case, outcome: Outcome, deadline: float) -> str:
    """'' when the node did what the case expects, else what went wrong."""
    tail = "\n        ".join(outcome.stderr.strip().split("\n")[-8:])  # the end tells most
    where = f"\n      stderr: {tail}" if tail else ""
    if len(outcome.lines) < len(case.expect):
        late = "" if outcome.stdout_closed else f" within {deadline:g} s"
        return (f"{len(outcome.lines)} reply lines{late}, want {len(case.expect)}: "
                f"{outcome.lines}{where}")
    for number, (got, want) in enumerate(zip(outcome.lines, case.expect), 1):
        if not matches(want, got):
            return f"reply {number}:\n      got  {got}\n      want {want}"
    if len(outcome.lines) > len(case.expect):
        # stdout carries replies and nothing else: an extra line breaks the pairing.
        return f"{len(outcome.lines) - len(case.expect)} lines more than the replies: " \
               f"{outcome.lines[len(case.expect):]}"
    if outcome.status is None:
        return f"no exit within {deadline:g} s after stdin closed{where}"
    if outcome.status != 0:
        return f"exit status {outcome.status}, want 0{where}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", default=f"{shlex.quote(sys.executable)} run_node.py",
                    metavar="CMD", help="the node's command line, run in the project folder "
                                        "[default: this python, run_node.py]")
    ap.add_argument("--cases", default=os.path.join(HERE, "cases.jsonl"), metavar="FILE",
                    help="the cases [default: cases.jsonl beside this script]")
    ap.add_argument("-k", default="", metavar="TEXT",
                    help="run only the cases whose name contains TEXT")
    ap.add_argument("--deadline", type=float, default=DEADLINE, metavar="S",
                    help=f"seconds for the replies and the exit [default: {DEADLINE:g}]")
    args = ap.parse_args(argv)
    command = shlex.split(args.node)
    cases = [c for c in load(args.cases) if args.k in c.name]
    if not cases:
        ap.error(f"no case in {args.cases} matches -k {args.k!r}")
    passed = failed = 0
    for case in cases:
        why = verdict(case, run_node(command, case.input, args.deadline), args.deadline)
        if why:
            failed += 1
            print(f"FAIL  {case.name}: {why}", flush=True)
        else:
            passed += 1
            print(f"ok    {case.name}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
