# The two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Start the embedded stack (broker, worker, query service, SQLite) and load the demo chat.
run: $(STAMP)
	$(BIN)/memstream up --load examples/demo.jsonl

## Lint, type-check and run the whole test suite (servers are started by fixtures).
test: $(STAMP) lint typecheck
	$(BIN)/pytest -q --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy memstream

## Only the tests that need no servers (seconds).
unit: $(STAMP)
	$(BIN)/pytest -q -m "not servers"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
