# The two commands that matter: `make run` and `make test`. Both work in a fresh clone with
# only Python 3.11 and pip: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,sim,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/boxoffice dev

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy boxoffice shared svckit gateway api_server ticket_server migrations tests bench

check: lint typecheck test

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
