# Two commands: `make run` (the demo, no credentials) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; sys.exit("Countersign needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(STAMP)
	$(BIN)/countersign demo

# The suite runs on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set.
# On SQLite the core's own tests run first and apart, holding branch coverage of gating/policy and gating/ledger at
# 100%: those tests alone must reach every branch (an end-to-end test passing through one does not count), and the
# coverage tracer slows nothing else. The PostgreSQL pass does not measure again: there the ledger takes its
# PostgreSQL branches and leaves the SQLite ones unrun.
CORE_TESTS := $(wildcard tests/test_policy*.py tests/test_separation_of_duties.py tests/test_config.py tests/test_ledger*.py tests/test_retention.py tests/test_export_bundle.py)
COVERAGE := --cov=gating/policy --cov=gating/ledger --cov-branch --cov-fail-under=100 --cov-report=term-missing:skip-covered

test: $(STAMP) node_modules/.installed lint
	$(BIN)/pytest $(COVERAGE) $(CORE_TESTS)
	$(BIN)/pytest $(addprefix --ignore=,$(CORE_TESTS))
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== the suite again on PostgreSQL ($$TEST_DATABASE_URL)"; \
		COUNTERSIGN_TEST_DB=postgresql $(BIN)/pytest; \
	else \
		echo "== TEST_DATABASE_URL is not set: PostgreSQL was not tested (e.g. postgresql+psycopg://postgres@127.0.0.1/test)"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy gating jira_client

bench: $(STAMP)
	$(BIN)/python bench/pr_gate.py
	$(BIN)/python bench/deploy_gate.py

clean:
	rm -rf $(VENV) node_modules instance
