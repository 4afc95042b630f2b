# Two commands matter: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PACKAGES := classifier statemachine persistence executor pipestate

.PHONY: demo test lint typecheck pytest bq-emulator bench bench-peers docs docs-gen docs-check wheel-check clean mutation chromium screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pipestate.demo

test: $(STAMP) bq-emulator lint typecheck pytest docs-check wheel-check

lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests benchmarks scripts
	$(BIN)/ruff format --check $(PACKAGES) tests benchmarks scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# Branch coverage over the engine and interface packages; the floor is fail_under in pyproject.
pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage combine -q  # subprocesses (servers, CLI runs) write their own data files
	$(BIN)/coverage report --format=total >/dev/null || ($(BIN)/coverage report --skip-covered | tail -40; exit 1)
	$(BIN)/python scripts/coverage_by_package.py

# The BigQuery emulator needs Python 3.13 and lives in a venv of its own.
bq-emulator:
	bash scripts/setup_bq_emulator.sh

# Regenerate the generated pages, then build the site strictly (no warnings, no broken links).
docs: docs-gen docs-check

docs-gen: $(STAMP)
	$(BIN)/python -m classifier.docs > docs/classifier.md
	$(BIN)/python -m statemachine.docs > docs/state-machines.md

docs-check: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# Build the sdist and wheel, install the wheel outside the tree and use it as a new user would.
wheel-check: $(STAMP)
	bash scripts/check_wheel.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Mutation testing of classifier/ and statemachine/ (slow; not part of `make test`). The
# surviving mutants are written to classifier/mutation_survivors.txt for docs/classifier.md.
# MUTANTS narrows the run on a shared machine, e.g. make mutation MUTANTS='classifier.*'
# statemachine/'s counts and survivors go to statemachine/mutation_survivors.txt (docs/mutation.md).
mutation: $(STAMP)
	nice -n 10 $(BIN)/mutmut run --max-children 2 $(MUTANTS) || true
	$(BIN)/mutmut results | grep -v "not checked" | sed 's/^ *//' > classifier/mutation_survivors.txt || true
	$(BIN)/python -m classifier.docs > docs/classifier.md
	$(BIN)/python scripts/mutation_report.py statemachine > statemachine/mutation_survivors.txt

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
	rm -rf $(VENV) .venv-bq .pytest_cache .mypy_cache .ruff_cache pipestate.db* site dist build .coverage
