"""The results as a Markdown page (BENCHMARKS.md): machine, command, sizes, table, how to read."""
from __future__ import annotations

import dataclasses
import os
import time

from bench import machine, report
from bench.driver import NodeSpec
from bench.runner import Series
from bench.workloads import Sizes

WHAT = {  # what each workload measures, one line each
    "startup": "process start to the reply of a first GetUser, fresh data folder",
    "commands": "pipelined bus CreateUser with unique emails, durable, sync on",
    "queries": "pipelined envelope GetUser",
    "mixed": "pipelined (CreateUser, GetUser) pairs; each query must see its command",
    "latency": "sequential envelope GetUser round trips",
    "cmdlatency": "sequential envelope CreateUser round trips (a commit each)",
    "memory": "all node processes after the users are created in each context: "
              "'peak' sums every process's VmHWM, 'sampled' is the largest total RSS "
              "seen every 0.1 s",
    "replicas": "pipelined envelope GetUser with --read-replicas 1, 2, 3",
    "replay": "restart on a store of N events: 'restart' to right answers about the "
              "last events, on the folder as the node left it (its snapshots included); "
              "'rebuild' the same on the event store alone (a full replay); 'speed' = N / "
              "(rebuild - empty-store start-up), the read side's catch-up rate",
}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(series: list[Series], nodes: list[str], quick: bool) -> list[str]:
    head = report.header(nodes)
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for row in report.rows(series, nodes, quick):
        cells = report.cells(row, nodes)
        cells[-1] = {"NO": "**NO**"}.get(cells[-1], cells[-1])  # a miss should jump out
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return lines


def _sizes(sizes: Sizes) -> str:
    return ", ".join(f"{f.name}={getattr(sizes, f.name):,}"
                     for f in dataclasses.fields(sizes))


def _how_to_read(runs: int, nodes: list[str]) -> list[str]:
    ref = report.reference(nodes)
    lines = [
        f"- Each figure is the median of {runs} runs; every run starts a fresh node on a "
        "fresh data folder and checks every reply, so a wrong answer gives no figure.",
        "- Runs alternate between the nodes in ABBA order (A B, B A, A B, ...), so slow "
        "drift of the machine hits every node alike.",
        "- spread: half the min..max range of the runs as a share of the median, per node; "
        "a difference smaller than the spread is noise.",
        "- `*`: some runs hit the time cap; the rate counts only the replies that came in time.",
        "- n/a: the workload does not apply to that node (the baseline keeps no data across "
        "restarts and has no read replicas).",
        "- met: the targets are about the first node; 'full runs only' marks a target that "
        "depends on the sizes, not judged on a --quick run.",
    ]
    if ref:
        lines.insert(2, f"- {report.ratio_note(ref)}.")
    return lines


def render(series: list[Series], specs: list[NodeSpec], sizes: Sizes, runs: int,
           command: str, quick: bool = False, plot: str | None = None) -> str:
    """The whole page as a string."""
    nodes = [s.name for s in specs]
    host = machine.describe()
    out = ["# Benchmarks", "",
           f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
           *(f"- {key}: {value}" for key, value in host.items()),
           f"- command: `{command}`",
           f"- runs: {runs} per workload and node{', quick sizes' if quick else ''}",
           f"- sizes: {_sizes(sizes)}",
           *(f"- node `{s.name}`: `{s.describe()}`" for s in specs), ""]
    out += _table(series, nodes, quick) + [""]
    # The ratio and capped notes are in "How to read"; the rest is about this run.
    out += [f"- {line}" for line in report.notes(series, nodes, quick)
            if not line.startswith(("ratio:", report.CAPPED_NOTE))]
    if plot:
        out += ["", f"![results]({plot})"]
    out += ["", "## How to read", "", *_how_to_read(runs, nodes), "", "## Workloads", ""]
    workloads = dict.fromkeys(s.workload for s in series)
    out += [f"- `{w}`: {WHAT.get(w, '')}" for w in workloads]
    return "\n".join(out).rstrip() + "\n"


def write(path: str, series: list[Series], specs: list[NodeSpec], sizes: Sizes, runs: int,
          command: str, quick: bool = False, plot: str | None = None,
          appendices: list[str] = ()) -> None:
    """Write the page to path, then each appendix file's text; a plot path is linked
    relative to the page."""
    if plot:
        plot = os.path.relpath(plot, os.path.dirname(os.path.abspath(path)))
    page = render(series, specs, sizes, runs, command, quick, plot)
    for appendix in appendices:
        with open(appendix) as f:
            page += "\n" + f.read().rstrip() + "\n"
    with open(path, "w") as f:
        f.write(page)
