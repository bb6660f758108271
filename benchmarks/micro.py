"""Micro-benchmarks behind benchmarks/NOTES.md (TensorFlow, float32, the small model's shapes).

    python benchmarks/micro.py scan       # one LSTM direction: keras.ops.scan vs tf.while_loop vs tf.scan vs Keras
    python benchmarks/micro.py matmul     # step-sized and projection-sized matmuls, GFLOP/s
    python benchmarks/micro.py sign       # ways to compute the ε-stabiliser's sign inside a loop
    python benchmarks/micro.py threads --inter 2 --intra 1   # explain / score / Keras forward, one config

Thread pools are process-wide, so compare ``threads`` configurations by running the command
several times alternately and looking at the medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.run import _time

BATCH, STEPS, FEATURES, UNITS = 256, 50, 60, 60


def _timed(call: Callable[[], object], repeats: int) -> list[float]:
    """``benchmarks.run``'s timing after one warm-up call (tracing, first run)."""
    call()
    return _time(call, repeats)


def _in_loop(tf: object, body: Callable, init: object, iterations: int) -> Callable[[], object]:
    """A compiled ``tf.while_loop`` running ``body`` ``iterations`` times (per-op cost inside a loop)."""

    @tf.function
    def loop(value: object) -> object:
        return tf.while_loop(lambda i, _: i < iterations, lambda i, v: (i + 1, body(v)), (0, value))[1]

    return lambda: np.asarray(loop(init))


def scan(tf: object, repeats: int) -> None:
    import keras
    from keras import ops

    from tf_lrp.network import scan_steps

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(STEPS, BATCH, FEATURES)).astype("float32"))
    kernel = tf.constant(rng.normal(0, 0.1, (FEATURES, 4 * UNITS)).astype("float32"))
    recurrent = tf.constant(rng.normal(0, 0.1, (UNITS, 4 * UNITS)).astype("float32"))
    h = UNITS

    def step(state: tuple, projected: object) -> tuple:
        h_prev, c_prev = state
        z = projected + tf.matmul(h_prev, recurrent)
        i, f, o = tf.sigmoid(z[:, :h]), tf.sigmoid(z[:, h : 2 * h]), tf.sigmoid(z[:, 3 * h :])
        g_pre = z[:, 2 * h : 3 * h]
        g = tf.tanh(g_pre)
        c = f * c_prev + i * g
        return (o * tf.tanh(c), c), (i, f, g, o, g_pre)

    zeros = tf.zeros((BATCH, h))

    @tf.function
    def with_keras_scan(x: object) -> object:
        projected = ops.matmul(x, kernel)
        return scan_steps(lambda s, xs: step(s, xs["p"]), (zeros, zeros), {"p": projected}, (zeros,) * 5, False)

    @tf.function
    def with_while_loop(x: object) -> object:
        projected = tf.TensorArray(tf.float32, size=STEPS).unstack(tf.matmul(x, kernel))
        outputs = [tf.TensorArray(tf.float32, size=STEPS) for _ in range(7)]

        def body(t: object, h_prev: object, c_prev: object, outputs: list) -> tuple:
            (h_new, c_new), gates = step((h_prev, c_prev), projected.read(t))
            return t + 1, h_new, c_new, [o.write(t, v) for o, v in zip(outputs, (h_new, c_new, *gates), strict=True)]

        _, _, _, outputs = tf.while_loop(lambda t, *_: t < STEPS, body, (0, zeros, zeros, outputs))
        return [o.stack() for o in outputs]

    @tf.function
    def with_tf_scan(x: object) -> object:
        def body(carry: tuple, projected: object) -> tuple:
            (h_new, c_new), gates = step((carry[0], carry[1]), projected)
            return (h_new, c_new, *gates)

        return tf.scan(body, tf.matmul(x, kernel), initializer=(zeros,) * 7)

    inputs = keras.Input((STEPS, FEATURES))
    layer = keras.Model(inputs, keras.layers.LSTM(h)(inputs))
    keras_call = tf.function(lambda v: layer(v))
    batch_major = tf.transpose(x, (1, 0, 2))
    variants = {
        "keras.ops.scan (tf_lrp's scan_steps)": lambda: with_keras_scan(x),
        "tf.while_loop + TensorArray": lambda: with_while_loop(x),
        "tf.scan": lambda: with_tf_scan(x),
        "Keras LSTM layer (forward only)": lambda: keras_call(batch_major),
    }
    _interleaved(tf, variants, repeats)


def _interleaved(tf: object, variants: dict[str, Callable[[], object]], repeats: int) -> None:
    for call in variants.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, call in variants.items():
            start = time.perf_counter()
            result = call()
            for leaf in tf.nest.flatten(result)[:1]:
                np.asarray(leaf)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"  {name:40s} min {min(values) * 1e3:7.2f} ms  median {np.median(values) * 1e3:7.2f} ms")


def matmul(tf: object, repeats: int) -> None:
    shapes = [
        (BATCH, FEATURES, 4 * UNITS, 200),
        (BATCH, UNITS, UNITS, 200),
        (1024, FEATURES, 4 * UNITS, 50),
        (BATCH * STEPS, FEATURES, 4 * UNITS, 5),
        (1024, 1024, 1024, 5),
    ]
    rng = np.random.default_rng(0)
    for rows, inner, cols, iterations in shapes:
        a = tf.constant(rng.normal(size=(rows, inner)).astype("float32"))
        w = tf.constant(rng.normal(0, 0.01, (inner, cols)).astype("float32"))
        call = _in_loop(tf, lambda v, a=a, w=w: v + tf.matmul(a, w)[:, :1], tf.zeros((rows, 1)), iterations)
        seconds = min(_timed(call, repeats)) / iterations
        rate = 2 * rows * inner * cols / seconds / 1e9
        print(f"  ({rows}, {inner}) @ ({inner}, {cols}) {seconds * 1e6:9.1f} µs  {rate:6.1f} GFLOP/s")


def sign(tf: object, repeats: int) -> None:
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32"))
    eps = tf.constant(1e-3)
    variants = {
        "loop overhead (add only)": lambda r: r,
        "r / (z + where(z >= 0, ε, -ε))": lambda r: r / (z + tf.where(z >= 0, eps, -eps)),
        "r / (z + ε·(1 - 2·cast(z < 0)))": lambda r: r / (z + eps * (1.0 - 2.0 * tf.cast(z < 0, tf.float32))),
        "r / z (no stabiliser)": lambda r: r / z,
        "r * z": lambda r: r * z,
    }
    iterations = 400
    for name, body in variants.items():
        call = _in_loop(tf, lambda r, body=body: body(r + 1e-9), z, iterations)
        print(f"  {name:36s} {min(_timed(call, repeats)) / iterations * 1e6:7.1f} µs per iteration")


def threads(tf: object, repeats: int, inter: int, intra: int) -> None:
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    from benchmarks.run import keras_forward_call, make_weights
    from tf_lrp import Explainer

    weights = make_weights("lstm", True, "small", "float32")
    explainer = Explainer.from_weights(weights, cell="lstm", bidirectional=True, dtype="float32")
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    keras_forward = keras_forward_call(weights, "lstm", True, "small", "float32", x)
    print(f"  inter={inter} intra={intra} (0: TensorFlow's default), small bi-LSTM, batch {BATCH}")
    variants = {
        "explain": lambda: explainer.explain(x).relevance,
        "score (forward only)": lambda: explainer.score(x),
        "Keras predict_on_batch": keras_forward,
    }
    _interleaved(tf, variants, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["scan", "matmul", "sign", "threads"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inter", type=int, default=0)
    parser.add_argument("--intra", type=int, default=0)
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.what == "threads":
        threads(tf, args.repeats, args.inter, args.intra)
    else:
        {"scan": scan, "matmul": matmul, "sign": sign}[args.what](tf, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
