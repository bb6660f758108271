"""A straightforward per-sample float64 numpy LRP for one LSTM/GRU layer and a dense head.

The baseline (c) of the benchmark, and an independent oracle: it follows the published
``lrp_linear`` formulation literally, one sample and one time step at a time, and builds the
full per-connection message matrix of every linear node (``(N, M)`` per step), as the
TensorFlow 2.1 implementation the issue cites does. Nothing here is shared with tf_lrp.

Network: ``Sequential([LSTM(H) or GRU(H, reset_after=True)`` (optionally
``Bidirectional(merge_mode="concat")``), ``Dense(C)])`` in Keras weight order; rules of
Arras et al. 2017 (signal takes all, ε-rule with ``bias_factor``, the sum nodes spreading
the stabiliser share over all 2H inputs).
"""

from __future__ import annotations

import numpy as np


def lrp_linear(a: np.ndarray, w: np.ndarray, b: np.ndarray, z: np.ndarray, r: np.ndarray, eps: float, bf: float):
    """Relevance of the inputs ``a`` (N,) of ``z = a @ w + b`` (M,), given ``r`` (M,) at ``z``.

    Builds the (N, M) message matrix ``(a_i w_ij + bf·(b_j + s_j)/N) / (z_j + s_j) · r_j`` with
    ``s_j = eps·sign(z_j)`` (sign(0) = +1) and sums it over ``j``.
    """
    n = a.shape[0]
    s = np.where(z >= 0, eps, -eps)
    messages = (a[:, None] * w + bf * (b + s)[None, :] / n) / (z + s)[None, :] * r[None, :]
    return messages.sum(axis=1)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _lstm_direction(x: np.ndarray, r_final: np.ndarray, k: np.ndarray, rk: np.ndarray, bias: np.ndarray, eps, bf):
    """One LSTM direction over ``x`` (T, D) in reading order; returns (h_T, relevance fn)."""
    steps, units = x.shape[0], rk.shape[0]
    h = [np.zeros(units)]
    c = [np.zeros(units)]
    cache = []
    for t in range(steps):
        z = x[t] @ k + bias + h[-1] @ rk
        i, f = _sigmoid(z[:units]), _sigmoid(z[units : 2 * units])
        g_pre = z[2 * units : 3 * units]
        g, o = np.tanh(g_pre), _sigmoid(z[3 * units :])
        c.append(f * c[-1] + i * g)
        h.append(o * np.tanh(c[-1]))
        cache.append((i, f, g, g_pre))

    def relevance(r_h_final: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        r_h, r_c = r_h_final.copy(), np.zeros(units)
        w_cand = np.concatenate([k[:, 2 * units : 3 * units], rk[:, 2 * units : 3 * units]], axis=0)
        b_cand = bias[2 * units : 3 * units]
        identity = np.concatenate([np.eye(units), np.eye(units)], axis=0)
        for t in reversed(range(steps)):
            i, f, g, g_pre = cache[t]
            r_c = r_c + r_h  # signal takes all
            parts = np.concatenate([f * c[t], i * g])
            r_parts = lrp_linear(parts, identity, np.zeros(units), c[t + 1], r_c, eps, bf)
            r_c_prev, r_g = r_parts[:units], r_parts[units:]
            r_in = lrp_linear(np.concatenate([x[t], h[t]]), w_cand, b_cand, g_pre, r_g, eps, bf)
            out[t] = r_in[: x.shape[1]]
            r_h, r_c = r_in[x.shape[1] :], r_c_prev
        return out

    return h[-1], relevance


def _gru_direction(x: np.ndarray, r_final, k: np.ndarray, rk: np.ndarray, bias: np.ndarray, eps, bf):
    """One GRU (reset_after=True) direction; gate order update, reset, candidate."""
    steps, units = x.shape[0], rk.shape[0]
    b_in, b_rec = bias[0], bias[1]
    h = [np.zeros(units)]
    cache = []
    for t in range(steps):
        gx = x[t] @ k + b_in
        gh = h[-1] @ rk + b_rec
        zg = _sigmoid(gx[:units] + gh[:units])
        rg = _sigmoid(gx[units : 2 * units] + gh[units : 2 * units])
        a = gx[2 * units :] + rg * gh[2 * units :]
        n = np.tanh(a)
        h.append(zg * h[-1] + (1 - zg) * n)
        cache.append((zg, rg, n, a))

    def relevance(r_h_final: np.ndarray) -> np.ndarray:
        out = np.zeros_like(x)
        r_h = r_h_final.copy()
        identity = np.concatenate([np.eye(units), np.eye(units)], axis=0)
        for t in reversed(range(steps)):
            zg, rg, n, a = cache[t]
            parts = np.concatenate([zg * h[t], (1 - zg) * n])
            r_parts = lrp_linear(parts, identity, np.zeros(units), h[t + 1], r_h, eps, bf)
            w_cand = np.concatenate([k[:, 2 * units :], rk[:, 2 * units :] * rg[None, :]], axis=0)
            b_cand = b_in[2 * units :] + rg * b_rec[2 * units :]
            r_in = lrp_linear(np.concatenate([x[t], h[t]]), w_cand, b_cand, a, r_parts[units:], eps, bf)
            out[t] = r_in[: x.shape[1]]
            r_h = r_parts[:units] + r_in[x.shape[1] :]
        return out

    return h[-1], relevance


def lrp_sample(
    weights: list[np.ndarray],
    x: np.ndarray,
    cell: str,
    bidirectional: bool,
    target: int | None = None,
    eps: float = 1e-3,
    bias_factor: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """LRP of one sample ``x`` (T, D); returns the relevance (T, D) and the scores (C,)."""
    w = [np.asarray(a, dtype=np.float64) for a in weights]
    x = np.asarray(x, dtype=np.float64)
    direction = _lstm_direction if cell == "lstm" else _gru_direction
    runs = [direction(x, None, *w[0:3], eps, bias_factor)]
    if bidirectional:
        h_back, rel_back = direction(x[::-1], None, *w[3:6], eps, bias_factor)
        runs.append((h_back, lambda r, f=rel_back: f(r)[::-1]))
    features = np.concatenate([h for h, _ in runs])
    dense_kernel, dense_bias = w[-2], w[-1]
    scores = features @ dense_kernel + dense_bias
    target = int(np.argmax(scores)) if target is None else int(target)
    seed = np.zeros_like(scores)
    seed[target] = scores[target]
    r_features = lrp_linear(features, dense_kernel, dense_bias, scores, seed, eps, bias_factor)
    units = features.shape[0] // len(runs)
    relevance = sum(rel(r_features[d * units : (d + 1) * units]) for d, (_, rel) in enumerate(runs))
    return relevance, scores


def lrp_batch(weights, x, cell, bidirectional, targets=None, eps=1e-3, bias_factor=0.0):
    """:func:`lrp_sample` for every sample, in a Python loop (the point of this baseline)."""
    results = [
        lrp_sample(weights, x[b], cell, bidirectional, None if targets is None else targets[b], eps, bias_factor)
        for b in range(x.shape[0])
    ]
    return np.stack([r for r, _ in results]), np.stack([s for _, s in results])
