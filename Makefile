PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/responder serve --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

lint: $(STAMP)
	$(BIN)/ruff format --check responder tests bench
	$(BIN)/ruff check responder tests bench
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/webhook.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache responder.egg-info
