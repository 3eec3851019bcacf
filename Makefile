# The two commands of README's quick start, and a few more. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run selfcheck test lint bench vectors clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

DATA ?= data

## run: start a node on SQLite in ./data (created, with its keys and an admin invite, on first run)
run: $(STAMP)
	@test -f $(DATA)/tadamun.toml || $(BIN)/tadamun init --data-dir $(DATA) --name "Demo union"
	$(BIN)/tadamun serve --data-dir $(DATA)

## selfcheck: prove the protocol core works on this machine
selfcheck: $(STAMP)
	$(BIN)/tadamun selfcheck

## test: lint, type-check and run the whole test suite
test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: run the benchmarks and print their figures
bench: $(STAMP)
	$(BIN)/python bench/bench_protocol.py
	$(BIN)/python bench/bench_api.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_propagation.py

## vectors: regenerate tests/vectors/*.json after a deliberate wire change
vectors: $(STAMP)
	$(BIN)/python tests/vectors/gen_vectors.py
	$(BIN)/python tests/vectors/gen_httpsig.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
