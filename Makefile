# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck unit bench clean demo run

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[gateway,dev]'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

# Lint, types and the whole suite (SQLite and a throwaway PostgreSQL cluster).
test: lint typecheck unit

# The city's flows end to end on a throwaway gateway (SQLite, loopback); exit 1 on any
# unexpected outcome. Leaves nothing running.
demo: install
	$(BIN)/python -m clients.demo.flows

# A gateway on SQLite in ./data for trying things by hand (prints what to do next).
run: install
	$(BIN)/python -m clients.demo.run

bench: install
	$(BIN)/python -m bench.run envelope --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
