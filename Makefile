# Two commands do all the set-up on a fresh machine: `make sandbox` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make sandbox` needs only the operator and the stand-ins, not the dev toolchain: on a fresh
# machine that halves the install. `make test` adds the rest to the same venv.
SANDBOX_STAMP := $(VENV)/.installed-sandbox
# checkov pins many libraries of its own, so it lives in a separate venv.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed

.PHONY: test lint typecheck sandbox bench venv tools crds docs image clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(SANDBOX_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[sandbox]'
	touch $@

$(TOOLS_STAMP): Makefile
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet 'checkov>=3.2'
	touch $@

tools: $(TOOLS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Most tests wait on stand-ins and subprocesses (terraform, awscli, podman), so workers beyond
# the cores still pay: three on CI's two cores. Each module stays on one worker (tests/conftest.py).
TEST_WORKERS ?= 3
test: lint typecheck $(TOOLS_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS)

# A venv made by `make test` already has everything the sandbox needs.
sandbox: $(if $(wildcard $(STAMP)),$(STAMP),$(SANDBOX_STAMP))
	$(BIN)/cpworker sandbox demo

# The benchmark (about 20 minutes at the default sizes; BENCH_ARGS=--quick for under a minute).
# It writes the report and chart that docs/benchmarks/ commits; see docs/benchmarks/README.md.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/cpworker bench --json docs/benchmarks/bench.json --png docs/benchmarks/bench.png $(BENCH_ARGS)

# The CRD is generated from the pydantic models; the chart ships a synced copy.
crds: $(STAMP)
	$(BIN)/cpworker crd --output crds/
	$(BIN)/python helm/sync_crds.py

# docs/reference.md is generated from the models and the settings; a test fails when it is stale.
docs: $(STAMP)
	$(BIN)/python -m tools.docs.reference docs/reference.md

# The operator image, with podman as root (docs/image.md): IMAGE_BASE=debian makes a Debian
# base with mmdebstrap (no registry needed); any image reference is used as the base instead.
# Tagged by a hash of its inputs, so a second run with nothing changed builds nothing.
IMAGE_BASE ?= debian
image: $(STAMP)
	$(BIN)/python -m tools.image.build --base '$(IMAGE_BASE)'

clean:
	rm -rf $(VENV) $(TOOLS_VENV) .mypy_cache .pytest_cache .ruff_cache
