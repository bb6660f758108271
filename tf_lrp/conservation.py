"""Catching numeric blow-up: a :class:`~tf_lrp.errors.TfLrpWarning` for relevance that cannot be right.

Relevance of the score-decomposing methods (LRP, Gradient×Input, integrated gradients) should be
of the size of the explained score: it adds up to about the score, less what biases and
stabilisers absorb. When saturated weights or a vanishing stabiliser make denominators tiny,
relevance grows by many orders of magnitude: in float64 nothing overflows, the huge terms cancel
(so even a conserving setting, bias_factor = 1, may still add up), and the explanation is
rounding noise. Every explanation is therefore checked. The **blow-up ratio** of a sample is

    (sum |relevance| + |initial_state_relevance|) / max(|score|, 1)

the total magnitude of its relevance relative to its score (measured absolutely for scores
below 1 in magnitude, so that a score near zero does not make an ordinary explanation look
broken). It bounds the conservation error: ``|score - sum(relevance) - initial| / max(|score|, 1)``
is at most the ratio plus one. A call whose worst sample's ratio exceeds
:data:`BLOWUP_THRESHOLD`, or whose relevance is not finite, warns once, naming that sample.
The other methods (sensitivity, occlusion, the random control) do not decompose the score and
are checked for non-finite values only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import TfLrpWarning

#: A blow-up ratio above this (relevance 1000 times the size of the score) warns.
BLOWUP_THRESHOLD = 1e3
#: Methods whose relevance decomposes the score (the others are checked for non-finite values only).
CONSERVING_METHODS = ("lrp", "gradient_x_input", "integrated_gradients")


def worst_sample(
    method: str, relevance: np.ndarray, explained_score: np.ndarray, initial_state_relevance: np.ndarray
) -> tuple[int, float] | None:
    """The sample with the largest blow-up ratio, when it is non-finite or above the threshold.

    Args:
        method: the method name (only :data:`CONSERVING_METHODS` are checked for size).
        relevance: (B, T, D) relevance, or a tuple of them (one per input).
        explained_score: (B,) the explained scores.
        initial_state_relevance: (B,) relevance that reached the initial states.

    Returns:
        ``(index, ratio)`` of the worst sample (ratio ``inf`` for non-finite relevance), or
        None when every sample is fine.
    """
    parts = [np.asarray(part) for part in (relevance if isinstance(relevance, (tuple, list)) else (relevance,))]
    batch = len(parts[0])
    if batch == 0:
        return None
    mass = np.abs(np.asarray(initial_state_relevance, dtype=np.float64)).reshape(batch, -1).sum(axis=1)
    for part in parts:
        mass = mass + _absolute_sums(part)
    finite = np.isfinite(mass)  # float64 sums of |finite float32/64| values stay finite
    if not finite.all():
        return int(np.flatnonzero(~finite)[0]), float("inf")
    if method not in CONSERVING_METHODS:
        return None
    ratio = mass / np.maximum(np.abs(np.asarray(explained_score, dtype=np.float64)), 1.0)
    worst = int(np.argmax(ratio))
    return (worst, float(ratio[worst])) if not ratio[worst] <= BLOWUP_THRESHOLD else None


#: samples whose |relevance| is summed at once: a small temporary instead of one as large as the relevance
_ROWS = 64


def _absolute_sums(part: np.ndarray) -> np.ndarray:
    """(B,) ``sum |part[b]|`` in float64, one pass, in blocks of :data:`_ROWS` samples."""
    rows = part.reshape(len(part), -1)
    sums = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), _ROWS):
        sums[start : start + _ROWS] = np.abs(rows[start : start + _ROWS]).sum(axis=1, dtype=np.float64)
    return sums


def warn(method: str, sample: int, error: float, stacklevel: int = 2) -> None:
    """Issue the :class:`TfLrpWarning` for a blown-up sample (``error``: its blow-up ratio)."""
    what = (
        "non-finite relevance"
        if not np.isfinite(error)
        else f"relevance of {error:.3g} times the size of its explained score (the threshold is "
        f"{BLOWUP_THRESHOLD:g}): cancelling huge terms"
    )
    warnings.warn(
        f"{method}: sample {sample} has {what}; the explanation is numerically meaningless there "
        "(saturated weights or a vanishing stabiliser: check the weights' scale, or use a larger eps)",
        TfLrpWarning,
        stacklevel=stacklevel + 1,
    )


def checked(explanation: Any) -> Any:
    """Return ``explanation`` after warning (once) if it blew up; see the module docstring."""
    found = worst_sample(
        explanation.method,
        explanation.relevance,
        explanation.explained_score,
        explanation.initial_state_relevance,
    )
    if found is not None:
        warn(explanation.method, *found, stacklevel=3)
    return explanation
