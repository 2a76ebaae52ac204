# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates .venv from pyproject.toml on first use.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.est-ckpt-installed
# The first interpreter that TensorFlow 2.15 supports (Python 3.9 to 3.11).
PYTHON := $(shell for p in python3 python3.11 python3.10 python3.9; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: test demo bench lint build clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "est_ckpt needs Python 3.9, 3.10 or 3.11 (python3, python3.11, python3.10, python3.9 tried): TensorFlow 2.15, the last release with tf.estimator, has no wheels for Python 3.12 or newer."; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests

demo: $(STAMP)
	$(VENV)/bin/est-ckpt demo $(if $(WORKDIR),--workdir=$(WORKDIR))

bench: $(STAMP)
	@for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check est_ckpt tests
	$(VENV)/bin/ruff format --check est_ckpt tests

build: $(STAMP)
	$(VENV)/bin/python -m pip install -q build
	$(VENV)/bin/python -m build

clean:
	rm -rf $(VENV) build dist *.egg-info
