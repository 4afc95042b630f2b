# Two commands matter: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := classifier statemachine persistence executor pipestate

.PHONY: demo test lint typecheck pytest bq-emulator bench bench-peers docs clean mutation

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pipestate.demo

test: $(STAMP) bq-emulator lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests benchmarks
	$(BIN)/ruff format --check $(PACKAGES) tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# The BigQuery emulator needs Python 3.13 and lives in a venv of its own.
bq-emulator:
	bash scripts/setup_bq_emulator.sh

docs: $(STAMP)
	$(BIN)/python -m classifier.docs > docs/classifier.md
	$(BIN)/python -m statemachine.docs > docs/state-machines.md

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Mutation testing of classifier/ and statemachine/ (slow; not part of `make test`). The
# surviving mutants are written to classifier/mutation_survivors.txt for docs/classifier.md.
mutation: $(STAMP)
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results > classifier/mutation_survivors.txt || true
	$(BIN)/python -m classifier.docs > docs/classifier.md

bench-peers: $(STAMP)
	bash benchmarks/peers/run.sh

clean:
	rm -rf $(VENV) .venv-bq .pytest_cache .mypy_cache .ruff_cache pipestate.db*
