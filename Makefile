# Each target sets itself up: a .venv with the CPU build of torch installed *first*
# (an unpinned torch requirement would pull a multi-GB CUDA build), then ppgen.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ppgen-installed

.PHONY: test test-all tour timings bench lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The tests run single-threaded (tests/conftest.py), so one pytest-xdist worker per core.
test: $(STAMP)
	$(VENV)/bin/ruff check ppgen tests tutorials benchmarks
	$(VENV)/bin/ruff format --check ppgen tests tutorials benchmarks
	$(PY) -m pytest -q -x -n auto --dist worksteal --durations=15

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" --durations=25

tour: $(STAMP)
	$(VENV)/bin/ppgen tour

# Seconds of the tour (per chapter, fast and default) and of every tutorial's default run,
# against their budgets; writes benchmarks/timings.json (add ARGS="--tour full" or "--test").
timings: $(STAMP)
	$(PY) benchmarks/timings.py $(ARGS)

# NumPyro (the NUTS contender) is optional: the nuts benchmark reports Pyro only without it.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]" || echo "numpyro/jax not installable: nuts compares with Pyro only"
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check ppgen tests tutorials benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format ppgen tests tutorials benchmarks
	$(VENV)/bin/ruff check --fix ppgen tests tutorials benchmarks

clean:
	rm -rf $(VENV) ppgen-report *.egg-info
