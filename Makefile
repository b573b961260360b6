# Two commands do all the set-up on a fresh machine: `make sandbox` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit sandbox venv crds clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

sandbox: $(STAMP)
	$(BIN)/cpworker sandbox demo

crds: $(STAMP)
	$(BIN)/cpworker crd --output crds/

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
