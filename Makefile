# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
# Each creates its virtual environments from pyproject.toml on first use.
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.est-ckpt-installed
# The TF-free core's environment: no TensorFlow, numpy 2.
CORE_VENV := .venv-core
CORE_STAMP := $(CORE_VENV)/.est-ckpt-installed
# Where teams go next: the newest TensorFlow (2.16+, Keras 3) on numpy 2, no Estimator.
NEWEST_VENV := .venv-newest
NEWEST_STAMP := $(NEWEST_VENV)/.est-ckpt-installed
# What that environment holds before est_ckpt comes: installing est_ckpt must change none of it.
# PyTorch too, the CPU build on this machine's disk: Keras 3 on the PyTorch backend loads what est_ckpt writes.
NEWEST_STACK := 'tensorflow-cpu>=2.16' 'numpy>=2' 'h5py>=3.7' 'torch==2.13.0'
NEWEST_FREEZE := $(NEWEST_VENV)/bin/python -m pip freeze | grep -iE '^(tensorflow|tensorflow-cpu|tensorflow_cpu|keras|numpy|protobuf|h5py|torch)=='
# The first interpreter that TensorFlow 2.15 supports (Python 3.9 to 3.11): the Estimator plugin's.
PYTHON := $(shell for p in python3 python3.11 python3.10 python3.9; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] < (3, 12))' 2>/dev/null \
	&& { echo $$p; break; }; done)
# The newest interpreter here for the core (it supports 3.9 to 3.13).
CORE_PYTHON := $(shell for p in python3.13 python3.12 python3 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] < (3, 14))' 2>/dev/null \
	&& { echo $$p; break; }; done)

# The newest interpreter the newest TensorFlow supports (3.10 to 3.13).
NEWEST_PYTHON := $(shell for p in python3.13 python3.12 python3 python3.11 python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] < (3, 14))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: test test-estimator test-core test-newest demo bench lint build wheel-check clean

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "est_ckpt's Estimator plugin needs Python 3.9, 3.10 or 3.11 (python3, python3.11, python3.10, python3.9 tried): TensorFlow 2.15, the last release with tf.estimator, has no wheels for Python 3.12 or newer."; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e '.[estimator,test]'
	touch $(STAMP)

$(CORE_STAMP): pyproject.toml
	@if [ -z "$(CORE_PYTHON)" ]; then echo "est_ckpt's core needs Python 3.9 to 3.13."; exit 1; fi
	$(CORE_PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install -q --upgrade pip
	$(CORE_VENV)/bin/python -m pip install -q -e '.[test-core]' 'numpy>=2'
	touch $(CORE_STAMP)

# The user's stack first, then est_ckpt into it: pip must keep TF, Keras and numpy as they were.
$(NEWEST_STAMP): pyproject.toml
	@if [ -z "$(NEWEST_PYTHON)" ]; then echo "the newest TensorFlow needs Python 3.10 to 3.13."; exit 1; fi
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(NEWEST_VENV)/bin/python -m pip install -q $(NEWEST_STACK)
	$(NEWEST_FREEZE) > $(NEWEST_VENV)/stack-before.txt
	$(NEWEST_VENV)/bin/python -m pip install -q -e '.[test-core,keras,safetensors]'
	$(NEWEST_FREEZE) > $(NEWEST_VENV)/stack-after.txt
	@diff $(NEWEST_VENV)/stack-before.txt $(NEWEST_VENV)/stack-after.txt \
		|| { echo "installing est_ckpt changed the user's TensorFlow stack (above)"; exit 1; }
	touch $(NEWEST_STAMP)

# Every environment in turn: Estimator (TF 2.15, tf.keras 2), the TF-free core on numpy 2, then the
# newest TensorFlow with Keras 3 and numpy 2 (tests needing Estimator or tf.keras 2 are skipped there
# by their markers, saying so).
test: test-estimator test-core test-newest

test-estimator: $(STAMP)
	$(VENV)/bin/python -m pytest -q tests

test-core: $(CORE_STAMP)
	@$(CORE_VENV)/bin/python -c 'import importlib.util as u, sys, numpy; sys.exit("tensorflow" if u.find_spec("tensorflow") else 0)' \
		|| { echo "$(CORE_VENV) must not hold TensorFlow"; exit 1; }
	$(CORE_VENV)/bin/python -m pytest -q tests

# Estimator's Python trains the canned models that the Keras 3 tests continue (tests/estimator_job.py).
test-newest: $(NEWEST_STAMP) $(STAMP)
	@cat $(NEWEST_VENV)/stack-after.txt | tr '\n' ' '; echo
	EST_CKPT_ESTIMATOR_PYTHON=$(abspath $(VENV))/bin/python $(NEWEST_VENV)/bin/python -m pytest -q tests

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

# The wheel of this tree installs in a fresh venv (the core only) and its console script runs.
wheel-check: $(STAMP)
	rm -rf build/wheel-check && mkdir -p build/wheel-check
	$(VENV)/bin/python -m pip wheel -q --no-deps -w build/wheel-check .
	$(CORE_PYTHON) -m venv build/wheel-check/venv
	build/wheel-check/venv/bin/python -m pip install -q build/wheel-check/est_ckpt-*.whl
	build/wheel-check/venv/bin/est-ckpt --version

clean:
	rm -rf $(VENV) $(CORE_VENV) $(NEWEST_VENV) build dist *.egg-info
