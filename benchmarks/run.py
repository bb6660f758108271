"""Benchmarks of tf_lrp: explained samples/s, compile time, peak memory, GFLOP/s and ratios.

Not part of the test suite. Every row runs in a fresh subprocess (so its peak memory is its
own) and prints one JSON line; the parent collects the rows into a markdown table.

Commands (from the repository root)::

    # the representative subset committed in benchmarks/RESULTS.md (a few minutes on 2 cores)
    python -m benchmarks.run --quick --out benchmarks/RESULTS.md

    # one row, e.g. the issue's speed target: small bi-LSTM, batch 256, float32
    python -m benchmarks.run --cell lstm --direction bi --size small --batch 256 --dtype float32

    # XLA on and off, several batches, both cells (the cross product of the lists)
    python -m benchmarks.run --cell lstm gru --direction uni bi --size small --batch 1 32 256 1024 \\
        --dtype float32 float64 --xla off on

    # the full grid of the issue (hours on 2 CPU cores; meant for a bigger machine)
    python -m benchmarks.run --full --out benchmarks/RESULTS_full.md

    # the JAX backend (e.g. on a GPU: see benchmarks/gpu.sh)
    python -m benchmarks.run --backend jax --quick

    # check the naive numpy baseline against tf_lrp (float64, 1e-10)
    python -m benchmarks.run --verify

Columns: samples/s of ``Explainer.explain`` (median, min, max over ``--repeats`` timed calls
after one warm-up call), the first call (trace + compile + run), ``trace_count`` after extra
calls at a smaller batch and a shorter length, peak resident memory of the row's process
(``VmHWM``) and its growth over the state before the first call, achieved GFLOP/s from the
stated matmul FLOP count (see :func:`flops`), and the ratio of the LRP time to (a) the time
the FLOPs would take at the measured matmul peak (1024² square matmul, same dtype, timed in
the same rounds as the LRP calls), (b) a plain Keras forward pass of the same model (same
weights, same batch, compiled ``predict_on_batch``, same rounds; like tf_lrp in full float32),
(c) the naive per-sample float64 numpy implementation (:mod:`benchmarks.naive_numpy`).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"small": (60, 60, 5, 50), "large": (300, 256, 5, 100)}  # E, H, C, T
GATES = {"lstm": 4, "gru": 3}
FULL_BATCHES = (1, 32, 256, 1024, 4096)
ROOT = Path(__file__).resolve().parents[1]

QUICK = [  # (cell, direction, size, batch, dtype, xla)
    ("lstm", "bi", "small", 256, "float32", "off"),
    ("lstm", "bi", "small", 256, "float32", "on"),
    ("lstm", "bi", "small", 256, "float64", "off"),
    ("lstm", "bi", "small", 1, "float32", "off"),
    ("lstm", "bi", "small", 32, "float32", "off"),
    ("lstm", "bi", "small", 1024, "float32", "off"),
    ("lstm", "uni", "small", 256, "float32", "off"),
    ("gru", "bi", "small", 256, "float32", "off"),
    ("gru", "uni", "small", 256, "float64", "off"),
    ("lstm", "bi", "large", 256, "float32", "off"),
    ("lstm", "bi", "large", 256, "float64", "off"),
]

GPU = [  # the GPU target is the small bi-LSTM at a large batch
    *(("lstm", "bi", "small", b, "float32", "off") for b in (256, 4096, 16384, 65536)),
    ("lstm", "uni", "small", 16384, "float32", "off"),
    ("gru", "bi", "small", 16384, "float32", "off"),
    ("gru", "uni", "small", 16384, "float32", "off"),
    ("lstm", "bi", "small", 16384, "float64", "off"),
    ("lstm", "bi", "large", 256, "float32", "off"),
    ("lstm", "bi", "large", 4096, "float32", "off"),
    ("gru", "bi", "large", 4096, "float32", "off"),
]


# --------------------------------------------------------------------------------------------
# Model and counts


def make_weights(cell: str, bidirectional: bool, size: str, dtype: str = "float64", seed: int = 0) -> list:
    """Random weights of ``Sequential([(Bidirectional)(CELL(H)), Dense(C)])`` in Keras order."""
    import numpy as np

    e, h, c, _ = SIZES[size]
    rng = np.random.default_rng(seed)
    g = GATES[cell]
    arrays = []
    for _ in range(2 if bidirectional else 1):
        bias_shape = (g * h,) if cell == "lstm" else (2, g * h)
        arrays += [
            rng.normal(0, 1 / np.sqrt(e), (e, g * h)),
            rng.normal(0, 1 / np.sqrt(h), (h, g * h)),
            rng.normal(0, 0.1, bias_shape),
        ]
    d = h * (2 if bidirectional else 1)
    arrays += [rng.normal(0, 1 / np.sqrt(d), (d, c)), rng.normal(0, 0.1, (c,))]
    return [a.astype(dtype) for a in arrays]


def flops(cell: str, bidirectional: bool, size: str, batch: int) -> tuple[float, float]:
    """Matmul FLOPs (multiply-add = 2) of one LRP call and of one forward pass.

    Forward, per sample, step and direction: the gate pre-activations ``[x_t, h_prev] @ W``,
    ``2·(E + H)·G·H`` (G = 4 gate blocks for the LSTM, 3 for the GRU). The LRP backward adds
    one ε-node over ``[x_t, h_prev]`` for the candidate only, ``2·(E + H)·H``: LRP costs
    ``(G + 1) / G`` forward passes (1.25 for the LSTM). The dense head and all elementwise
    work are left out.
    """
    e, h, _, t = SIZES[size]
    g = GATES[cell]
    per_step = 2 * (e + h) * h
    count = batch * t * (2 if bidirectional else 1)
    return count * per_step * (g + 1), count * per_step * g


# --------------------------------------------------------------------------------------------
# Measurements (inside the row's subprocess)


def _vm(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _time(call, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def matmul_call(dtype: str, m: int = 1024, k: int = 1024, n: int = 1024, times: int = 1):
    """A compiled chain of ``times`` matmuls (m, k) @ (k, n), each fed the previous result's first
    k columns (like a recurrence; needs n >= k when times > 1); returns the callable and its FLOPs.
    """
    import numpy as np
    from keras import ops

    from tf_lrp import backend

    def chain(a, b):
        h = a
        for _ in range(times):
            h = ops.matmul(h, b)[:, :k] * 0.5
        return ops.sum(h)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(m, k)).astype(dtype), (rng.normal(size=(k, n)) / np.sqrt(k)).astype(dtype)
    compiled = backend.Compiled(chain, [backend.TensorSpec((m, k), dtype), backend.TensorSpec((k, n), dtype)])
    compiled(a, b)  # warm-up (traces and compiles)
    return (lambda: compiled(a, b)), 2 * m * k * n * times


def keras_forward_call(weights: list, cell: str, bidirectional: bool, size: str, dtype: str, x):
    """A callable running ``predict_on_batch`` of the plain Keras model with the same weights."""
    import keras

    from tf_lrp import backend

    e, h, c, _ = SIZES[size]
    layer_type = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    rnn = layer_type(h, dtype=dtype)
    layers = [keras.Input((None, e), dtype=dtype), keras.layers.Bidirectional(rnn) if bidirectional else rnn]
    model = keras.Sequential([*layers, keras.layers.Dense(c, dtype=dtype)])
    model.set_weights(weights)

    def forward():
        with backend.float32_matmuls():  # tf_lrp's precision: no TensorFloat-32 on a GPU either
            return model.predict_on_batch(x)

    forward()  # warm-up (compiles the predict function)
    return forward


def run_row(row: dict) -> dict:
    """Measure one row in this process; returns the JSON-able result.

    The machine may be shared, so the LRP call, the Keras forward pass and the reference
    matmul are timed in turn, round after round, and each ratio is the median of the
    per-round ratios (a load spike then hits all three of a round alike).
    """
    import numpy as np

    from benchmarks import naive_numpy
    from tf_lrp import Explainer, backend

    cell, size, batch, dtype = row["cell"], row["size"], row["batch"], row["dtype"]
    bidirectional = row["direction"] == "bi"
    e, _, _, t = SIZES[size]
    weights = make_weights(cell, bidirectional, size, dtype)
    xla = row["xla"] == "on"
    options = {"memory_budget": row["memory_budget"]} if row.get("memory_budget") else {}
    ex = Explainer.from_weights(
        weights, cell=cell, bidirectional=bidirectional, dtype=dtype, jit_compile=xla, **options
    )
    x = np.random.default_rng(1).normal(size=(batch, t, e)).astype(dtype)
    rss_before = _vm("VmRSS")
    start = time.perf_counter()
    ex.explain(x)
    first = time.perf_counter() - start
    peak = _vm("VmHWM")  # before the Keras model and the matmul add their own memory
    forward_call = keras_forward_call(weights, cell, bidirectional, size, dtype, x)
    matmul, matmul_flops = matmul_call(dtype)
    # the size of one fused step of the recurrence: [x_t, h_prev] (B, E + H) @ W (E + H, G·H)
    e_h, gh = e + SIZES[size][1], GATES[cell] * SIZES[size][1]
    step_matmul, step_flops = matmul_call(dtype, batch, e_h, gh, times=max(1, min(50, 2**22 // (batch * e_h))))
    lrp_flops, fwd_flops = flops(cell, bidirectional, size, batch)
    times, forwards, peaks, step_peaks = [], [], [], []
    for _ in range(row["repeats"]):
        times += _time(lambda: ex.explain(x), 1)
        forwards += _time(forward_call, 1)
        peaks.append(matmul_flops / min(_time(matmul, 2)) / 1e9)
        step_peaks.append(step_flops / min(_time(step_matmul, 2)) / 1e9)
    ex.explain(x[: max(1, batch // 2), : t - 1])  # another batch size and length
    median = statistics.median(times)
    result = dict(row)
    result.update(
        backend=backend.name(),
        samples_s=batch / median,
        samples_s_min=batch / max(times),
        samples_s_max=batch / min(times),
        first_call_s=first,
        traces=ex.trace_count,
        peak_rss_mb=peak / 2**20,
        peak_growth_mb=(peak - rss_before) / 2**20,
        working_set_mb=ex.working_set_bytes(t) * batch / 2**20,
        gflops=lrp_flops / median / 1e9,
        matmul_peak_gflops=statistics.median(peaks),
        # time at the matmul peak / LRP time, per round: 1.0 = at the bound
        of_matmul_bound=statistics.median(lrp_flops / p / 1e9 / s for p, s in zip(peaks, times, strict=True)),
        step_matmul_gflops=statistics.median(step_peaks),
        of_step_matmul_bound=statistics.median(
            lrp_flops / p / 1e9 / s for p, s in zip(step_peaks, times, strict=True)
        ),
        keras_forward_s=statistics.median(forwards),
        lrp_over_forward=statistics.median(s / f for s, f in zip(times, forwards, strict=True)),
        forward_gflops=fwd_flops / statistics.median(forwards) / 1e9,
    )
    naive_n = 1 if size == "large" else 2
    naive = statistics.median(
        _time(lambda: naive_numpy.lrp_batch(weights, x[:naive_n].astype("float64"), cell, bidirectional), 2)
    )
    result["naive_samples_s"] = naive_n / naive
    result["speedup_over_naive"] = result["samples_s"] / result["naive_samples_s"]
    return result


# --------------------------------------------------------------------------------------------
# Driver


def _rows(args: argparse.Namespace) -> list[dict]:
    if args.quick:
        combos = QUICK
    elif args.gpu:
        combos = GPU
    elif args.full:
        grid = (("lstm", "gru"), ("uni", "bi"), SIZES, FULL_BATCHES, ("float32", "float64"), ("off", "on"))
        combos = list(itertools.product(*grid))
    else:
        combos = list(itertools.product(args.cell, args.direction, args.size, args.batch, args.dtype, args.xla))
    keys = ("cell", "direction", "size", "batch", "dtype", "xla")
    rows = [dict(zip(keys, c, strict=True), repeats=args.repeats, memory_budget=args.memory_budget) for c in combos]
    for row in rows:  # a large row at a large batch takes seconds per call: fewer repeats
        if args.quick and row["size"] == "large":
            row["repeats"] = min(row["repeats"], 3)
    return rows


def _machine(backend_name: str) -> str:
    import keras
    import numpy as np

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"keras {keras.__version__}"]
    for module in ("tensorflow", "jax"):
        with contextlib.suppress(ImportError):
            versions.append(f"{module} {__import__(module).__version__}")
    if backend_name == "jax":
        with contextlib.suppress(Exception):
            import jax

            versions.append("devices " + ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices()))
    return (
        f"- CPU: {cpu}, {os.cpu_count()} logical cores visible ({platform.machine()}, {platform.system()})\n"
        f"- Keras backend: {backend_name}\n- Versions: {', '.join(versions)}"
    )


def _table(results: list[dict]) -> str:
    head = (
        "| cell | dir | size | batch | dtype | XLA | samples/s median (min-max) | first call s | traces | "
        "peak RSS MB (growth) | GFLOP/s | matmul GFLOP/s: 1024², step | of bound: 1024², step | LRP / Keras fwd | "
        "naive samples/s | vs naive |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['cell']} | {r['direction']} | {r['size']} | {r['batch']} | {r['dtype']} | "
                         f"{r['xla']} | failed: {r['error'][:80]} |")  # fmt: skip
            continue
        lines.append(
            f"| {r['cell']} | {r['direction']} | {r['size']} | {r['batch']} | {r['dtype']} | {r['xla']} | "
            f"{r['samples_s']:,.0f} ({r['samples_s_min']:,.0f}-{r['samples_s_max']:,.0f}) | {r['first_call_s']:.1f} | "
            f"{r['traces']} | {r['peak_rss_mb']:,.0f} (+{r['peak_growth_mb']:,.0f}) | {r['gflops']:.1f} | "
            f"{r['matmul_peak_gflops']:.0f}, {r['step_matmul_gflops']:.0f} | "
            f"{100 * r['of_matmul_bound']:.0f} %, {100 * r['of_step_matmul_bound']:.0f} % | "
            f"{r['lrp_over_forward']:.2f} | "
            f"{r['naive_samples_s']:.1f} | {r['speedup_over_naive']:,.{0 if r['speedup_over_naive'] >= 10 else 1}f}x |"
        )
    return "\n".join(lines)


def _command(row: dict, backend_name: str) -> str:
    return (
        f"KERAS_BACKEND={backend_name} python -m benchmarks.run --cell {row['cell']} --direction {row['direction']} "
        f"--size {row['size']} --batch {row['batch']} --dtype {row['dtype']} --xla {row['xla']}"
    )


def verify() -> float:
    """Largest relative difference between tf_lrp and the naive numpy LRP (float64)."""
    import numpy as np

    from benchmarks import naive_numpy
    from tf_lrp import Explainer

    worst = 0.0
    for cell, bidirectional in itertools.product(("lstm", "gru"), (False, True)):
        weights = make_weights(cell, bidirectional, "small", seed=3)
        x = np.random.default_rng(4).normal(size=(3, 12, SIZES["small"][0]))
        ex = Explainer.from_weights(weights, cell=cell, bidirectional=bidirectional, dtype="float64")
        for bias_factor in (0.0, 1.0):
            ours = ex.explain(x, eps=1e-3, bias_factor=bias_factor)
            naive, scores = naive_numpy.lrp_batch(weights, x, cell, bidirectional, ours.target, 1e-3, bias_factor)
            scale = np.abs(naive).max()
            difference = max(np.abs(ours.relevance - naive).max() / scale, np.abs(ours.scores - scores).max())
            label = f"{cell} {'bi' if bidirectional else 'uni'} bias_factor={bias_factor}"
            print(f"{label}: max rel. diff {difference:.2e}")
            worst = max(worst, difference)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", nargs="+", choices=sorted(GATES), default=["lstm"])
    parser.add_argument("--direction", nargs="+", choices=("uni", "bi"), default=["bi"])
    parser.add_argument("--size", nargs="+", choices=sorted(SIZES), default=["small"])
    parser.add_argument("--batch", nargs="+", type=int, default=[256])
    parser.add_argument("--dtype", nargs="+", choices=("float32", "float64"), default=["float32"])
    parser.add_argument("--xla", nargs="+", choices=("off", "on"), default=["off"])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row after the warm-up")
    parser.add_argument("--quick", action="store_true", help="the representative subset (RESULTS.md)")
    parser.add_argument("--gpu", action="store_true", help="the GPU subset (benchmarks/gpu.sh)")
    parser.add_argument("--memory-budget", type=int, help="Explainer(memory_budget=...) in bytes (default 1 GiB)")
    parser.add_argument("--full", action="store_true", help="the issue's full grid")
    parser.add_argument("--backend", choices=("tensorflow", "jax"), help="sets KERAS_BACKEND for the rows")
    parser.add_argument("--out", type=Path, help="write the markdown table here (default: print)")
    parser.add_argument("--verify", action="store_true", help="compare the naive numpy LRP with tf_lrp")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one JSON row in this process
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.row:
        print("ROW " + json.dumps(run_row(json.loads(args.row))), flush=True)
        return 0
    if args.verify:
        worst = verify()
        print(f"worst {worst:.2e} (1e-10 required)")
        return 0 if worst < 1e-10 else 1
    backend_name = os.environ.get("KERAS_BACKEND", "tensorflow")
    results = []
    started = time.perf_counter()
    for row in _rows(args):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", "--row", json.dumps(row)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "KERAS_BACKEND": backend_name},
        )
        lines = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
        result = json.loads(lines[-1]) if lines else {**row, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        results.append(result)
        print(_table([result]).splitlines()[-1], flush=True)
    elapsed = time.perf_counter() - started
    report = (
        f"## Results ({backend_name}, {time.strftime('%Y-%m-%d')}, {elapsed / 60:.0f} min)\n\n"
        f"{_machine(backend_name)}\n\n{_table(results)}\n\nReproduce a row:\n\n```\n"
        + "\n".join(_command(r, backend_name) for r in results)
        + "\n```\n"
    )
    if args.out:
        args.out.write_text(report)
        (args.out.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
