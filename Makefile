# sciops.platform: the two front-door commands are `make up` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
NODE_IMAGE ?= sciops/node:debian12
export SCIOPS_NODE_IMAGE := $(NODE_IMAGE)
# The execution environment built locally from Debian (make ee; README "AWX").
EE_IMAGE ?= sciops/ee:local
export SCIOPS_EE_IMAGE := $(EE_IMAGE)
# The job-queue repository as an archive, for machines that cannot reach GitHub (the local
# environment and the services scenario deploy the real applications from it).
SCIOPS_NMPI_ARCHIVE ?= $(abspath $(CURDIR)/../shared/upstream/ebrains-neuromorphic-job-queue-api-59c92ce.tar.gz)
export SCIOPS_NMPI_ARCHIVE
# Mitogen for Ansible (0.3.x, from .venv): its strategy runs each node's modules in one
# persistent Python over the same docker/ssh transport instead of one process per task, about
# 4x faster on a no-op. SCIOPS_MITOGEN=0 runs Ansible's own linear strategy (the plain path,
# which `make test` also exercises); either way the playbooks and inventories are the same.
SCIOPS_MITOGEN ?= 1
ifeq ($(SCIOPS_MITOGEN),1)
export ANSIBLE_STRATEGY_PLUGINS = $(shell ls -d $(CURDIR)/$(VENV)/lib/python3*/site-packages/ansible_mitogen/plugins/strategy 2>/dev/null | head -1)
export ANSIBLE_STRATEGY = $(if $(ANSIBLE_STRATEGY_PLUGINS),mitogen_linear,linear)
endif
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# What `make test` runs, in order. Checks joined by & run at the same time (each on nodes and a
# network of its own); plain: runs a check without Mitogen, so the plain path stays tested.
# Every molecule scenario must be named here (make test refuses to start otherwise). The groups
# follow the CPU use run-checks prints: alone, services used 54 % of the 2 cores and local-e2e
# 62 % (they wait on their nodes' starts and health checks), so each shares its time with two
# shorter scenarios. The jupyterhub scenario runs beside checks that make no docker network: its
# browser test's Chromium drops pages when the host's interfaces change (ERR_NETWORK_CHANGED), as
# another scenario's create and destroy do.
TEST_CHECKS ?= lint&collection&unit&sanity&molecule:jupyterhub plain:molecule:common&molecule:postgres \
  molecule:services&molecule:discourse_backup&molecule:gpu_worker local-e2e&molecule:letsencrypt&molecule:postgres_upgrade
__test_words := $(patsubst plain:%,%,$(subst &, ,$(TEST_CHECKS)))
__test_missing := $(filter-out $(__test_words),$(addprefix molecule:,$(SCENARIOS)))

.PHONY: help setup venv tools docker image ee up down test lint yamllint ansible-lint shellcheck collection unit sanity molecule local-e2e awx-templates bench bench-scale bench-switch bench-hub bench-forum bench-gpu lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- set-up (idempotent: a second run changes nothing and takes seconds) ------------------
setup: venv tools docker image ## Prepare this machine: .venv, host tools the checks call, Docker engine, test-node image

$(VENV)/.installed: requirements-dev.txt
	@scripts/preflight.sh
	@PYTHON=$(PYTHON) scripts/ensure-venv.sh

venv: $(VENV)/.installed

tools: venv ## Install the host commands the checks call (dig, openssl, curl, shellcheck, npm, unzip, chromium, chromedriver; helm into .venv/bin)
	@scripts/ensure-host-tools.sh
	@scripts/ensure-helm.sh

docker: ## Use the running Docker engine, or install and start one (root, Debian)
	@scripts/preflight.sh
	@scripts/ensure-docker.sh

image: docker ## Build the Debian 12 systemd test-node image when its recipe changed
	@scripts/build-node-image.sh $(NODE_IMAGE)

ee: image venv ## Build the execution environment from Debian (same lists as execution-environment.yml) when they changed
	@scripts/build-ee-image.sh $(EE_IMAGE)

# --- the local environment -----------------------------------------------------------------
up: setup ## Deploy the whole platform to local containers and print what runs where
	ansible-playbook -i inventories/local playbooks/provision.yml playbooks/local.yml

down: venv ## Remove the local environment's containers and network (nothing else)
	@scripts/ensure-docker.sh >/dev/null
	ansible-playbook -i inventories/local playbooks/provision.yml -e '{"provision_state": "absent", "provision_confirm_absent": true}'

# --- checks --------------------------------------------------------------------------------
test: setup ## Run every check (lint, collection build, unit, sanity, molecule scenarios, local end-to-end)
	@test -z "$(__test_missing)" || { echo "make test: add $(__test_missing) to TEST_CHECKS in the Makefile"; exit 1; }
	@scripts/run-checks.sh $(foreach c,$(TEST_CHECKS),'$(c)')

lint: yamllint ansible-lint shellcheck ## yamllint, ansible-lint (production profile), shellcheck

yamllint: venv
	yamllint --strict .

shellcheck: tools
	shellcheck -x scripts/*.sh tests/*/*.sh molecule/*/files/*.sh .ci/run

ansible-lint: venv
	ansible-lint --profile production --strict

collection: venv ## Build the collection tarball, install it apart, and use it by FQCN
	@tests/collection/check-build.sh

unit: venv tools ## Unit and module tests of the plugins against the local API test servers
	@tests/unit/run.sh

sanity: venv ## ansible-test sanity on the plugins (offline)
	@tests/sanity/run.sh

molecule: setup ## Run the molecule scenarios (SCENARIOS="postgres" to pick)
	@for s in $(SCENARIOS); do molecule test -s $$s; done

local-e2e: setup ee ## make up, check the platform answers, run the AWX templates through ansible-runner, make down
	@tests/local/e2e.sh

awx-templates: venv ## Write awx/templates.yml (AWX job templates) from awx/operations.yml and the argument specs
	python scripts/awx-templates.py

bench: setup ## Benchmark: cold and no-op converge per role: the postgres role on a fresh node, the whole platform
	@tests/bench/postgres.sh >/dev/null
	@tests/bench/platform.sh 1 >/dev/null
	@python tests/bench/report.py combined tests/output/bench/postgres tests/output/bench/platform-1 | tee tests/output/bench/table.md

bench-scale: setup ## Benchmark: the whole platform on 1, 4 and 8 app nodes, the cost of each extra node
	@for n in 1 4 8; do tests/bench/platform.sh $$n >/dev/null; done
	@python tests/bench/report.py scale 1=tests/output/bench/platform-1 4=tests/output/bench/platform-4 \
	  8=tests/output/bench/platform-8 | tee tests/output/bench/scale.md

bench-switch: up ## Benchmark: ~50 requests/s at the front door while switch_colour.yml runs
	@python tests/bench/switch_load.py

bench-hub: setup ## Benchmark: JupyterHub spawn p50/p95 (10 sequential, 20 concurrent users), first cell, hub memory (molecule jupyterhub converged)
	@python tests/bench/jupyterhub_spawn.py

bench-forum: venv ## Benchmark: upload and restore drill of a 1 GiB forum backup against S3 on loopback (BENCH_FORUM_MB=1024)
	@python tests/bench/discourse_backup.py --size-mb $(or $(BENCH_FORUM_MB),1024)

bench-gpu: setup ## Benchmark: GPU workers (fake GPUs: test doubles) on 1, 4 and 8 nodes, the cost of each extra node, a rolling upgrade in batches of 2
	@for n in 1 4 8; do tests/bench/gpu_workers.sh $$n >/dev/null; done
	@python tests/bench/report.py gpu 1=tests/output/bench/gpu-1 4=tests/output/bench/gpu-4 \
	  8=tests/output/bench/gpu-8 | tee tests/output/bench/gpu.md

lock: ## Regenerate requirements-dev.txt (full pinned set) from requirements-dev.in
	rm -rf /tmp/sciops-lock && $(PYTHON) -m venv /tmp/sciops-lock
	/tmp/sciops-lock/bin/pip install -q -r requirements-dev.in
	{ echo "# Generated by 'make lock' from requirements-dev.in. Do not edit by hand."; \
	  /tmp/sciops-lock/bin/pip freeze --exclude-editable; } > requirements-dev.txt

clean: ## Remove .venv and build outputs (not the Docker image)
	rm -rf $(VENV) build tests/output *.tar.gz  # .venv may be a link: the cached virtualenv stays
