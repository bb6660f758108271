#!/usr/bin/env bash
# CI: benchmarks/gpu.sh --smoke run exactly as on the GPU machine, on CPU JAX, so the GPU script
# cannot rot between GPU runs. The "system Python" is .venv-gpusim, a venv of the same base
# interpreter as .venv holding only JAX and numpy (no TensorFlow, no Keras, no jsonschema), made
# once; the wheel folder is prepared with .venv's pins (downloaded once, tf_lrp's wheel rebuilt
# every time) and installed with pip --no-index --no-deps --target, as there.
set -euo pipefail
cd "$(dirname "$0")/.."
sim=.venv-gpusim
jax_version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('jax'))")
python_version=$(.venv/bin/python -c "import sys; print('%d.%d' % sys.version_info[:2])")
if [ ! -f "$sim/.jax-$jax_version" ]; then
  rm -rf "$sim"
  .venv/bin/python -m venv "$sim"  # based on .venv's base interpreter, without .venv's packages
  "$sim/bin/python" -m pip install -q --disable-pip-version-check "jax==$jax_version" "jaxlib==$jax_version"
  touch "$sim/.jax-$jax_version"
fi
if "$sim/bin/python" -c "import tensorflow" 2>/dev/null || "$sim/bin/python" -c "import keras" 2>/dev/null; then
  echo "gpu_smoke: $sim must not have TensorFlow or Keras (the GPU machine has neither)" >&2
  exit 1
fi
PREPARE_PYTHON=.venv/bin/python WHEELS="$sim/wheels" benchmarks/gpu.sh --prepare --python-version "$python_version"
PYTHON="$sim/bin/python" WHEELS="$sim/wheels" TARGET="$sim/site" OUT="$sim/smoke/RESULTS_smoke.md" \
  benchmarks/gpu.sh --smoke
# the report must hold the row and the probe, with numbers
grep -q "| lstm | bi | tiny | 64 | float32 | [0-9]" "$sim/smoke/RESULTS_smoke.md"
grep -q "| lstm | bi | tiny | float32 | [0-9,]* | yes |" "$sim/smoke/RESULTS_smoke.md"
echo "gpu_smoke: ok"
