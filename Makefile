# Two commands matter: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := classifier statemachine persistence executor pipestate

.PHONY: demo test lint typecheck pytest bq-emulator bench bench-peers docs clean chromium screenshots

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

bench-peers: $(STAMP)
	bash benchmarks/peers/run.sh

# Debian's Chromium for the browser tests and screenshots (Playwright drives it; it never
# downloads a browser of its own). Needs root or sudo; does nothing when chromium is there.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	    SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }
	@chromium --version

# The dashboard screenshots in docs/img/ (README, docs/dashboard.md), taken in Chromium.
screenshots: $(STAMP) chromium
	$(BIN)/python scripts/screenshots.py docs/img

clean:
	rm -rf $(VENV) .venv-bq .pytest_cache .mypy_cache .ruff_cache pipestate.db*
