# Two commands: `make demo` and `make test`. Both create .venv and install the project
# (editable, with dev extras) when it is missing or pyproject.toml changed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test postgres browser valgrind lint typecheck bench bench-instructions schema clean loadtest loadtest-faults loadtest-pg fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/twin compare scenarios/patterns/*.toml --out results/demo

# The PostgreSQL store's tests start a throwaway server from Debian's binaries.
postgres:
	@ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq postgresql)

# Counting instructions (loadtests.bench.instructions) compares builds where timing is noise.
valgrind:
	@command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)

# The dashboard's browser test drives Debian's headless Chromium through its driver.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)

test: $(STAMP) postgres browser
	$(BIN)/ruff check .
	$(BIN)/mypy integration_core sim tests
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) postgres
	$(BIN)/python -m loadtests.bench.bus --table
	$(BIN)/python -m loadtests.bench.reconciler
	$(BIN)/python -m loadtests.bench.twin
	$(BIN)/python -m loadtests.bench.sweep
	$(BIN)/python -m loadtests.bench.service --table
	$(BIN)/python -m loadtests.bench.postgres
	$(BIN)/python -m loadtests.bench.service --store postgres --table

# Instructions per movement, the twin's (WHAT=twin, the default) or the live service's batch path
# (WHAT=service); AGAINST=<another checkout> for the ratio of two builds.
bench-instructions: $(STAMP) valgrind
	$(BIN)/python -m loadtests.bench.instructions --path $(or $(WHAT),twin) $(if $(AGAINST),--against $(AGAINST))

loadtest: $(STAMP)
	$(BIN)/python -m loadtests.run --out results/loadtest

loadtest-faults: $(STAMP)
	$(BIN)/python -m loadtests.run --plan loadtests/shapes/faults.toml \
	    --thresholds loadtests/thresholds-faults.toml --out results/loadtest-faults

# Three instances on one throwaway PostgreSQL under load (loopback only, about 2 minutes):
# one SIGKILLed, one SIGSTOPped past its lease then resumed, the database crashed and
# restarted; the checker, per-key order and the takeover times decide (docs/postgres.md).
loadtest-pg: $(STAMP) postgres
	$(BIN)/python -m loadtests.run --store postgres --instances 3 --process-faults \
	    --duration 60 --rate 100 --outage-s 0 --thresholds loadtests/thresholds-pg-faults.toml \
	    --out results/loadtest-pg

# Outside CI's time: the service's fuzz suite and schemathesis with big budgets (randomized;
# a failure prints its reproduction; every failing request is logged in
# results/fuzz/failures.jsonl). CI runs both with small budgets.
FUZZ_EXAMPLES ?= 1000
SCHEMATHESIS_EXAMPLES ?= 100

fuzz: $(STAMP)
	rm -f results/fuzz/failures.jsonl
	TWIN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TWIN_SCHEMATHESIS_EXAMPLES=$(SCHEMATHESIS_EXAMPLES) \
	  TWIN_FUZZ_LOG=results/fuzz/failures.jsonl \
	  $(BIN)/python -m pytest -p no:cacheprovider tests/service/test_fuzz.py \
	  tests/service/test_schemathesis.py

schema: $(STAMP)
	$(BIN)/python -m integration_core.schema docs/schema/canonical.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
