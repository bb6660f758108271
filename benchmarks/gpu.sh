#!/usr/bin/env bash
# GPU figures in one command, on a bare offline machine whose system Python already has JAX with
# CUDA (and numpy), but no Keras, no jsonschema and no TensorFlow. Two steps (docs/performance.md):
#
#   1. here, with network:   benchmarks/gpu.sh --prepare
#        fills benchmarks/wheels/ (git-ignored, about 26 MiB) with wheels for CPython 3.12 on
#        manylinux x86_64: keras, jsonschema, tqdm and all their needs, and tf_lrp's own wheel built
#        from this source tree without its TensorFlow requirement (benchmarks/gpu_wheels.py).
#        Bring the folder along with the source tree (the device tool: carry benchmarks/wheels).
#   2. there, offline:       benchmarks/gpu.sh
#        installs the wheels the system Python lacks with pip --no-index --no-deps --target
#        $TARGET, checks that JAX sees a GPU and that tf_lrp runs from the installed wheel with
#        TensorFlow blocked, then runs the GPU subset (python -m benchmarks.run --gpu --fit) with a
#        progress line per row, stopping new rows at $DEADLINE; writes $OUT (markdown) and the
#        .json beside it after every row.
#
# Options (one of them, first):
#   --prepare [--python-version X.Y] [--refresh]   step 1 (default 3.12)
#   --dry-run    print what step 2 would install and run; installs and runs nothing
#   --smoke      step 2 on a CPU: one tiny row and a 1-call --fit probe in seconds (CI runs this)
# Anything after the option (or without one) goes to `python -m benchmarks.run`, e.g. --repeats 3.
#
# Environment:
#   PYTHON=python3                      the system Python with JAX (step 2)
#   WHEELS=benchmarks/wheels            the wheel folder
#   TARGET=${TMPDIR:-/tmp}/tf_lrp-gpu-site   where the wheels are installed (reused when unchanged)
#   OUT=benchmarks/RESULTS_gpu.md       the report (--smoke: $TARGET-smoke/RESULTS_smoke.md)
#   DEADLINE=420                        seconds after which no new row starts (the run stays < 8 min)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-benchmarks/wheels}
TARGET=${TARGET:-${TMPDIR:-/tmp}/tf_lrp-gpu-site}
mode=run
case "${1:-}" in
  --prepare) mode=prepare; shift ;;
  --dry-run) mode=dry-run; shift ;;
  --smoke) mode=smoke; shift ;;
esac
started=$SECONDS
say() { printf '[gpu.sh %3ss] %s\n' "$((SECONDS - started))" "$*"; }

if [ "$mode" = prepare ]; then
  # the Python that downloads needs network and pip; its keras/jsonschema/tqdm versions are the pins
  exec "${PREPARE_PYTHON:-${PYTHON}}" benchmarks/gpu_wheels.py prepare "$WHEELS" "$@"
fi

if [ "$mode" = smoke ]; then
  OUT=${OUT:-$TARGET-smoke/RESULTS_smoke.md}
  run_args=(--backend jax --smoke --fit --fit-limit-mb 32 --repeats 2 --deadline 120 --out "$OUT" "$@")
else
  OUT=${OUT:-benchmarks/RESULTS_gpu.md}
  run_args=(--backend jax --gpu --fit --deadline "${DEADLINE:-420}" --out "$OUT" "$@")
fi
# tf_lrp from the installed wheel (first on the path), benchmarks/ from the source tree; -P semantics
# (PYTHONSAFEPATH) keep the working directory, which holds the source tf_lrp, off sys.path
run_env=(env KERAS_BACKEND=jax PYTHONSAFEPATH=1 PYTHONPATH="$TARGET:$root" TF_CPP_MIN_LOG_LEVEL=3
         JAX_COMPILATION_CACHE_DIR="$TARGET-jax-cache")

say "system Python: $(command -v "$PYTHON") ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
if [ "$mode" = dry-run ]; then
  "$PYTHON" benchmarks/gpu_wheels.py plan "$WHEELS" | sed "s|^|[gpu.sh dry-run] |"
  echo "[gpu.sh dry-run] would install them: $PYTHON -m pip install --no-index --no-deps --target $TARGET <the wheels above>"
  echo "[gpu.sh dry-run] would check: jax.devices() has a GPU; tf_lrp imports from $TARGET with TensorFlow blocked"
  echo "[gpu.sh dry-run] would run: ${run_env[*]} $PYTHON -m benchmarks.run ${run_args[*]}"
  PYTHONPATH="$root" "$PYTHON" -c "
from benchmarks.run import GPU, FIT
for r in GPU: print('[gpu.sh dry-run]   row', *r[:5])
print('[gpu.sh dry-run]   and, after the last', *FIT, 'row, the --fit probe of that configuration (up to 4 calls)')"
  exit 0
fi

"$PYTHON" benchmarks/gpu_wheels.py install "$WHEELS" "$TARGET" | sed "s|^|[gpu.sh] |"
say "installed; checking the device and the installed tf_lrp"
SMOKE=$([ "$mode" = smoke ] && echo 1 || echo 0) "${run_env[@]}" "$PYTHON" - <<'EOF'
import os
import sys

sys.modules["tensorflow"] = None  # any `import tensorflow` now raises: tf_lrp must not need it
import jax
import numpy as np

devices = jax.devices()
print("[gpu.sh check] jax", jax.__version__, "devices:", devices, flush=True)
if os.environ["SMOKE"] != "1" and not any(d.platform == "gpu" for d in devices):
    sys.exit("[gpu.sh check] no GPU visible to JAX (jax.devices() above): is the CUDA plugin installed and the driver loaded?")
import tf_lrp
from tf_lrp import Explainer, backend

target = os.environ["PYTHONPATH"].split(os.pathsep)[0]
if not os.path.realpath(tf_lrp.__file__).startswith(os.path.realpath(target)):
    sys.exit(f"[gpu.sh check] tf_lrp was imported from {tf_lrp.__file__}, not from the installed wheel in {target}")
from benchmarks.run import make_weights

ex = Explainer.from_weights(make_weights("lstm", True, "tiny", "float32"), cell="lstm", bidirectional=True)
relevance = ex.explain(np.ones((2, 5, 8), "float32")).relevance
print(f"[gpu.sh check] tf_lrp {tf_lrp.__version__} from {os.path.dirname(tf_lrp.__file__)}, backend {backend.name()}, "
      f"relevance {relevance.shape}, accelerator memory {backend.accelerator_memory()}", flush=True)
EOF
say "running: python -m benchmarks.run ${run_args[*]}"
"${run_env[@]}" "$PYTHON" -m benchmarks.run "${run_args[@]}"
say "done: wrote $OUT and ${OUT%.md}.json"
[ "$mode" = smoke ] || say "copy its tables into benchmarks/RESULTS.md (GPU section) beside the prediction in NOTES.md"
