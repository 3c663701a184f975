# make install: the project's virtual environment with the node and its test tools
# make run:     start the node on stdin/stdout (stdout carries replies only: set-up goes to stderr)
# make test:    the whole test suite (what CI runs)
# make test-unit: the unit tests alone (tests/unit: no process started, seconds)
# make test-e2e:  the end-to-end tests alone (tests/e2e: real processes, minutes)
# make conformance: the public sample cases (tests/conformance), each on a fresh node
# make serve:   each process type on its own (Procfile), data in .data/
# make tap ARGS='--endpoint E --from-position 1':  cqrs-tap, the event stream as JSON lines
# make client ARGS='--connect E' < requests.jsonl: cqrs-client, for a node in service mode
# make bench:   the benchmark (ARGS=--quick: a smoke run, written to bench/out/)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A plain path entry for the editable install: the default import hook costs every
# process of the node about 25 ms of start-up (setuptools warns that this mode is
# deprecated; without the setting, everything still works, only slower to start).
EDITABLE := --config-settings editable_mode=compat
# Make itself writes "Entering directory" lines on stdout when started with -C or from another
# make, before it reads this file (nothing here can stop them): from elsewhere, use
# `make -s -C DIR run` (or --no-print-directory), which keeps stdout for the replies.

.PHONY: install run serve tap client test test-unit test-e2e bench conformance clean

install: $(STAMP)

# Silent on stdout (@, and every output to stderr): `make run` prints replies only there,
# even when this step runs first.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (once; pip's output follows)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --upgrade pip >&2
	@$(PY) -m pip install --quiet -e '.[test]' $(EDITABLE) >&2
	@touch $(STAMP)

run: install
	@$(PY) run_node.py $(ARGS)

# Each process type on its own, as the Procfile says (CQRS_* variables: see README). The
# store goes to .data/ (ignored by git) unless CQRS_DATA_DIR or CQRS_STORE says otherwise.
serve: install
	@if [ -z "$$CQRS_DATA_DIR$$CQRS_STORE" ]; then export CQRS_DATA_DIR="$(CURDIR)/.data"; fi; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(VENV)/bin/honcho start $(ARGS)

# The tools, as `python -m` under the .venv (the same programs as the cqrs-tap and
# cqrs-client scripts in .venv/bin).
tap: install
	@$(PY) -m common.tap $(ARGS)

client: install
	@$(PY) -m router.client $(ARGS)

test: install
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

test-e2e: install
	$(PY) -m pytest -q tests/e2e

# The project's own copy of the public samples and its own runner: nothing outside this tree.
conformance: install
	@$(PY) tests/conformance/run.py

# make bench: main against the in-memory baseline. A full run writes BENCHMARKS.md and
# bench/results.png; any other (ARGS=--quick, a smoke run of about a minute; --only, --node,
# --cap) writes bench/out/, ignored by git (bench/cli.py chooses). matplotlib, for the plot,
# is optional.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	@$(PY) -m pip install --quiet -e '.[test,bench]' $(EDITABLE) >&2 || echo "no matplotlib: make bench draws no plot" >&2
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench --append bench/analysis.md $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
