"""Profile ``Explainer.explain`` with the TensorFlow profiler and print where the time goes.

    python benchmarks/profile_lrp.py --batch 256 --direction bi [--inter 2 --intra 1]

Times a few ``explain`` and ``score`` calls of the small LSTM (E=60, H=60, C=5, T=50, float32,
random weights), then records three ``explain`` calls with ``tf.profiler.experimental`` and
prints the ``framework_op_stats`` self time by op type, the costliest op instances, and the
per-step cost of every while-loop body (one loop per direction and pass). Profiler times are
inflated; use them for proportions (benchmarks/NOTES.md).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _op_rows(logdir: str) -> list[dict]:
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    paths = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
    data, ok = plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise SystemExit(f"the profiler could not convert its trace: {data!r}")
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    labels = [column["label"] for column in table["cols"]]
    return [
        dict(zip(labels, [cell["v"] if cell else None for cell in row["c"]], strict=True)) for row in table["rows"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--direction", choices=["uni", "bi"], default="bi")
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    from benchmarks.run import _time, make_weights
    from tf_lrp import Explainer

    bidirectional = args.direction == "bi"
    weights = make_weights(args.cell, bidirectional, "small", "float32")
    explainer = Explainer.from_weights(weights, cell=args.cell, bidirectional=bidirectional, dtype="float32")
    x = np.random.default_rng(0).normal(size=(args.batch, 50, 60)).astype("float32")
    for _ in range(3):
        explainer.explain(x)
        explainer.score(x)
    for name, call in (("explain", explainer.explain), ("score (forward only)", explainer.score)):
        times = _time(lambda call=call: call(x), 7)
        print(f"{name}: min {min(times) * 1e3:.1f} ms, median {np.median(times) * 1e3:.1f} ms")

    logdir = tempfile.mkdtemp(prefix="tf_lrp_profile_")
    calls = 3
    tf.profiler.experimental.start(logdir)
    for _ in range(calls):
        explainer.explain(x)
    tf.profiler.experimental.stop()
    rows = _op_rows(logdir)
    shutil.rmtree(logdir, ignore_errors=True)

    total = sum(float(r["Total self-time (us)"]) for r in rows)
    by_type: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        by_type[r["Operation Type"]][0] += int(r["#Occurrences"])
        by_type[r["Operation Type"]][1] += float(r["Total self-time (us)"])
    print(f"\nself time by op type (per call; {calls} calls profiled)")
    for kind, (count, us) in sorted(by_type.items(), key=lambda item: -item[1][1])[: args.top]:
        print(f"  {kind:24s} {count / calls:7.0f} ops  {us / calls / 1e3:7.2f} ms  {100 * us / total:5.1f} %")
    print("\ncostliest op instances (per call)")
    for r in sorted(rows, key=lambda r: -float(r["Total self-time (us)"]))[: args.top]:
        per_call = float(r["Total self-time (us)"]) / calls
        print(f"  {r['Operation Name'][:72]:72s} {per_call / 1e3:7.2f} ms")
    loops: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for r in rows:
        name = r["Operation Name"]
        if name.startswith("while") and "/body/" in name:
            loops[name.split("/")[0]].append((float(r["Total self-time (us)"]), r["Operation Type"]))
    print("\nwhile-loop bodies: per-step self time (the loops of one call: forward and backward per direction)")
    for loop, ops in sorted(loops.items()):
        steps = calls * 50
        kinds: dict[str, float] = collections.defaultdict(float)
        for us, kind in ops:
            kinds[kind] += us / steps
        detail = ", ".join(f"{kind} {us:.0f}" for kind, us in sorted(kinds.items(), key=lambda item: -item[1])[:6])
        print(f"  {loop:10s} {sum(kinds.values()):6.0f} µs/step: {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
