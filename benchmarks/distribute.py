"""Benchmark: ``explain_dataset`` on one device vs ``MirroredStrategy`` over two logical CPU devices.

Not part of the test suite. The network is the small bi-LSTM of ``benchmarks/run.py``
(E=60 features, H=60 units per direction, C=5 classes, T=50 steps), float32, explained
with LRP over ``--samples`` random sequences at global batch ``--batch``. Logical devices
must be configured before TensorFlow initialises, so every configuration runs in its own
subprocess, which prints one JSON line; the parent prints a markdown table and checks that
both configurations give the same relevances (max |difference|).

Command (from the repository root; about 1-2 minutes on 2 shared CPU cores)::

    python -m benchmarks.distribute --samples 4096 --batch 256 --repeats 5

Configurations: ``1 device`` is a plain ``explain_dataset`` call (no strategy);
``MirroredStrategy x2`` splits each compiled call's batch over two logical CPU devices
(``tf.config.set_logical_device_configuration``) that share the same cores, so on a CPU-only
machine it measures the overhead of the split, not a speed-up; one replica per GPU is where
the split pays off. samples/s is ``samples / time`` per timed call: the median (min, max)
over ``--repeats`` calls after one warm-up call (which traces and compiles).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import SIZES, make_weights

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"1 device": 1, "MirroredStrategy x2": 2}


def run_config(devices: int, samples: int, batch: int, repeats: int, save: str | None) -> dict:
    """Measure one configuration in this process (TensorFlow not yet initialised)."""
    import numpy as np
    import tensorflow as tf

    strategy = None
    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        names = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(names)

    from tf_lrp import Explainer

    e, _, _, t = SIZES["small"]
    explainer = Explainer.from_weights(make_weights("lstm", True, "small", "float32"), cell="lstm", bidirectional=True)
    x = np.random.default_rng(1).normal(size=(samples, t, e)).astype("float32")

    def call():
        return explainer.explain_dataset(x, batch_size=batch, progress=False, strategy=strategy)

    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    if save:
        np.save(save, result.relevance)
    rates = [samples / s for s in times]
    return {
        "devices": devices,
        "replicas": 1 if strategy is None else int(strategy.num_replicas_in_sync),
        "samples": samples,
        "batch": batch,
        "first_call_s": first,
        "samples_per_s": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
    }


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, load average {load:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=4096, help="sequences explained per call")
    parser.add_argument("--batch", type=int, default=256, help="global batch (per replica: batch / replicas)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up call")
    parser.add_argument("--config", choices=sorted(CONFIGS), nargs="+", default=list(CONFIGS))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(json.dumps(run_config(args.child, args.samples, args.batch, args.repeats, args.save)))
        return 0

    import numpy as np

    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.config:
            save = str(Path(tmp) / f"{CONFIGS[name]}.npy")
            command = [
                sys.executable, "-m", "benchmarks.distribute", "--child", str(CONFIGS[name]),
                "--samples", str(args.samples), "--batch", str(args.batch), "--repeats", str(args.repeats),
                "--save", save,
            ]  # fmt: skip
            out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(out.stderr[-4000:], file=sys.stderr)
                return out.returncode
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["name"] = name
            row["relevance"] = np.load(save)
            rows.append(row)
    base = rows[0]
    print(f"small bi-LSTM (E=60, H=60, C=5, T=50), float32, LRP, {args.samples} samples, global batch {args.batch}")
    print(f"machine: {_machine()}\n")
    print("| configuration | replicas | samples/s (median) | min | max | first call (s) | max abs diff vs 1 device |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        diff = float(np.max(np.abs(row["relevance"] - base["relevance"])))
        print(
            f"| {row['name']} | {row['replicas']} | {row['samples_per_s']:.0f} | {row['min']:.0f} | {row['max']:.0f} "
            f"| {row['first_call_s']:.1f} | {diff:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
