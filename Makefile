# Both targets create .venv on first use and install what they need into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export SLIPSTREAM_HOME ?= $(CURDIR)/.slipstream

.PHONY: run test lint typecheck unit clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The example DAGs start unpaused here, so the scheduled one runs at once; stop with Ctrl-C.
run: $(STAMP)
	SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION=$${SLIPSTREAM__SCHEDULER__DAGS_ARE_PAUSED_AT_CREATION:-false} \
		$(BIN)/slipstream standalone

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -n 2

clean:
	rm -rf $(VENV) .slipstream .pytest_cache .mypy_cache .ruff_cache
