# Every target builds .venv itself from the pinned requirements (uv when present, else pip).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := $(shell command -v uv 2>/dev/null)
PYTEST_ARGS ?=
AIRFLOW_ARGS ?=
PIPELINE ?= shapes-detector

.PHONY: help venv demo test test-ui airflow airflow-env lint bench lock clean label-studio label-studio-stop

help:
	@echo "make demo     run the shapes demo pipeline end to end on the embedded AWS emulator"
	@echo "make demo PIPELINE=<name>   another pipeline file, include/pipelines/<name>.yaml"
	@echo "make test     run the test suite"
	@echo "make test-ui  drive the Airflow UI in headless Chromium (installs chromium)"
	@echo "make bench    benchmarks against peers (benchmarks/README.md)"
	@echo "make airflow  start a local Airflow (UI on http://127.0.0.1:8080) on the emulator"
	@echo "make airflow-env   the airflow CLI's environment for it: eval \"\$$(make -s airflow-env)\""
	@echo "make lint     ruff (including the Airflow 3 rules, AIR3) and mypy over plugins/ and local_aws/"
	@echo "make label-studio   start Label Studio on 127.0.0.1:8081 (own venv); label-studio-stop stops it"
	@echo "make demo DEMO_ARGS='--backend ground_truth|label_studio'   the other labeling backends"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifdef UV
	$(UV) pip install --python $(PY) -q -r requirements-dev.txt
else
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
endif
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --pipeline $(PIPELINE) $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest --ignore=tests/ui --durations=25 $(PYTEST_ARGS)

# Headless Chromium against the real api-server; installs Debian's chromium (as root) and Selenium.
test-ui: $(STAMP)
	PY=$(PY) bash scripts/ui_deps.sh
	$(PY) -m pytest tests/ui $(PYTEST_ARGS)

airflow: $(STAMP)
	$(PY) scripts/local_airflow.py $(AIRFLOW_ARGS)

# No $(STAMP) prerequisite: its output is eval'ed, so it must print nothing but `export` lines.
airflow-env:
	@$(PY) scripts/local_airflow.py --print-env $(AIRFLOW_ARGS)

label-studio: $(STAMP)
	$(PY) scripts/label_studio.py start

label-studio-stop: $(STAMP)
	$(PY) scripts/label_studio.py stop

bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --select AIR3 --preview dags plugins
	$(VENV)/bin/mypy

lock: $(STAMP)
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile --python-version 3.11 --no-header --no-annotate requirements.in -o requirements.txt
	$(VENV)/bin/uv pip compile --python-version 3.11 --no-header --no-annotate requirements-dev.in -o requirements-dev.txt
	# The compose image's CeleryExecutor lock, constrained by the dev pins (docker-compose.yaml).
	$(VENV)/bin/uv pip compile --python-version 3.11 --no-header --no-annotate requirements-celery.in -o requirements-celery.txt

clean:
	rm -rf .state .pytest_cache .ruff_cache
