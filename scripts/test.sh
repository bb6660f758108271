#!/usr/bin/env bash
# Create .venv if missing, install tf_lrp with the dev extras, lint, and run the whole test suite
# (slow tests included). Extra arguments go to pytest, e.g. ./scripts/test.sh -k layout
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "dev,torch,jax,viz,beam"
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
KERAS_BACKEND=jax .venv/bin/python -m pytest -m core -q  # the numeric core again, on JAX
KERAS_BACKEND=torch .venv/bin/python -m pytest -m core -q  # and on PyTorch (eager)
./scripts/gpu_smoke.sh  # benchmarks/gpu.sh --smoke on CPU JAX without TensorFlow, installed as on the GPU machine
