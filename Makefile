# One target per task. Every target installs what it needs first, so a fresh clone
# only needs Python 3.11+ and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help install lock lint test demo up bench clean asl

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv with the locked dev dependencies

$(VENV)/.installed: requirements/dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

lock: $(VENV)/.installed ## re-resolve requirements/dev.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements/dev.lock

lint: install ## ruff, mypy and cfn-lint
	$(BIN)/ruff check src functions tests layers benchmarks
	$(BIN)/ruff format --check src functions tests layers benchmarks
	$(BIN)/mypy
	# Each handler is its own `app` module, so mypy checks them one at a time.
	for handler in functions/*/app.py; do $(BIN)/mypy $$handler || exit 1; done
	$(BIN)/cfn-lint template.yaml

test: install ## run the whole test suite (what CI runs)
	$(BIN)/pytest -n 2 --dist loadgroup

demo: install ## run the pipeline locally end to end on the sample images (+ HTML report)
	$(BIN)/imgpipe demo

up: install ## serve the local cloud on 127.0.0.1:4566 until Ctrl-C
	$(BIN)/imgpipe local up

asl: ## regenerate statemachine/backfill.asl.json from pipeline.asl.json
	$(PYTHON) statemachine/backfill.py

clean: ## remove build output and the virtual environment
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis build demo-output

# ---------------------------------------------------------------- SAM build and deploy
# The SAM CLI lives in its own virtualenv: its pins clash with the dev tools in .venv.
SAM_VENV := .venv-sam
# No usage telemetry: the SAM CLI would otherwise call home on every command.
SAM      := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
PIP_VERSION := 26.3
# Lambda target of the build; empty = the template's Architecture/Runtime defaults.
# `make build ARCHITECTURE=x86_64 RUNTIME=python3.12` passes both to the template
# (--parameter-overrides) and to the layer Makefiles (which pick the wheels).
ARCHITECTURE ?=
RUNTIME      ?=
SAM_TARGET_PARAMETERS = $(strip $(if $(ARCHITECTURE),Architecture=$(ARCHITECTURE)) $(if $(RUNTIME),Runtime=$(RUNTIME)))
SAM_BUILD_FLAGS ?=
SAM_DEPLOY_FLAGS ?=

.PHONY: build check-layer deploy

$(SAM_VENV)/.installed: layers/sam-requirements.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r layers/sam-requirements.txt
	@touch $@

build: $(SAM_VENV)/.installed ## sam build: functions + arm64 layers into .aws-sam/ (no Docker)
	PYTHON=$(abspath $(SAM_VENV)/bin/python) $(SAM) build $(SAM_BUILD_FLAGS) \
		$(if $(SAM_TARGET_PARAMETERS),--parameter-overrides $(SAM_TARGET_PARAMETERS))

check-layer: $(SAM_VENV)/.installed ## check .aws-sam's layers match the template's runtime/arch
	$(SAM_VENV)/bin/python layers/check_layer.py --build-dir .aws-sam/build --template template.yaml \
		$(if $(ARCHITECTURE),--architecture $(ARCHITECTURE)) $(if $(RUNTIME),--runtime $(RUNTIME))

deploy: build check-layer ## sam deploy (guided when there is no samconfig.toml)
	if [ -f samconfig.toml ]; then \
		$(SAM) deploy $(SAM_DEPLOY_FLAGS) $(if $(SAM_TARGET_PARAMETERS),--parameter-overrides $(SAM_TARGET_PARAMETERS)); \
	else \
		$(SAM) deploy --guided $(SAM_DEPLOY_FLAGS); \
	fi

# ---------------------------------------------------------------- benchmark
# pyvips + pyvips-binary (pinned in benchmarks/requirements.txt) are benchmark-only:
# neither the functions nor the tests need them. BENCH_ARGS passes options through,
# e.g. `make bench BENCH_ARGS="--quick"` or `BENCH_ARGS="--rounds 5 --images DIR"`.
BENCH_ARGS ?=

.PHONY: bench

bench: install ## benchmark the imaging core vs the seed handler, libvips and the decode floor
	$(BIN)/uv pip install --python $(BIN)/python -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)
