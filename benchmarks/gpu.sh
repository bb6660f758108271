#!/usr/bin/env bash
# GPU figures through the JAX backend, on a machine with an NVIDIA GPU where only JAX with CUDA
# is installed (a GPU build of TensorFlow is often not installable there; tf_lrp's numeric core
# does not import TensorFlow under KERAS_BACKEND=jax).
#
# Usage, from the repository root:
#   benchmarks/gpu.sh                      # builds .venv-gpu, checks, runs the GPU subset
#   benchmarks/gpu.sh --repeats 10         # extra arguments go to `python -m benchmarks.run`
#
# Environment:
#   PYTHON=python3.11   the interpreter for the new venv (default python3)
#   VENV=.venv-gpu      where to build it; an existing one is reused
#   WHEELS=dir          an offline machine: install from this folder only (pip --no-index). Fill it
#                       on a connected machine with
#                         pip download -d wheels "jax[cuda12]" keras numpy jsonschema tqdm
#                       (same Python version and platform as the GPU machine), then copy it over.
#                       If JAX with CUDA is already installed system-wide, use
#                         PYTHON=/path/to/that/python VENV_ARGS=--system-site-packages
#   OUT=benchmarks/RESULTS_gpu.md   the markdown report (the .json next to it has every number)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-benchmarks/RESULTS_gpu.md}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv ${VENV_ARGS:-} "$VENV"
  pip_args=()
  [ -n "${WHEELS:-}" ] && pip_args=(--no-index --find-links "$WHEELS")
  # jax with CUDA unless the venv already sees one (system site packages)
  "$VENV/bin/python" -c "import jax" 2>/dev/null || "$VENV/bin/pip" install "${pip_args[@]}" "jax[cuda12]"
  "$VENV/bin/pip" install "${pip_args[@]}" keras numpy jsonschema tqdm
  # tf_lrp itself without its TensorFlow requirement
  "$VENV/bin/pip" install "${pip_args[@]}" --no-deps --no-build-isolation -e . 2>/dev/null \
    || echo "note: tf_lrp not installed into $VENV; running from the source tree"
fi

export KERAS_BACKEND=jax PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# fail early: a GPU must be visible, and tf_lrp must import and run with TensorFlow blocked
"$VENV/bin/python" - <<'EOF'
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now raises
import jax
import numpy as np
from tf_lrp import Explainer, backend
devices = jax.devices()
print("devices:", devices)
if not any(d.platform == "gpu" for d in devices):
    sys.exit("no GPU visible to JAX (jax.devices() above); install jax[cuda12] matching the driver")
assert backend.name() == "jax"
from benchmarks.run import make_weights
ex = Explainer.from_weights(make_weights("lstm", True, "small", "float32"), cell="lstm", bidirectional=True)
print("smoke test: relevance", ex.explain(np.ones((2, 5, 60), "float32")).relevance.shape)
EOF
# 16 GiB per compiled call: large batches in one chunk on a data-centre GPU
"$VENV/bin/python" -m benchmarks.run --backend jax --gpu --memory-budget $((16 << 30)) --out "$OUT" "$@"
echo "wrote $OUT; copy its table into benchmarks/RESULTS.md (GPU section) with the GPU model"
