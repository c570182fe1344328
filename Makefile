# The README's two commands are `make demo` and `make test`; the rest serve developers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: a venv, the package, and the tour on a fresh SQLite file (rollout.db), no server needed
demo: $(STAMP)
	$(BIN)/rollout demo

## test: the whole suite; PostgreSQL tests use TEST_DATABASE_URL (else testcontainers, else skipped)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff, mypy, and the layers (import-linter contracts in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check rollout tests
	$(BIN)/ruff format --check rollout tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the migration against a set-based SQL baseline on PostgreSQL (BENCH_OWNERS, TEST_DATABASE_URL)
bench: $(STAMP)
	$(BIN)/python -m tests.bench.bench

clean:
	rm -rf $(VENV) rollout.db rollout.db-wal rollout.db-shm .pytest_cache .mypy_cache .ruff_cache
