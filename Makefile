# make install: the project's virtual environment with the node and its test tools
# make run:     start the node on stdin/stdout
# make test:    the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A plain path entry for the editable install: the default import hook costs every
# process of the node about 25 ms of start-up (setuptools warns that this mode is
# deprecated; without the setting, everything still works, only slower to start).
EDITABLE := --config-settings editable_mode=compat

.PHONY: install run serve test bench conformance clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' $(EDITABLE)
	touch $(STAMP)

run: install
	$(PY) run_node.py $(ARGS)

# Each process type on its own, as the Procfile says (CQRS_* variables: see README).
serve: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start $(ARGS)

test: install
	$(PY) -m pytest -q

conformance: install
	$(PY) ../shared/conformance/run.py --node '$(PY) run_node.py'

# make bench: main against the in-memory baseline; writes BENCHMARKS.md and bench/results.png
# (ARGS=--quick for a smoke run of about a minute). matplotlib, for the plot, is optional.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]' $(EDITABLE) || echo "no matplotlib: make bench draws no plot"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench --markdown BENCHMARKS.md --append bench/analysis.md $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
