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

    # the JAX backend (e.g. on a GPU: see benchmarks/gpu.sh, which runs --gpu --fit)
    python -m benchmarks.run --backend jax --quick

    # the roofline prediction for a GPU (bytes and FLOPs per sample; benchmarks/NOTES.md)
    python -m benchmarks.run --roofline

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

On an accelerator (``--gpu``) each row also reports the compile time (first call minus a
steady call), the peak device memory (``tf_lrp.backend.accelerator_memory``), the stated HBM
bytes of one call (:func:`traffic`) and the share of the bandwidth bound: the time those bytes
take at the bandwidth of a compiled elementwise pass over a large array, measured in the same
rounds, over the LRP time. ``--fit`` probes the largest batch one compiled call can take.
``--deadline`` skips the rows that would start after it, so a run fits a time window.
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
from collections.abc import Callable
from pathlib import Path

SIZES = {"tiny": (8, 8, 3, 10), "small": (60, 60, 5, 50), "large": (300, 256, 5, 100)}  # E, H, C, T
GATES = {"lstm": 4, "gru": 3}
KEPT = {"lstm": 9, "gru": 8}  # H-vectors the forward keeps per step and direction (Explainer.working_set_bytes)
FULL_BATCHES = (1, 32, 256, 1024, 4096)
ROOT = Path(__file__).resolve().parents[1]

#: --xla: the Explainer's jit_compile (TensorFlow; JAX compiles every call whole)
JIT_COMPILE = {"off": False, "auto": "auto", "on": True}

QUICK = [  # (cell, direction, size, batch, dtype, xla)
    ("lstm", "bi", "small", 256, "float32", "auto"),
    ("lstm", "bi", "small", 256, "float32", "off"),
    ("lstm", "bi", "small", 256, "float32", "on"),
    ("lstm", "bi", "small", 256, "float64", "auto"),
    ("lstm", "bi", "small", 1, "float32", "auto"),
    ("lstm", "bi", "small", 32, "float32", "auto"),
    ("lstm", "bi", "small", 1024, "float32", "auto"),
    ("lstm", "bi", "small", 1024, "float32", "off"),
    ("lstm", "uni", "small", 256, "float32", "auto"),
    ("gru", "bi", "small", 256, "float32", "auto"),
    ("gru", "uni", "small", 256, "float64", "auto"),
    ("lstm", "bi", "large", 256, "float32", "auto"),
    ("lstm", "bi", "large", 256, "float64", "auto"),
]

GPU = [  # most important first: a run cut short by --deadline loses the tail
    *(("lstm", "bi", "small", b, "float32", "off") for b in (16384, 65536, 4096, 1024)),
    *(("gru", "bi", "small", b, "float32", "off") for b in (16384, 65536, 4096, 1024)),
    ("lstm", "bi", "small", 16384, "float64", "off"),
    *(("lstm", "bi", "large", b, "float32", "off") for b in (4096, 16384, 1024)),
    *(("gru", "bi", "large", b, "float32", "off") for b in (4096, 16384, 1024)),
]
#: --fit probes the largest batch of this configuration that one compiled call takes
FIT = ("lstm", "bi", "small", "float32")
#: --smoke: one tiny row (seconds on a CPU), so the GPU script cannot rot between GPU runs
SMOKE = [("lstm", "bi", "tiny", 64, "float32", "off")]
#: the roofline's devices: HBM bytes/s and dense float32 FLOP/s without TF32 (data sheets, rounded)
DEVICES = {"H100 SXM": (3.35e12, 60e12), "H200": (4.8e12, 60e12)}
#: the roofline's assumed cost of one sequential step of a time loop on a GPU (kernel launches of
#: the step's few fused kernels plus the loop's own bookkeeping), seconds
STEP_LATENCY = 10e-6
#: the roofline's assumed host <-> GPU copy rate for numpy (pageable) arrays over PCIe 5 x16, bytes/s
HOST_LINK = 25e9


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


def traffic(cell: str, bidirectional: bool, size: str, batch: int, dtype: str) -> tuple[float, float]:
    """Stated memory traffic (bytes moved to and from HBM) of one LRP call and one forward pass.

    A lower bound: every tensor of length T is moved once, the weights and the per-step
    state stay in cache (at most 2.4 MB in float32 for the large model). Per sample and
    direction the forward reads ``x`` (T·E) and writes and reads the input projection
    (2·T·G·H). LRP's forward also writes what the backward pass keeps, ``T·(K·H + E)``
    per direction (K = 9 H-vectors for the LSTM, 8 for the GRU; :attr:`KEPT`) plus ``x``
    itself (T·E), and its backward reads it all back and writes the relevance (T·E).
    """
    e, h, _, t = SIZES[size]
    item = 8 if dtype == "float64" else 4
    directions = 2 if bidirectional else 1
    forward = directions * t * (e + 2 * GATES[cell] * h)
    kept = t * e + directions * t * (KEPT[cell] * h + e)
    return float(batch * item * (forward + 2 * kept + t * e)), float(batch * item * forward)


def host_traffic(size: str, batch: int, dtype: str) -> tuple[float, float]:
    """Bytes copied between host and device by one ``explain`` call and one ``predict_on_batch``.

    ``explain`` takes numpy ``x`` (T·E per sample) and returns numpy relevance (T·E) and
    scores (C); the forward pass takes ``x`` and returns the C scores.
    """
    e, _, c, t = SIZES[size]
    item = 8 if dtype == "float64" else 4
    return float(batch * item * (2 * t * e + c)), float(batch * item * (t * e + c))


def roofline(batches: tuple[int, ...] = (1024, 4096, 16384, 65536), latency: float = STEP_LATENCY) -> str:
    """The predicted GPU samples/s of LRP and of the forward pass (markdown), from the stated counts.

    Per call: ``host bytes / HOST_LINK + max(HBM bytes / bandwidth, FLOPs / peak) + sequential
    steps · STEP_LATENCY``: the copies of the numpy input and output happen before and after the
    computation, and the sequential steps are the time loops run one after the other (forward:
    one loop of T per direction; LRP: the forward's loops and a backward loop of T per direction).
    """
    lines = []
    for size, cell in itertools.product(("small", "large"), ("lstm", "gru")):
        t = SIZES[size][3]
        one_lrp, one_fwd = flops(cell, True, size, 1), traffic(cell, True, size, 1, "float32")
        lines += [
            f"**{size} bi-{cell.upper()}** (E, H, C, T = {SIZES[size]}), float32, per sample: "
            f"LRP {one_lrp[0] / 1e6:.2f} MFLOP and {one_fwd[0] / 1e3:.0f} kB "
            f"({one_lrp[0] / one_fwd[0]:.1f} FLOP/B), forward {one_lrp[1] / 1e6:.2f} MFLOP and "
            f"{one_fwd[1] / 1e3:.0f} kB ({one_lrp[1] / one_fwd[1]:.1f} FLOP/B); per sample and step "
            f"(both directions): LRP {one_lrp[0] / t / 1e3:.0f} kFLOP, {one_fwd[0] / t:,.0f} B; "
            f"forward {one_lrp[1] / t / 1e3:.0f} kFLOP, {one_fwd[1] / t:,.0f} B.",
            "",
            "| device | batch | LRP ms: host copies, HBM bytes, FLOPs, step latency | LRP samples/s | limited by | "
            "LRP samples/s without host copies | forward samples/s | limited by |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for device, (bandwidth, peak) in DEVICES.items():
            for batch in batches:
                cells = []
                for which, loops in ((0, 4 * t), (1, 2 * t)):  # LRP: 2 forward + 2 backward loops
                    terms = {
                        "host copies": host_traffic(size, batch, "float32")[which] / HOST_LINK,
                        "HBM bandwidth": traffic(cell, True, size, batch, "float32")[which] / bandwidth,
                        "FLOPs": flops(cell, True, size, batch)[which] / peak,
                        "step latency": loops * latency,
                    }
                    on_device = max(terms["HBM bandwidth"], terms["FLOPs"]) + terms["step latency"]
                    total = terms["host copies"] + on_device
                    cells.append((terms, batch / total, max(terms, key=terms.__getitem__), batch / on_device))
                (lrp, lrp_rate, lrp_limit, lrp_device), (_, fwd_rate, fwd_limit, _) = cells
                lines.append(
                    f"| {device} | {batch:,} | {', '.join(f'{1e3 * v:.2f}' for v in lrp.values())} | "
                    f"{lrp_rate:,.0f} | {lrp_limit} | {lrp_device:,.0f} | {fwd_rate:,.0f} | {fwd_limit} |"
                )
        lines.append("")
    return "\n".join(lines)


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
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)  # on the device: no host transfer timed
    compiled = backend.Compiled(chain, [backend.TensorSpec((m, k), dtype), backend.TensorSpec((k, n), dtype)])
    compiled(a, b)  # warm-up (traces and compiles)
    return (lambda: compiled(a, b)), 2 * m * k * n * times


def bandwidth_call(dtype: str, megabytes: int):
    """A compiled reduction ``sum(|a|)`` over an array of ``megabytes`` (device-resident after
    the first call on JAX); returns the callable and the bytes it reads.
    """
    import numpy as np
    from keras import ops

    from tf_lrp import backend

    n = megabytes * 2**20 // np.dtype(dtype).itemsize
    a = ops.convert_to_tensor(np.ones((n,), dtype))  # on the device: only the reduction is timed
    compiled = backend.Compiled(lambda v: ops.sum(ops.abs(v)), [backend.TensorSpec((n,), dtype)])
    compiled(a)
    return (lambda: compiled(a)), n * np.dtype(dtype).itemsize


def host_copy_call(x):
    """A callable copying ``x`` to the device and an array of its size back (what ``explain`` copies)."""
    from keras import ops

    def copy():
        return ops.convert_to_numpy(ops.convert_to_tensor(x) + 0)  # + 0: a new device array to copy back

    copy()
    return copy


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


def _device_mb(field: str) -> float | None:
    """A field of the accelerator's memory (``tf_lrp.backend.DeviceMemory``) in MiB; None on a CPU."""
    from tf_lrp import backend

    memory = backend.accelerator_memory()
    value = None if memory is None else getattr(memory, field)
    return None if value is None else value / 2**20


def probe_row(row: dict) -> dict:
    """One compiled call at ``row["batch"]`` in one chunk: does it fit the device's memory?"""
    import numpy as np

    from tf_lrp import Explainer

    cell, size, batch, dtype = row["cell"], row["size"], row["batch"], row["dtype"]
    bidirectional = row["direction"] == "bi"
    e, _, _, t = SIZES[size]
    ex = Explainer.from_weights(
        make_weights(cell, bidirectional, size, dtype), cell=cell, bidirectional=bidirectional, dtype=dtype,
        memory_budget=1 << 60,  # one chunk, however large
    )  # fmt: skip
    x = np.random.default_rng(1).normal(size=(batch, t, e)).astype(dtype)
    start = time.perf_counter()
    ex.explain(x)
    first = time.perf_counter() - start
    start = time.perf_counter()
    ex.explain(x)
    return {
        **row,
        "fits": True,
        "first_call_s": first,
        "samples_s": batch / (time.perf_counter() - start),
        "peak_device_mb": _device_mb("peak"),
        "device_limit_mb": _device_mb("limit"),
        "working_set_mb": ex.working_set_bytes(t) * batch / 2**20,
    }


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
    xla = JIT_COMPILE[row["xla"]]
    budget = row.get("memory_budget")
    if budget is None and backend.accelerator_memory() is not None:  # what explain_dataset's "auto" would use
        from tf_lrp import dataset

        budget = dataset.default_budget()
    options = {"memory_budget": budget} if budget else {}
    ex = Explainer.from_weights(
        weights, cell=cell, bidirectional=bidirectional, dtype=dtype, jit_compile=xla, **options
    )
    x = np.random.default_rng(1).normal(size=(batch, t, e)).astype(dtype)
    rss_before = _vm("VmRSS")
    start = time.perf_counter()
    ex.explain(x)
    first = time.perf_counter() - start
    peak = _vm("VmHWM")  # before the Keras model and the matmul add their own memory
    steady = min(_time(lambda: ex.explain(x), 1))
    peak_device = _device_mb("peak")  # LRP calls only so far
    forward_call = keras_forward_call(weights, cell, bidirectional, size, dtype, x)
    matmul, matmul_flops = matmul_call(dtype)
    read, read_bytes = bandwidth_call(dtype, row.get("bandwidth_mb", 256))
    copy = host_copy_call(x)
    # the size of one fused step of the recurrence: [x_t, h_prev] (B, E + H) @ W (E + H, G·H)
    e_h, gh = e + SIZES[size][1], GATES[cell] * SIZES[size][1]
    step_matmul, step_flops = matmul_call(dtype, batch, e_h, gh, times=max(1, min(50, 2**22 // (batch * e_h))))
    lrp_flops, fwd_flops = flops(cell, bidirectional, size, batch)
    lrp_bytes, fwd_bytes = traffic(cell, bidirectional, size, batch, dtype)
    times, forwards, peaks, step_peaks, bandwidths, copies = [], [], [], [], [], []
    for _ in range(row["repeats"]):
        times += _time(lambda: ex.explain(x), 1)
        forwards += _time(forward_call, 1)
        peaks.append(matmul_flops / min(_time(matmul, 2)) / 1e9)
        step_peaks.append(step_flops / min(_time(step_matmul, 2)) / 1e9)
        bandwidths.append(read_bytes / min(_time(read, 2)) / 1e9)
        copies += _time(copy, 1)
    if not row.get("lean"):  # another batch size and length (a compilation on JAX: not in a GPU window)
        ex.explain(x[: max(1, batch // 2), : t - 1])
    median = statistics.median(times)
    fitting = max(1, ex.memory_budget // max(ex.working_set_bytes(t), 1))
    result = dict(row)
    result.update(
        backend=backend.name(),
        samples_s=batch / median,
        samples_s_min=batch / max(times),
        samples_s_max=batch / min(times),
        first_call_s=first,
        compile_s=max(0.0, first - steady),
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
        chunk=batch if batch <= fitting else backend.bucket_below(fitting),  # as Explainer.explain chunks
        device=(backend.accelerator_memory() or backend.DeviceMemory("cpu", None, None, None)).device,
        peak_device_mb=peak_device,
        device_limit_mb=_device_mb("limit"),
        lrp_gb=lrp_bytes / 1e9,
        host_gb=host_traffic(size, batch, dtype)[0] / 1e9,
        host_copy_s=statistics.median(copies),
        # the host <-> device copies of x and a relevance-sized array / LRP time, per round
        host_copy_share=statistics.median(c / s for c, s in zip(copies, times, strict=True)),
        forward_gb=fwd_bytes / 1e9,
        read_gb_s=statistics.median(bandwidths),
        # time the stated bytes take at the measured read bandwidth / LRP time, per round
        of_bandwidth_bound=statistics.median(
            lrp_bytes / b / 1e9 / s for b, s in zip(bandwidths, times, strict=True)
        ),
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
    elif args.smoke:
        combos = SMOKE
    elif args.gpu:
        combos = GPU
    elif args.full:
        grid = (("lstm", "gru"), ("uni", "bi"), SIZES, FULL_BATCHES, ("float32", "float64"), ("off", "on"))
        combos = list(itertools.product(*grid))
    else:
        combos = list(itertools.product(args.cell, args.direction, args.size, args.batch, args.dtype, args.xla))
    keys = ("cell", "direction", "size", "batch", "dtype", "xla")
    rows = [
        dict(zip(keys, c, strict=True), repeats=args.repeats, memory_budget=args.memory_budget,
             bandwidth_mb=8 if args.smoke else 256, lean=args.gpu or args.smoke)
        for c in combos
    ]  # fmt: skip
    for row in rows:  # a large row at a large batch takes seconds per call: fewer repeats
        if args.quick and row["size"] == "large":
            row["repeats"] = min(row["repeats"], 3)
    return rows


def _machine(backend_name: str) -> str:
    """The machine and the versions, read without importing a framework.

    The driver must not start JAX: on a GPU it would preallocate 75 % of the GPU's memory for
    itself, leaving the rows (subprocesses) a quarter. The rows report their device.
    """
    from importlib import metadata

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for name in ("numpy", "keras", "tensorflow", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "tf_lrp"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if backend_name == "jax" and cache:  # a warm cache shortens the first calls: say so
        files = sum(1 for p in Path(cache).rglob("*") if p.is_file()) if Path(cache).is_dir() else 0
        versions.append(f"JAX compilation cache {cache} ({files} files when the run started)")
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


def _gpu_table(results: list[dict]) -> str:
    """The accelerator columns: compile time, peak device memory, bytes, bandwidth and matmul bounds."""
    head = (
        "| cell | dir | size | batch | dtype | samples/s median (min-max) | chunk | compile s | "
        "peak device MB (of limit) | LRP GB moved (host copies) | host copies, of LRP time | read GB/s | "
        "of bandwidth bound | GFLOP/s | matmul GFLOP/s | of matmul bound | LRP / Keras fwd |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['cell']} | {r['direction']} | {r['size']} | {r['batch']} | {r['dtype']} | "
                         f"{r['error'][:100]} |")  # fmt: skip
            continue
        memory = "-" if r.get("peak_device_mb") is None else f"{r['peak_device_mb']:,.0f}"
        if r.get("device_limit_mb"):
            memory += f" (of {r['device_limit_mb']:,.0f})"
        lines.append(
            f"| {r['cell']} | {r['direction']} | {r['size']} | {r['batch']:,} | {r['dtype']} | "
            f"{r['samples_s']:,.0f} ({r['samples_s_min']:,.0f}-{r['samples_s_max']:,.0f}) | {r['chunk']:,} | "
            f"{r['compile_s']:.1f} | {memory} | {r['lrp_gb']:.2f} ({r['host_gb']:.2f}) | "
            f"{100 * r['host_copy_share']:.0f} % | {r['read_gb_s']:,.0f} | "
            f"{100 * r['of_bandwidth_bound']:.0f} % | {r['gflops']:,.0f} | {r['matmul_peak_gflops']:,.0f} | "
            f"{100 * r['of_matmul_bound']:.0f} % | {r['lrp_over_forward']:.2f} |"
        )
    return "\n".join(lines)


def _fit_table(probes: list[dict]) -> str:
    lines = [
        "| cell | dir | size | dtype | batch | fits | first call s | samples/s | peak device MB (of limit) | "
        "working set MB (estimate) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in probes:
        label = f"| {r['cell']} | {r['direction']} | {r['size']} | {r['dtype']} | {r['batch']:,} |"
        if not r.get("fits"):
            lines.append(f"{label} no | {r.get('error', '')[:100]} |")
            continue
        memory = "-" if r.get("peak_device_mb") is None else f"{r['peak_device_mb']:,.0f}"
        if r.get("device_limit_mb"):
            memory += f" (of {r['device_limit_mb']:,.0f})"
        lines.append(
            f"{label} yes | {r['first_call_s']:.1f} | {r['samples_s']:,.0f} | {memory} | {r['working_set_mb']:,.0f} |"
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
    parser.add_argument("--xla", nargs="+", choices=tuple(JIT_COMPILE), default=["auto"],
                        help="Explainer(jit_compile=): off False, auto (the default) fuses the loop steps, on True")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row after the warm-up")
    parser.add_argument("--quick", action="store_true", help="the representative subset (RESULTS.md)")
    parser.add_argument("--gpu", action="store_true", help="the GPU subset (benchmarks/gpu.sh)")
    parser.add_argument("--smoke", action="store_true", help="one tiny row with the GPU columns (seconds on a CPU)")
    parser.add_argument("--fit", action="store_true", help=f"probe the largest batch of {' '.join(FIT)} that fits")
    parser.add_argument("--fit-limit-mb", type=float, help="--fit's first guess assumes this much memory (a CPU)")
    parser.add_argument("--deadline", type=float, help="seconds: rows that would start later are skipped")
    parser.add_argument("--roofline", action="store_true", help="print the GPU roofline prediction (NOTES.md)")
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
        row = json.loads(args.row)
        print("ROW " + json.dumps(probe_row(row) if row.get("probe") else run_row(row)), flush=True)
        return 0
    if args.roofline:
        print(roofline())
        return 0
    if args.verify:
        worst = verify()
        print(f"worst {worst:.2e} (1e-10 required)")
        return 0 if worst < 1e-10 else 1
    backend_name = os.environ.get("KERAS_BACKEND", "tensorflow")
    started = time.perf_counter()
    machine = _machine(backend_name)  # before the rows fill the compilation cache
    rows = _rows(args)
    results: list[dict] = []
    probes: list[dict] = []
    table = _gpu_table if args.gpu or args.smoke else _table

    def report() -> str:
        elapsed = time.perf_counter() - started
        text = (
            f"## Results ({backend_name}, {time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min)\n\n"
            f"{machine}\n- Device of the rows: {', '.join(sorted({r['device'] for r in results if 'device' in r}))}"
            f"\n\n{table(results)}\n"
        )
        if probes:
            text += f"\nThe largest batch one compiled call takes (`--fit`):\n\n{_fit_table(probes)}\n"
        return text + "\nReproduce a row:\n\n```\n" + "\n".join(_command(r, backend_name) for r in results) + "\n```\n"

    def save() -> None:  # after every row: a run cut short keeps what it measured
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(report())
            args.out.with_suffix(".json").write_text(json.dumps({"rows": results, "fit": probes}, indent=1))

    def run(row: dict, label: str) -> dict | None:
        elapsed = time.perf_counter() - started
        left = None if args.deadline is None else args.deadline - elapsed
        if left is not None and left < 20:
            print(f"[{elapsed / 60:4.1f} min] skipped (deadline): {label}", flush=True)
            return None
        print(f"[{elapsed / 60:4.1f} min] {label} ...", flush=True)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.run", "--row", json.dumps(row)],
                cwd=ROOT, capture_output=True, text=True, timeout=left,
                env={**os.environ, "KERAS_BACKEND": backend_name},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {**row, "error": f"stopped at the deadline ({args.deadline:.0f} s)"}
        lines = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
        if lines:
            return json.loads(lines[-1])
        return {**row, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}

    # the probe runs after the last row of its configuration (its first guess needs that row's peak)
    fit = _config(rows[0]) if args.smoke else FIT
    fit_after = max((i for i, r in enumerate(rows) if _config(r) == fit), default=len(rows) - 1) if args.fit else None
    for number, row in enumerate(rows):
        what = f"{row['cell']} {row['direction']} {row['size']} batch {row['batch']} {row['dtype']}"
        result = run(row, f"row {number + 1}/{len(rows)}: {what}")
        if result is not None:
            results.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            save()
        if number == fit_after:
            probes += _fit(results, run, fit, args.fit_limit_mb, tries=1 if args.smoke else 4)
            if probes:
                print(_fit_table(probes), flush=True)
            save()
    if not args.out:
        print(report())
    return 0


def _config(row: dict) -> tuple[str, str, str, str]:
    return row["cell"], row["direction"], row["size"], row["dtype"]


def _fit(
    results: list[dict],
    run: Callable[[dict, str], dict | None],
    config: tuple[str, str, str, str] = FIT,
    limit_mb: float | None = None,
    tries: int = 4,
) -> list[dict]:
    """Probe the largest bucket of batch one compiled call of ``config`` takes.

    The first guess divides the device's memory limit (or ``limit_mb``) by the peak device
    memory per sample of the largest measured row of that configuration (or by its working-set
    estimate); then up one bucket after a success, down one after a failure, until a success
    meets a failure or ``tries`` calls are spent.
    """
    from tf_lrp import backend

    cell, direction, size, dtype = config
    measured = [r for r in results if "error" not in r and _config(r) == config]
    best = max(measured, key=lambda r: r["batch"], default=None)
    limit = limit_mb or (best or {}).get("device_limit_mb")
    if best is None or not limit:
        print("fit: skipped (no measured row of the configuration on an accelerator)", flush=True)
        return []
    per_sample = (best.get("peak_device_mb") or best["working_set_mb"]) / best["batch"]
    batch = backend.bucket_below(max(1, int(limit / per_sample)))
    probes: list[dict] = []
    for number in range(tries):
        row = {"cell": cell, "direction": direction, "size": size, "batch": batch, "dtype": dtype, "xla": "off",
               "probe": True}  # fmt: skip
        result = run(row, f"fit {number + 1}/{tries}: {cell} {direction} {size} {dtype} batch {batch}")
        if result is None:
            break
        result.setdefault("fits", "error" not in result)
        probes.append(result)
        fits = [p["batch"] for p in probes if p["fits"]]
        fails = [p["batch"] for p in probes if not p["fits"]]
        if fits and fails and min(fails) == backend.bucket(max(fits) + 1):
            break  # the next bucket up failed: max(fits) is the answer
        batch = backend.bucket(batch + 1) if result["fits"] else backend.bucket_below(batch - 1)
        if (fails and batch >= min(fails)) or batch in fits:
            break
    return probes


if __name__ == "__main__":
    sys.exit(main())
