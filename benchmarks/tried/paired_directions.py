"""Micro-benchmark behind NOTES row 7: both directions of a bi-LSTM forward in one scan, or two.

Run from the repository root: ``python -m benchmarks.tried.paired_directions``. Three
compiled variants of the same forward recurrence (B=256, T=50, E=H=60, float32) are timed
interleaved, 15 rounds; all return the same number.

* ``separate``: one scan per direction (what tf_lrp does);
* ``paired``: one scan, weights stacked on a leading direction axis, one batched matmul per step;
* ``paired2``: one scan, two plain matmuls per step, the elementwise work on (2, B, H).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from keras import ops

from tf_lrp import backend

B, T, E, H = 256, 50, 60, 60


def _cell(z, c):
    i, f = ops.sigmoid(z[..., :H]), ops.sigmoid(z[..., H : 2 * H])
    g, o = ops.tanh(z[..., 2 * H : 3 * H]), ops.sigmoid(z[..., 3 * H :])
    c = f * c + i * g
    return o * ops.tanh(c), c, (i, f, g, o)


def _scan(projected, recurrent, zeros):
    def body(carry, t):
        (h, c), _ = carry
        h_new, c_new, gates = _cell(projected[t] + recurrent(h), c)
        return ((h_new, c_new), gates), ((h_new, c_new), gates)

    _, ys = ops.scan(body, ((zeros, zeros), (zeros,) * 4), ops.arange(T))
    return ys[0][0]


def separate(x, k0, k1, u0, u1):
    """Two scans, one per direction."""
    forward = _scan(ops.matmul(x, k0), lambda h: ops.matmul(h, u0), ops.zeros((B, H)))
    backward = _scan(ops.flip(ops.matmul(x, k1), axis=0), lambda h: ops.matmul(h, u1), ops.zeros((B, H)))
    return ops.sum(forward) + ops.sum(backward)


def paired(x, k0, k1, u0, u1):
    """One scan, a batched matmul over the stacked directions."""
    u = ops.stack([u0, u1])
    projected = ops.stack([ops.matmul(x, k0), ops.flip(ops.matmul(x, k1), axis=0)], axis=1)
    h = _scan(projected, lambda h: ops.matmul(h, u), ops.zeros((2, B, H)))
    return ops.sum(h)


def paired2(x, k0, k1, u0, u1):
    """One scan, two matmuls per step, the elementwise work stacked."""
    projected = ops.stack([ops.matmul(x, k0), ops.flip(ops.matmul(x, k1), axis=0)], axis=1)
    h = _scan(projected, lambda h: ops.stack([ops.matmul(h[0], u0), ops.matmul(h[1], u1)]), ops.zeros((2, B, H)))
    return ops.sum(h)


def main() -> None:
    """Print the three variants' results and median / min seconds."""
    rng = np.random.default_rng(0)
    args = (
        rng.normal(size=(T, B, E)).astype("float32"),
        *((rng.normal(size=(E, 4 * H)) / 8).astype("float32") for _ in range(2)),
        *((rng.normal(size=(H, 4 * H)) / 8).astype("float32") for _ in range(2)),
    )
    specs = [backend.TensorSpec(a.shape, "float32") for a in args]
    variants = {f.__name__: backend.Compiled(f, specs) for f in (separate, paired, paired2)}
    print({name: float(np.asarray(f(*args))) for name, f in variants.items()})
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(15):
        for name, f in variants.items():
            start = time.perf_counter()
            f(*args)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.4f} s, min {min(values):.4f} s")


if __name__ == "__main__":
    main()
