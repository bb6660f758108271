#!/usr/bin/env bash
# Create .venv if missing, install tf_lrp with the dev extras, lint, build the docs site (strict), test the
# wheel in a fresh venv, and run the whole test suite (slow tests and examples/ included).
# Extra arguments go to every pytest run, e.g. ./scripts/test.sh -k layout -x
set -euo pipefail
source "$(dirname "$0")/_venv.sh" "dev,torch,jax,viz,beam,docs"
.venv/bin/ruff check .
.venv/bin/python -m mypy  # tf_lrp, strict (pyproject [tool.mypy])
site="$(mktemp -d)"; NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$site"; rm -rf "$site"  # the docs site
.venv/bin/python scripts/wheel_test.py  # the built wheel in a fresh venv, without the optional extras
.venv/bin/python -m pytest -n 2 "$@"  # both cores (CI has 2)
# the numeric core again, on JAX; XLA's CPU backend at LLVM -O0 (same IEEE arithmetic, no fast-math either
# way): these tiny networks spend their time compiling, not running (4:41 -> 3:29 on 2 cores)
XLA_FLAGS="${XLA_FLAGS:-} --xla_backend_optimization_level=0" KERAS_BACKEND=jax .venv/bin/python -m pytest -n 2 -m core -q "$@"
KERAS_BACKEND=torch .venv/bin/python -m pytest -n 2 -m core -q "$@"  # and on PyTorch (eager)
./scripts/gpu_smoke.sh  # benchmarks/gpu.sh --smoke on CPU JAX without TensorFlow, installed as on the GPU machine
