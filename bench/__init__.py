"""Benchmark harness: drives node commands over stdin/stdout like a client and times them.

    python -m bench [--quick] [--runs 5] [--only startup,commands] [--node CMD ...]
                    [--markdown BENCHMARKS.md] [--plot bench/results.png] [--json FILE]

Without --node it runs this repo's node ("main") against the in-memory baseline
(bench/baseline.py), alternating run by run, and reports each figure with its ratio.
"""
