"""Command line of the harness: python -m bench [--quick] [--runs N] [--only ...] [--node CMD]."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import time

from bench import markdown, plot, report
from bench.driver import (BASELINE_NAME, DEFAULT_NAME, PG_NAME, ROOT, NodeError, NodeSpec,
                          baseline_available, baseline_spec, default_spec, parse_spec,
                          postgres_spec)
from bench.postgres import Unavailable
from bench.runner import Series, probe, run_all
from bench.verify import ReplyMismatch
from bench.workloads import DEFAULT_SIZES, QUICK_SIZES, WORKLOADS, Sizes

# The committed results: only a full run writes them. Any other run writes to OUT_DIR,
# which git ignores, so a smoke run never leaves the working tree changed.
DEFAULT_PLOT = os.path.join(ROOT, "bench", "results.png")
DEFAULT_MARKDOWN = os.path.join(ROOT, "BENCHMARKS.md")
OUT_DIR = os.path.join(ROOT, "bench", "out")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark node implementations over stdin/stdout, each run on a fresh node "
                    "with a fresh data folder. Several --node options alternate run by run.")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of ~1 minute")
    p.add_argument("--runs", type=int,
                   help="runs per workload and node (default 5; 3 with --quick)")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(WORKLOADS)}")
    p.add_argument("--node", action="append", default=[], metavar="CMD",
                   help="node command line, run in the repo folder (repeatable; leading "
                        "VAR=value words set its environment; "
                        f"'{DEFAULT_NAME}' means this repo's run_node.py, '{PG_NAME}' the "
                        f"same on a throw-away PostgreSQL cluster, '{BASELINE_NAME}' "
                        "the in-memory baseline; CQRS_STORE=postgresql://... runs each node "
                        "on a fresh database of that server). Default: main, main-pg (where "
                        "a PostgreSQL server can be started) and baseline")
    p.add_argument("--name", action="append", default=[],
                   help="a name for each --node, in the same order")
    p.add_argument("--cap", type=float, help="seconds one run may take (default 60, quick 10)")
    p.add_argument("--json", metavar="FILE", help="also write every run's values as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="the results as a Markdown page (default: BENCHMARKS.md after a full "
                        "run, bench/out/BENCHMARKS.md after any other)")
    p.add_argument("--append", metavar="FILE", action="append", default=[],
                   help="add this Markdown file's text after the results (repeatable; "
                        "e.g. a hand-written analysis kept beside the harness)")
    p.add_argument("--plot", metavar="FILE",
                   help="PNG of all metrics (default: bench/results.png after a full run, "
                        "bench/out/results.png after any other; needs matplotlib, the "
                        "'bench' extra)")
    p.add_argument("--no-plot", action="store_true", help="draw no plot")
    return p


def _default_specs(names: list[str]) -> list[NodeSpec]:
    """This repo's node, the same on PostgreSQL when a server can be started here, and,
    when bench/baseline.py is there, the baseline."""
    specs = [default_spec(names[0] if names else DEFAULT_NAME)]
    try:
        specs.append(postgres_spec(PG_NAME))
    except Unavailable as exc:
        _log(f"no PostgreSQL server ({exc}): {PG_NAME} is not run")
    if baseline_available():
        specs.append(baseline_spec(names[1] if len(names) > 1 else BASELINE_NAME))
    else:
        _log("bench/baseline.py not found: running main alone, no ratios")
    return specs


def _specs(args: argparse.Namespace) -> list[NodeSpec]:
    if not args.node:
        return _default_specs(args.name)
    names = args.name + [f"node{i + 1}" for i in range(len(args.name), len(args.node))]
    if not args.name:  # the keywords name themselves when they can
        for i, cmd in enumerate(args.node):
            if cmd in (DEFAULT_NAME, BASELINE_NAME, PG_NAME) and cmd not in names:
                names[i] = cmd
    if len(set(names)) != len(names):
        raise SystemExit("node names must differ")
    return [parse_spec(cmd, name) for cmd, name in zip(args.node, names)]


def _workloads(only: str) -> list[str]:
    chosen = [w.strip() for w in only.split(",") if w.strip()] or list(WORKLOADS)
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)}; "
                         f"choose from {', '.join(WORKLOADS)}")
    return [w for w in WORKLOADS if w in chosen]  # keep the canonical order


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _command(argv: list[str] | None) -> str:
    """The command line as typed, with the interpreter relative to the repo when inside it."""
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else \
        sys.executable
    words = sys.argv[1:] if argv is None else argv
    return " ".join(shlex.quote(w) for w in [python, "-m", "bench", *words])


def full_run(args: argparse.Namespace) -> bool:
    """Whether this run measures what the committed results hold: every workload at full
    size, on the default nodes, with no cap on a run's time."""
    return not (args.quick or args.only or args.node or args.cap)


def output_paths(args: argparse.Namespace) -> tuple[str, str]:
    """(Markdown page, plot) of this run: the paths given, else the committed files after a
    full run and bench/out/ after any other."""
    folder_markdown, folder_plot = ((DEFAULT_MARKDOWN, DEFAULT_PLOT) if full_run(args) else
                                    (os.path.join(OUT_DIR, "BENCHMARKS.md"),
                                     os.path.join(OUT_DIR, "results.png")))
    return args.markdown or folder_markdown, args.plot or folder_plot


def _make_folder(path: str) -> None:
    """The folder a result file goes to (bench/out/ exists only once a run has written it)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _write_outputs(args: argparse.Namespace, argv: list[str] | None, series: list[Series],
                   specs: list[NodeSpec], sizes: Sizes) -> None:
    """The JSON, plot and Markdown files the options asked for."""
    nodes = [s.name for s in specs]
    args.markdown, args.plot = output_paths(args)
    if args.json:
        _make_folder(args.json)
        report.to_json(args.json, series, specs, sizes, args.runs)
    drawn = None
    if not args.no_plot and series:
        if plot.available():
            _make_folder(args.plot)
            plot.write(args.plot, series, nodes, args.runs, args.quick)
            drawn = args.plot
            print(f"plot written to {args.plot}")
        else:
            print("no plot: matplotlib is not installed (pip install -e '.[bench]')")
    if args.markdown:
        _make_folder(args.markdown)
        markdown.write(args.markdown, series, specs, sizes, args.runs, _command(argv),
                       args.quick, drawn, appendices=args.append)
        print(f"results written to {args.markdown}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when any workload failed on any node."""
    # A harness stopped with SIGTERM exits as on Ctrl-C, so what it made is removed on the
    # way out (atexit: the stores it built, a PostgreSQL cluster it started).
    before = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, before)


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 5)
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    sizes: Sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.cap:
        sizes = dataclasses.replace(sizes, run_cap=args.cap)
    try:
        names, specs = _workloads(args.only), _specs(args)
    except Unavailable as exc:
        _log(f"no PostgreSQL server for {PG_NAME}: {exc}")
        return 1
    started, extra = time.perf_counter(), []
    try:
        for spec in specs:
            _log(f"node {spec.name}: {spec.describe()}")
            extra += probe(spec, names)
    except (NodeError, ReplyMismatch, OSError) as exc:  # OSError: no such program
        _log(f"{type(exc).__name__}: {exc}")
        return 1
    for line in extra:
        _log(line)
    series = run_all(names, specs, sizes, args.runs, _log)
    nodes = [s.name for s in specs]
    print(report.table(series, nodes, args.quick))
    for line in report.notes(series, nodes, args.quick):
        print(line)
    print(f"total {time.perf_counter() - started:.0f} s, {args.runs} run(s) each"
          f"{', quick sizes' if args.quick else ''}")
    _write_outputs(args, argv, series, specs, sizes)
    return 1 if any(s.error for s in series) else 0
