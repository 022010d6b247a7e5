# leadflow — two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-dev bench clean

# Python keeps compiled modules (__pycache__, git-ignored) even where the environment sets
# PYTHONDONTWRITEBYTECODE: without them every process compiles leadflow's ~600 modules again (about a
# second of CPU each time a server, a worker or a command starts; the suite starts hundreds).
NO_BYTECODE_OPT_OUT := PYTHONDONTWRITEBYTECODE=

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Start API + in-process worker on http://127.0.0.1:8000 (SQLite ./leadflow.db unless LEADFLOW_DATABASE_URL is set).
run: install
	$(NO_BYTECODE_OPT_OUT) $(BIN)/leadflow migrate
	$(NO_BYTECODE_OPT_OUT) $(BIN)/leadflow serve

## Lint, type-check and run the whole suite on SQLite and PostgreSQL (TEST_WORKERS processes, each with its
## own fresh databases; a test file stays on one process so its module-scoped servers start once). Three on
## two cores: a test waits on its servers, subprocesses and sockets much of the time (each of two processes
## was busy ~55-65 % of the run), and the suite took 11:45 with three against 15:54 with two.
TEST_WORKERS ?= 3
test: install-dev lint
	$(NO_BYTECODE_OPT_OUT) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=30

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
