# Quick start: `make test`, `make backup`, `make dev`. Everything installs into ./.venv.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.local/dagster

.PHONY: install test lint backup dev dagster-home clean

$(STAMP): pyproject.toml
	@command -v python3 >/dev/null || { echo "python3 is missing: install the Debian package python3-venv"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV) || { echo "cannot create a venv: install the Debian package python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

# With DATABASE_URL unset: the demo database motovaultpro_demo (scripts/demo.py).
backup: $(STAMP) dagster-home
	@export DATABASE_URL="$${DATABASE_URL:-$$($(PY) scripts/demo.py)}" && \
	$(VENV)/bin/backup-pipeline migrate && \
	$(VENV)/bin/backup-pipeline backup

dev: $(STAMP) dagster-home
	@export DATABASE_URL="$${DATABASE_URL:-$$($(PY) scripts/demo.py)}" && \
	$(VENV)/bin/backup-pipeline migrate && \
	$(VENV)/bin/dagster dev -m backup_pipeline.definitions -h 127.0.0.1 -p 3000

clean:
	$(PY) scripts/local_services.py stop --dir .local/services || true
	rm -rf .local
