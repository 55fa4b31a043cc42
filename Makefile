# Two commands set up everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CDRS ?= 5000
ACCOUNTS ?= 300

.PHONY: run test test-unit bench system-deps venv clean

# Reinstall only when the dependency list changes; the package itself is editable.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian clickhouse-server for the native-protocol tests (installed only when root and missing).
system-deps:
	bash deploy/install-system-deps.sh

# In a terminal the stack and the portal stay up after the check (Ctrl-C stops them); elsewhere
# (CI, pipes) the demo ends by itself.
STAY ?= $(shell [ -t 0 ] && echo --stay)
run: $(STAMP)
	$(VENV)/bin/cdrflow demo --cdrs $(CDRS) --accounts $(ACCOUNTS) $(STAY)

test: $(STAMP) system-deps
	$(PY) -m pytest -q -ra

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(VENV)/bin/cdrflow bench

clean:
	rm -rf $(VENV) var reports
