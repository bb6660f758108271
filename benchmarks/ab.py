"""A/B timing of ``Explainer.explain`` between a git revision and the working tree, in ONE process.

The machine this was written on is shared and noisy, so the two variants' calls are
interleaved round by round and the medians (and minima) of each are reported::

    python -m benchmarks.ab --base HEAD --cell lstm --direction bi --batch 256 --rounds 15

The base revision's ``tf_lrp`` is extracted with ``git archive`` into a temporary folder and
imported under the name ``tf_lrp_base`` (the package uses relative imports only).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import ROOT, SIZES, make_weights


def _import_base(revision: str) -> object:
    folder = Path(tempfile.mkdtemp(prefix="tf_lrp_ab_"))
    archive = subprocess.run(
        ["git", "archive", revision, "tf_lrp"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "tf_lrp").rename(folder / "tf_lrp_base")
    sys.path.insert(0, str(folder))
    return importlib.import_module("tf_lrp_base")


def main(argv: list[str] | None = None) -> int:
    """Print median / min seconds per ``explain`` call for base and working tree, and B/A."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--direction", default="bi")
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--method", default="lrp")
    args = parser.parse_args(argv)
    import numpy as np

    import tf_lrp

    base = _import_base(args.base)
    bidirectional = args.direction == "bi"
    e, _, _, t = SIZES[args.size]
    weights = make_weights(args.cell, bidirectional, args.size, args.dtype)
    x = np.random.default_rng(1).normal(size=(args.batch, t, e)).astype(args.dtype)
    variants = {}
    for name, package in (("A base", base), ("B tree", tf_lrp)):
        ex = package.Explainer.from_weights(weights, cell=args.cell, bidirectional=bidirectional, dtype=args.dtype)
        ex.explain(x, method=args.method)
        variants[name] = ex
    a = np.asarray(variants["A base"].explain(x, method=args.method).relevance)
    b = np.asarray(variants["B tree"].explain(x, method=args.method).relevance)
    print(f"max |A - B| relevance: {np.max(np.abs(a - b)):.3g} (max |A| {np.max(np.abs(a)):.3g})")
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, ex in variants.items():
            start = time.perf_counter()
            ex.explain(x, method=args.method)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.4f} s, min {min(values):.4f} s")
    ratios = [b / a for a, b in zip(times["A base"], times["B tree"], strict=True)]
    best = min(times["B tree"]) / min(times["A base"])
    print(f"B/A per-round median {statistics.median(ratios):.3f}, ratio of minima {best:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
