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

run: $(STAMP)
	$(BIN)/slipstream db migrate
	$(BIN)/slipstream dags reserialize
	$(BIN)/slipstream dags list
	@for d in $$($(BIN)/slipstream dags list -o json | $(BIN)/python -c 'import json,sys; print(" ".join(d["dag_id"] for d in json.load(sys.stdin)))'); do \
		$(BIN)/slipstream dags test $$d || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .slipstream .pytest_cache .mypy_cache .ruff_cache
