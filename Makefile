# The README's two commands are `make demo` and `make test`; the rest serve developers.
# Every install takes its versions from constraints.txt (pinned), like jobs/Dockerfile and CI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --constraint constraints.txt
RUNTIME_STAMP ?= $(VENV)/.runtime
TEST_STAMP ?= $(VENV)/.test
DEV_STAMP ?= $(VENV)/.dev

.PHONY: demo test lint bench readme constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@

## demo: a venv with the runtime only, and the tour on a fresh SQLite file (rollout.db); no server needed
demo: $(RUNTIME_STAMP)
	$(BIN)/rollout demo

## test: the whole suite; PostgreSQL from TEST_DATABASE_URL, else the libpq PG* settings or a server
## on the local default port, else testcontainers, else those tests are skipped (one line says so)
test: $(TEST_STAMP)
	$(BIN)/python -m pytest

## lint: ruff (lint and format), mypy, and the layers (import-linter contracts in pyproject.toml)
lint: $(DEV_STAMP)
	$(BIN)/ruff check rollout tests
	$(BIN)/ruff format --check rollout tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: speed against a set-based SQL yardstick, and manners beside a busy platform (PostgreSQL)
bench: $(TEST_STAMP)
	$(BIN)/python -m tests.bench.bench

## readme: regenerate the README's table of options and environment variables from the CLI
readme: $(RUNTIME_STAMP)
	$(BIN)/python -m rollout.cli.reference README.md

## constraints: re-pin every dependency after a change to pyproject.toml's dependencies
constraints: $(DEV_STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^rollout'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) rollout.db rollout.db-wal rollout.db-shm .pytest_cache .mypy_cache .ruff_cache
