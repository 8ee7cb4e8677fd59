# esm-poller developer tasks. `make test` works on a fresh machine with python3, node/npm, gcc and go.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.esm-poller-installed
LINT_PATHS := poller tests $(if $(wildcard bench/*.py),bench)
PYTEST_ARGS ?= -q
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: help venv install infra lint test unit demo bench clean distclean

help:
	@echo "make install   virtualenv in $(VENV) with esm-poller (editable) and test tools"
	@echo "make infra     test servers: npm (kinesalite, kinesis-local), Maven (Kafka broker jars),"
	@echo "              apt (rabbitmq-server, activemq);"
	@echo "              helm and promtool (go install) in tests/infra/.cache/bin"
	@echo "make lint      ruff check + mypy"
	@echo "make test      install, infra, lint, then every test (servers start inside pytest)"
	@echo "make unit      unit tests only (no servers)"
	@echo "make demo      run the local demo"
	@echo "make bench     run every benchmark (writes bench/results.json)"
	@echo "make clean     remove build output and caches (distclean: also $(VENV), node_modules, tools)"

$(BIN)/python:
	@echo "==> creating $(VENV) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python

$(INSTALLED): pyproject.toml setup.py $(wildcard poller/*.pyx) | $(BIN)/python
	@echo "==> installing esm-poller and its test dependencies into $(VENV)"
	$(PIP) install --quiet --upgrade 'setuptools>=68' wheel
	@# The editable install imports poller/ from the source tree, so the extension is built
	@# once, in place, below.
	POLLER_NO_EXTENSIONS=1 $(PIP) install --quiet -e '.[test]'
	@echo "==> building the Cython batcher in place"
	$(BIN)/python setup.py --quiet build_ext --inplace
	@touch $@

install: $(INSTALLED)
	@:

infra:
	@tests/infra/install.sh
	@tests/infra/install-kafka.sh
	@tests/infra/install-mq.sh
	@tests/infra/tools.sh

lint: install
	@echo "==> ruff"
	$(BIN)/ruff check $(LINT_PATHS)
	@echo "==> mypy"
	$(BIN)/mypy $(LINT_PATHS)

test: install infra
	@$(MAKE) lint
	@echo "==> pytest"
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/pytest $(PYTEST_ARGS) -m "not integration"

demo: install infra
	$(BIN)/poller demo

bench: install infra
	$(BIN)/poller bench all
	$(BIN)/poller bench filtering

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
	rm -f poller/*.so
	find . -path ./$(VENV) -prune -o -path ./tests/infra/node_modules -prune \
		-o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) tests/infra/node_modules tests/infra/.cache tests/infra/kafka/lib
