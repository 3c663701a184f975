"""One PNG of all metrics: a small bar panel each, node against baseline, target dashed.

Needs matplotlib (the optional `bench` extra: pip install -e '.[bench]').
"""
from __future__ import annotations

import math
import time

from bench import machine, report
from bench.runner import Series

COLUMNS = 4
VERDICTS = {"yes": "met", "NO": "MISSED", "full runs only": "not judged on quick sizes",
            "-": ""}
MET, MISSED, NEUTRAL, REFERENCE = "#2e8b57", "#c0392b", "#4a78b5", "#9e9e9e"


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _colour(row: report.Row, s: Series, ref: str | None) -> str:
    if s.node == ref:
        return REFERENCE
    return {"yes": MET, "NO": MISSED}.get(row.verdict, NEUTRAL)


def _panel(ax, row: report.Row, ref: str | None, main: str) -> None:
    """Bars for one metric: one per node, top to bottom in node order."""
    names = [s.node for s in row.series]
    ys = list(range(len(names)))[::-1]
    limit = row.target.limit if row.target else 0.0
    top = max([max(s.values) for s in row.series if s.median() is not None] + [limit, 1e-9])
    for y, s in zip(ys, row.series):
        median = s.median()
        if median is None:
            ax.text(top * 0.01, y, report.cell(s), va="center", fontsize=8, color="#555555",
                    style="italic")
            continue
        errors = [[median - min(s.values)], [max(s.values) - median]]
        ax.barh(y, median, color=_colour(row, s, ref), height=0.6, xerr=errors,
                error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "#333333"})
        ax.text(max(s.values) + top * 0.02, y, report.cell(s), va="center", fontsize=8)
    if row.target:
        ax.axvline(limit, color="#333333", linestyle="--", linewidth=1)
    ax.set_yticks(ys, names, fontsize=8)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlim(0, top * 1.3)  # room for the labels right of the bars
    ax.tick_params(axis="x", labelsize=7)
    ax.xaxis.set_major_formatter(_thousands)
    ax.set_title(row.metric, fontsize=9, loc="left", fontweight="bold")
    ax.set_xlabel(_xlabel(row), fontsize=7.5)
    _annotate(ax, row, ref, main)


def _thousands(value: float, _position: object = None) -> str:
    """Tick labels: 30k rather than 30000."""
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def _xlabel(row: report.Row) -> str:
    """Unit, which way is better, the target and whether it is met."""
    text = f"{row.unit}, {row.better} is better"
    if row.target:
        verdict = VERDICTS.get(row.verdict, row.verdict)
        text += f"; target {row.target.describe()}" + (f" ({verdict})" if verdict else "")
    return text


def _annotate(ax, row: report.Row, ref: str | None, main: str) -> None:
    """The ratio to the reference, right of the panel's title: green when main is better."""
    r = row.ratios.get(main)
    if r is not None:
        ax.set_title(f"{r:.2f}x {ref}", fontsize=8.5, loc="right",
                     color=MET if r >= 1 else MISSED)


def write(path: str, series: list[Series], nodes: list[str], runs: int,
          quick: bool = False) -> None:
    """Draw every metric in one figure and save it as PNG."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    rows = report.rows(series, nodes, quick)
    ref, main = report.reference(nodes), report.primary(nodes)
    columns = min(COLUMNS, len(rows))
    lines = math.ceil(len(rows) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 0.55 * len(nodes) + 1.3 * lines
                                                      + 0.4 * lines), squeeze=False)
    for ax, row in zip(axes.flat, rows):
        _panel(ax, row, ref, main)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(_title(nodes, runs, quick), fontsize=11, x=0.01, ha="left")
    fig.text(0.01, 0.005, _legend(ref, main), fontsize=8, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(nodes: list[str], runs: int, quick: bool) -> str:
    host = machine.describe()
    sizes = ", QUICK SIZES (a smoke run, not a result)" if quick else ""
    return (f"{' vs '.join(nodes)}: medians of {runs} runs{sizes}\n"
            f"{time.strftime('%Y-%m-%d')}, {host['cpu']}, {host['cores']} cores, "
            f"{host['ram']} RAM, {host['python']}")


def _legend(ref: str | None, main: str) -> str:
    parts = ["bar: median; whisker: min..max of the runs; dashed line: target",
             f"{main}: green meets the target, red misses it, blue has none or is not judged"]
    if ref:
        parts.append(f"grey: {ref}; NNx = {main} against {ref}, >1 means {main} is better")
    return ".   ".join(parts)
