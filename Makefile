# Seisan — the front door. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck pytest proto proto-check buf-lint install lock clean \
        bench-events bench-intake bench-match eval-receipts chaos-payout chaos-cluster proto-compat proto-baseline catalogue \
        deploy-check nats-config

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## Create the virtualenv (if missing) and install pinned dependencies

lock: ## Re-pin requirements.lock from the current virtualenv
	$(PY) -m pip freeze --exclude-editable | grep -v '^seisan' > requirements.lock

proto: $(STAMP) ## Generate Python, gRPC and .pyi stubs from protos/ into shared/seisan (+ README catalogue)
	$(PY) tools/gen_protos.py
	$(PY) tools/gen_catalogue.py

proto-compat: $(STAMP) ## Check protos stay wire-compatible with protos/compat/baseline.binpb (buf breaking, WIRE)
	$(PY) tools/check_proto_compat.py

proto-baseline: $(STAMP) ## Move the wire-compat baseline to the current protos (deliberate; commit with the protos)
	$(PY) tools/check_proto_compat.py --update-baseline

catalogue: $(STAMP) ## Regenerate the README event catalogue from seisan_shared.catalogue
	$(PY) tools/gen_catalogue.py

buf-lint: $(STAMP) ## Lint the protos with buf
	$(VENV)/bin/buf lint

run: $(STAMP) ## Start the whole stack on the embedded default (nats-server from the wheel, SQLite under ./var)
	$(VENV)/bin/seisan up

lint: $(STAMP) ## ruff format check + lint
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP) ## mypy over shared/, services/, tests/ and tools/
	$(VENV)/bin/mypy shared/seisan_shared services tools tests

pytest: $(STAMP) ## pytest only (unit, integration, e2e, browser)
	$(PY) -m pytest -q

test: buf-lint proto-compat lint typecheck pytest ## Everything CI runs: buf lint, wire compat, ruff, mypy, pytest

bench-events: $(STAMP) ## ≥100k events through outbox → JetStream → consumer; prints one summary line
	$(PY) tools/bench_events.py

bench-match: $(STAMP) ## Matching engine: 1M charges × ~1M receipts; seconds, peak MB, precision/recall, p99
	$(PY) tools/bench_match.py

SHARED_DATA ?= ../shared/data
eval-receipts: $(STAMP) ## Extraction accuracy: the SROIE dev scans and 30 generated Japanese receipts
	$(VENV)/bin/seisan eval receipts --images $(SHARED_DATA)/sroie-dev/images --labels $(SHARED_DATA)/sroie-dev/labels
	$(PY) tools/gen_japanese_receipts.py var/eval-ja --count 30 --seed 7
	$(VENV)/bin/seisan eval receipts --images var/eval-ja/images --labels var/eval-ja/labels

chaos-payout: $(STAMP) ## ≥1,000 payouts through crashes and Stripe faults, checked against Stripe's own records
	$(PY) tools/chaos_payout.py

chaos-cluster: $(STAMP) ## Whole flow on a 3-node NATS cluster + PostgreSQL, 2 replicas each, SIGKILLs; lost/duplicated/double_paid 0
	$(PY) tools/chaos_cluster.py

bench-intake: $(STAMP) ## 12-MP photos: upload → receipt.extracted p50/p95, 1 vs 2 workers, normalise ms
	$(PY) tools/bench_intake.py

clean: ## Remove local state (./var) and caches, keep the virtualenv
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

deploy-check: $(STAMP) ## deploy/: generated NATS config up to date, Kubernetes overlays render and pass the schemas (offline)
	$(PY) tools/gen_nats_config.py --check
	$(PY) tools/kustomize_lite.py deploy/k8s/overlays/dev --validate > /dev/null
	$(PY) tools/kustomize_lite.py deploy/k8s/overlays/production --validate > /dev/null
	@echo "deploy: nats config current, k8s overlays dev+production valid"

nats-config: $(STAMP) ## Regenerate deploy/nats/*.conf and the NATS ConfigMap from seisan_shared.bus.accounts
	$(PY) tools/gen_nats_config.py
