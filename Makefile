# make install: the project's virtual environment with the node and its test tools
# make run:     start the node on stdin/stdout
# make test:    the whole test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test bench conformance clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(PY) run_node.py $(ARGS)

test: install
	$(PY) -m pytest -q

conformance: install
	$(PY) ../shared/conformance/run.py --node '$(PY) run_node.py'

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
