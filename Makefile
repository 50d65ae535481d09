# The two commands a newcomer needs: `make run` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# librsvg2-bin: rsvg-convert renders the review drafts' SVG charts to PNG in the tests (an independent renderer).
# chromium: the console's browser tests drive Debian's Chromium through Playwright (no browser is downloaded).
# npm: installs axe-core for the console's accessibility test (only when the machine has no npm).
DEBIAN_PACKAGES := prometheus prometheus-alertmanager librsvg2-bin chromium $(if $(shell command -v npm),,npm)
# axe-core (npm, pinned in tests/a11y/package-lock.json) checks every console page in Chromium.
AXE := tests/a11y/node_modules/axe-core/axe.min.js
# MLflow's real server for the registry tests, in its own environment (it is large and pins a lot).
MLFLOW_VENV := .venv-mlflow

.PHONY: run demo test lint typecheck pytest install install-test debian-packages postgres kubectl kubernetes clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/sloguard db upgrade
	$(BIN)/sloguard serve --host 127.0.0.1 --port 8080

# The whole story on this machine in about two minutes (needs the Debian packages `make test` installs).
demo: install
	$(BIN)/sloguard demo

debian-packages:
	@if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null || ! command -v rsvg-convert >/dev/null || ! command -v chromium >/dev/null || ! command -v npm >/dev/null; then \
		echo "installing $(DEBIAN_PACKAGES) from Debian's packages"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(DEBIAN_PACKAGES); \
	fi

# The storage tests run on PostgreSQL at 127.0.0.1:5432 too; start the local cluster if it is down.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
		if ! command -v pg_ctlcluster >/dev/null; then \
			$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q postgresql; \
		fi; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -n1) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

# The Kubernetes tests render the overlays with `kubectl kustomize`. Debian 12's kubernetes-client (kubectl
# 1.20, kustomize 2) knows neither Components nor replacements, so it will not do: where kubectl is missing
# or older, install kubectl 1.27 or newer (kustomize v5) from the Kubernetes project's own package
# repository or release binaries; this machine's kubectl is 1.32 with kustomize v5.5.
kubectl:
	@command -v kubectl >/dev/null || { echo "kubectl is missing: install kubectl >= 1.27 (kustomize v5), see the Makefile"; exit 1; }
	@kubectl version --client 2>/dev/null | grep -q 'Kustomize Version: v5' || { echo "kubectl's kustomize is older than v5: install kubectl >= 1.27"; exit 1; }

# deploy/kubernetes/base carries copies of slo/ and runbooks/ (kustomize reads files only inside its own
# folder, so `kubectl apply -k` works as shipped) and the Prometheus Operator Component a PrometheusRule
# generated from slo/ with the public URL of base/settings.env. Run this after editing an SLO or runbook;
# tests/integration/test_kubernetes.py fails while they are stale (and while a new file is missing from the lists of
# deploy/kubernetes/base/kustomization.yaml).
KUBE := deploy/kubernetes
kubernetes: install
	rm -f $(KUBE)/base/slo/*.yaml $(KUBE)/base/runbooks/*.md
	cp slo/*.yaml $(KUBE)/base/slo/
	cp runbooks/*.md $(KUBE)/base/runbooks/
	SLOGUARD_PUBLIC_URL="$$(sed -n 's/^SLOGUARD_PUBLIC_URL=//p' $(KUBE)/base/settings.env)" \
		$(BIN)/sloguard slo rules slo/ --format prometheusrule -o $(KUBE)/components/prometheus-operator/prometheusrule.yaml

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy app

$(MLFLOW_VENV)/bin/mlflow:
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/pip install --quiet "mlflow>=3.1,<4"

# Test files run in PYTEST_WORKERS processes (xdist): most tests wait on real servers, so more workers
# than cores pays. `--dist loadfile` keeps a file on one worker, so a module's servers (MLflow,
# Prometheus) start once. Latency is measured by bench/, never asserted by a test.
PYTEST_WORKERS ?= 4
$(AXE): tests/a11y/package.json tests/a11y/package-lock.json | debian-packages
	npm ci --prefix tests/a11y --no-audit --no-fund
	touch $@

pytest: install-test debian-packages postgres kubectl $(MLFLOW_VENV)/bin/mlflow $(AXE)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25

test: lint typecheck pytest

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) tests/a11y/node_modules .mypy_cache .pytest_cache .ruff_cache sloguard.db sloguard.db-wal sloguard.db-shm
