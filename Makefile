# The two set-up commands of the README:
#   make demo   — create .venv, install remem, run `remem demo` (embedded default, offline, no API key)
#   make test   — create .venv, install remem[dev], run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1

.PHONY: demo test install install-dev lint typecheck bench-store

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-dev: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'

demo: install
	REMEM_HOME=$${REMEM_HOME:-.remem-demo} $(BIN)/remem demo

# eatmydata (Debian package), when installed, turns fsync into a no-op for the test run: the embedded store
# fsyncs every write, and tests need no power-loss durability (.ci/run installs it).
EATMYDATA := $(shell command -v eatmydata 2>/dev/null)

test: install-dev
	$(EATMYDATA) $(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check src tests
	$(BIN)/mypy

bench-store: install-dev
	$(BIN)/remem bench store
