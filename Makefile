# The front door. Every target sets up what it needs first (apt packages, .venv), then acts.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
PYTEST      := $(VENV)/bin/pytest
SYSTEM_PY   ?= python3
# Debian packages the tests, benchmarks, the local runtime and the real test node use.
APT_PACKAGES := redis-server postgresql-15 wrk rsyslog iproute2 openssl util-linux \
                containerd runc containernetworking-plugins iptables conntrack debootstrap buildah
VENV_STAMP  := $(VENV)/.installed
# The test clusters build Kubernetes, etcd, KWOK and CoreDNS with Go (cached under ~/.cache).
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: help setup apt venv run test lint unit bench deploy verify teardown e2e e2e-full cluster-up cluster-down local-cluster clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: apt venv ## install apt packages and the Python venv

apt:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || $(SYSTEM_PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,deploy]'
	@touch $@

# Local runtime with embedded defaults: Redis on 127.0.0.1:$(REDIS_PORT) (data in ./data/redis),
# SQLite in ./data/app.db, the API on :$(PORT), and the collector tailing the API's own log file.
PORT       ?= 8080
REDIS_PORT ?= 6379
run: setup ## run the whole runtime locally with embedded defaults (SQLite + a local Redis)
	@mkdir -p data/redis data/logs data/collector
	@redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 || redis-server --port $(REDIS_PORT) --bind 127.0.0.1 \
	  --dir $(CURDIR)/data/redis --appendonly yes --daemonize yes --pidfile $(CURDIR)/data/redis/redis.pid \
	  --logfile $(CURDIR)/data/redis/redis.log
	@echo "API on http://127.0.0.1:$(PORT)  (docs: /docs, metrics: /metrics); collector metrics on :9102; Ctrl-C stops"
	@trap 'kill 0' INT TERM EXIT; \
	  LOG_PATHS='data/logs/*.log' STATE_DIR=data/collector NODE_NAME=$$(hostname) \
	    $(PY) -m agents.collector > data/collector.jsonl & \
	  REDIS_PORT=$(REDIS_PORT) PORT=$(PORT) $(PY) -m app 2> >(tee -a data/logs/api.log >&2)

lint: venv ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: setup ## every test except the cluster end-to-end runs
	$(PYTEST) -m "not e2e and not e2e_full"

test: setup lint ## lint + every test, including both cluster end-to-end runs (what CI runs)
	$(PYTEST)

bench: setup ## performance figures against same-run baselines (see bench/README.md)
	$(PY) -m bench.run_all

# The main job. With a reachable cluster (current kube context): deploy onto it.
# Without one: LOCAL_CLUSTER=1 builds and starts the local cluster (control plane + real node)
# and deploys onto it; otherwise it says so and runs the whole runtime locally (make run).
KUBE_REACHABLE := $(PY) -c 'import sys; from kubernetes import client, config; \
  config.load_kube_config(); client.VersionApi().get_code(_request_timeout=5)' >/dev/null 2>&1
deploy: setup ## deploy the stack: current kube context, else the local cluster (LOCAL_CLUSTER=1), else make run
	@if $(KUBE_REACHABLE); then \
	  $(VENV)/bin/ansible-playbook playbooks/site.yml; \
	elif [ "$(LOCAL_CLUSTER)" = 1 ]; then \
	  $(MAKE) --no-print-directory local-cluster && eval "$$($(CLUSTER) env)" && \
	  $(VENV)/bin/ansible-playbook -i inventory/test-node playbooks/site.yml && \
	  echo "Deployed. $$($(CLUSTER) env | grep KUBECONFIG); API: http://127.0.0.1:30080"; \
	else \
	  echo "No reachable Kubernetes cluster in the current kube context."; \
	  echo "  - minikube start && make deploy      deploys onto Minikube"; \
	  echo "  - make deploy LOCAL_CLUSTER=1        builds and starts a local cluster here and deploys onto it"; \
	  echo "Meanwhile, running the whole runtime locally with embedded defaults (make run):"; \
	  $(MAKE) --no-print-directory run; \
	fi

verify: setup ## verify.yml against the current kube context: every acceptance point, fails loudly
	$(VENV)/bin/ansible-playbook playbooks/verify.yml

teardown: setup ## remove the stack (PVCs and their Secrets kept unless DELETE_PVCS=1)
	$(VENV)/bin/ansible-playbook playbooks/teardown.yml $(if $(filter 1,$(DELETE_PVCS)),-e teardown_delete_pvcs=true)

e2e: setup ## site.yml + verify.yml (objects) + idempotence on a KWOK control plane built from source
	$(PYTEST) -m e2e

e2e-full: setup ## the whole verify.yml on a cluster with a real kubelet/containerd node
	$(PYTEST) -m e2e_full

CLUSTER := $(PY) tests/cluster/kubecluster.py
NODE    := $(PY) tests/node/realnode.py
cluster-up: setup ## start the KWOK test control plane (built from source on first use); prints export KUBECONFIG=...
	$(CLUSTER) up

cluster-down: ## stop the test control plane (and the real node, if any)
	-$(NODE) down
	$(CLUSTER) down

local-cluster: setup ## control plane + a real kubelet/containerd node running the stack's images
	$(CLUSTER) up
	$(NODE) up --exclusive

clean: ## remove the venv and local state (build caches under ~/.cache are kept)
	rm -rf $(VENV) data .pytest_cache .ruff_cache
