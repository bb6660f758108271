#!/usr/bin/env bash
# Create .venv if missing, install tf_lrp with the dev extras, lint, and run the whole test suite
# (slow tests included). Extra arguments go to every pytest run, e.g. ./scripts/test.sh -k layout -x
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "dev,torch,jax,viz,beam"
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
KERAS_BACKEND=jax .venv/bin/python -m pytest -m core -q "$@"  # the numeric core again, on JAX
KERAS_BACKEND=torch .venv/bin/python -m pytest -m core -q "$@"  # and on PyTorch (eager)
