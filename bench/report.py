"""The measured series as rows (medians, ratio to the baseline, targets), a text table, JSON."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

from bench import machine
from bench.driver import BASELINE_NAME, DEFAULT_NAME, PG_NAME, NodeSpec
from bench.runner import Series
from bench.targets import PG_TARGETS, TARGETS, Target
from bench.workloads import Sizes

CAPPED_NOTE = "* some runs hit the time cap; their rate counts the replies that came in time"


def ratio_note(ref: str) -> str:
    """How the ratio columns read."""
    return (f"ratio: each node's median against {ref}'s, oriented so that >1 means the node "
            f"is better (rates: node/{ref}; times and sizes: {ref}/node)")


@dataclass
class Row:
    """One metric across the nodes, with its ratio to the reference node and its target."""

    metric: str
    unit: str
    better: str
    series: list[Series]               # in node order
    ratios: dict[str, float | None]    # node -> ratio to the reference (>1: node is better)
    target: Target | None
    verdict: str                       # whether the primary node meets the target

    def by_node(self, node: str) -> Series:
        """This row's series for one node."""
        return next(s for s in self.series if s.node == node)


def reference(nodes: list[str]) -> str | None:
    """The node every other is compared with: the baseline if present, else the last node."""
    if len(nodes) < 2:
        return None
    return BASELINE_NAME if BASELINE_NAME in nodes else nodes[-1]


def primary(nodes: list[str]) -> str:
    """The node the targets are about: the first that is not the reference."""
    ref = reference(nodes)
    return next(n for n in nodes if n != ref)


def ratio(s: Series, ref: Series) -> float | None:
    """s against ref, >1 when s is better whichever way the metric runs; None without both."""
    a, b = s.median(), ref.median()
    if not a or not b:
        return None
    return a / b if s.better == "higher" else b / a


def _verdict(target: Target | None, s: Series, r: float | None, quick: bool) -> str:
    if target is None:
        return ""
    if target.full_size_only and quick:
        return "full runs only"
    met = target.met(s.median(), r)
    return "-" if met is None else "yes" if met else "NO"


def rows(series: list[Series], nodes: list[str], quick: bool = False) -> list[Row]:
    """One Row per metric, in the order the series came."""
    by_key = {(s.metric, s.node): s for s in series}
    ref, main = reference(nodes), primary(nodes)
    out = []
    for metric in dict.fromkeys(s.metric for s in series):
        row_series = [by_key[(metric, n)] for n in nodes]
        first = row_series[0]
        ratios = {n: ratio(by_key[(metric, n)], by_key[(metric, ref)])
                  for n in nodes if ref and n != ref}
        target = TARGETS.get(metric)
        verdict = _verdict(target, by_key[(metric, main)], ratios.get(main), quick)
        out.append(Row(metric, first.unit, first.better, row_series, ratios, target, verdict))
    return out


def number(value: float) -> str:
    """A figure with as many decimals as its size deserves."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def cell(s: Series) -> str:
    """A series' median as shown: FAILED, n/a, - (no runs), or the figure (* when capped)."""
    if s.error:
        return "FAILED"
    if s.not_applicable:
        return "n/a"
    value = s.median()
    if value is None:
        return "-"
    return number(value) + ("*" if s.capped else "")


def spread(s: Series) -> str:
    """Half the min..max range as a share of the median: how much to trust a difference."""
    median = s.median()
    if not median or len(s.values) < 2:
        return "-"
    return f"±{(max(s.values) - min(s.values)) / 2 / median * 100:.1f}%"


def ratio_text(r: float | None) -> str:
    """A ratio as shown, e.g. 0.85x."""
    return "-" if r is None else f"{r:.2f}x"


def header(nodes: list[str]) -> list[str]:
    """Column titles shared by the text and Markdown tables."""
    ref = reference(nodes)
    ratios = [f"{n} vs {ref}" for n in nodes if ref and n != ref]
    return ["metric", "unit", "runs", *nodes, *ratios, "spread", "target", "met"]


def cells(row: Row, nodes: list[str]) -> list[str]:
    """A row's cells, in header() order."""
    runs = "/".join(str(len(s.values)) for s in row.series)
    spreads = " / ".join(spread(s) for s in row.series)
    return [row.metric, row.unit, runs, *(cell(s) for s in row.series),
            *(ratio_text(r) for r in row.ratios.values()), spreads,
            row.target.describe() if row.target else "", row.verdict]


def _render(table_rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(table_rows[0]))]
    # First column left-aligned (names), the rest right-aligned (numbers).
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in table_rows)


def table(series: list[Series], nodes: list[str], quick: bool = False) -> str:
    """The plain-text table: one row per metric, a column per node, ratios and targets."""
    return _render([header(nodes)] + [cells(r, nodes) for r in rows(series, nodes, quick)])


def notes(series: list[Series], nodes: list[str], quick: bool = False) -> list[str]:
    """Lines under the table: how to read ratios, capped runs, failures, n/a reasons."""
    ref = reference(nodes)
    out = [ratio_note(ref)] if ref else []
    if any(s.capped for s in series):
        out.append(CAPPED_NOTE)
    metrics = {s.metric for s in series}
    if quick and any(t.full_size_only for m, t in TARGETS.items() if m in metrics):
        out.append("targets marked 'full runs only' depend on the sizes: judged without --quick")
    out += pg_notes(series, nodes, quick)
    seen_na = set()
    for s in series:
        if s.error:
            out.append(f"{s.metric} on {s.node}: {s.error.splitlines()[0][:300]}")
        elif s.not_applicable and (s.workload, s.node) not in seen_na:
            seen_na.add((s.workload, s.node))
            out.append(f"{s.workload} on {s.node}: n/a, {s.not_applicable}")
    return out


def pg_notes(series: list[Series], nodes: list[str], quick: bool = False) -> list[str]:
    """The PostgreSQL node against its targets (bench.targets.PG_TARGETS), where both it and
    this repo's SQLite node ran: e.g. 'main-pg: commands 0.62x main (target >= 0.5x): yes'."""
    if PG_NAME not in nodes or DEFAULT_NAME not in nodes:
        return []
    by_key = {(s.metric, s.node): s for s in series}
    out = []
    for metric, (least_ratio, least) in PG_TARGETS.items():
        pg, sqlite = by_key.get((metric, PG_NAME)), by_key.get((metric, DEFAULT_NAME))
        if pg is None or pg.median() is None:
            continue
        if least_ratio is not None:
            r = ratio(pg, sqlite) if sqlite is not None else None
            verdict = "-" if r is None else "yes" if r >= least_ratio else "NO"
            out.append(f"{PG_NAME}: {metric} {ratio_text(r)} {DEFAULT_NAME} "
                       f"(target >= {least_ratio:g}x): {verdict}")
        if least is not None:
            judged = "full runs only" if quick else ("yes" if pg.median() >= least else "NO")
            out.append(f"{PG_NAME}: {metric} {number(pg.median())} {pg.unit} "
                       f"(target >= {least:,g}): {judged}")
    return out


def to_json(path: str, series: list[Series], specs: list[NodeSpec], sizes: Sizes,
            runs: int) -> None:
    """Write every run's values, the sizes, the machine and the node commands to a JSON file."""
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": machine.describe(),
        "runs": runs,
        "sizes": dataclasses.asdict(sizes),
        "nodes": [{"name": s.name, "command": s.describe(), "data_dir_flag": s.data_dir_flag,
                   "durable": s.durable, "read_replicas": s.read_replicas} for s in specs],
        "results": [{**dataclasses.asdict(s), "median": s.median()} for s in series],
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
