# The front door. Every target sets up what it needs first (apt packages, .venv), then acts.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
PYTEST      := $(VENV)/bin/pytest
SYSTEM_PY   ?= python3
# Debian packages the tests, benchmarks and the local runtime use.
APT_PACKAGES := redis-server postgresql-15 wrk rsyslog iproute2 openssl
VENV_STAMP  := $(VENV)/.installed

.PHONY: help setup apt venv run test lint unit bench deploy e2e e2e-full cluster-up cluster-down clean

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

run: setup ## run the whole runtime locally with embedded defaults (SQLite + a local Redis)
	$(PY) -m tests.local_runtime

lint: venv ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

unit: setup ## every test except the cluster end-to-end runs
	$(PYTEST) -m "not e2e and not e2e_full"

test: setup lint ## lint + every test, including both cluster end-to-end runs (what CI runs)
	$(PYTEST)

bench: setup ## performance figures against same-run baselines (see bench/README.md)
	$(PY) -m bench.run_all

deploy: setup ## site.yml against the current kube context (see README)
	$(VENV)/bin/ansible-playbook playbooks/site.yml

e2e: setup ## site.yml + verify.yml (objects) + idempotence on a KWOK control plane built from source
	$(PYTEST) -m e2e

e2e-full: setup ## the whole verify.yml on a cluster with a real kubelet/containerd node
	$(PYTEST) -m e2e_full

clean: ## remove the venv and local state (build caches under ~/.cache are kept)
	rm -rf $(VENV) data .pytest_cache .ruff_cache
