"""Benchmark harness: drives node commands over stdin/stdout like a client and times them.

    python -m bench [--quick] [--runs 3] [--only startup,commands] [--node CMD ...]
"""
