"""Catching numeric blow-up: a :class:`~tf_lrp.errors.TfLrpWarning` for relevance that cannot be right.

Relevance of the conserving methods (LRP, Gradient×Input, integrated gradients) should add up
to about the explained score, less what biases and stabilisers absorb. When saturated weights
or a tiny stabiliser make a denominator vanish, relevance can grow by tens of orders of
magnitude (float64 does not overflow, so nothing fails). Every explanation is therefore checked:
the **blow-up error** of a sample is

    |score - sum(relevance) - initial_state_relevance| / max(|score|, 1)

(the conservation error, measured absolutely for scores below 1 in magnitude, so that a score
near zero does not make an ordinary explanation look broken). A call whose worst sample exceeds
:data:`BLOWUP_THRESHOLD`, or whose relevance is not finite, warns once, naming that sample.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .errors import TfLrpWarning

#: A blow-up error above this (the relevance misses the score by 1000 times its size) warns.
BLOWUP_THRESHOLD = 1e3
#: Methods whose relevance is meant to add up to the score (the others are not checked for it).
CONSERVING_METHODS = ("lrp", "gradient_x_input", "integrated_gradients")


def worst_sample(
    method: str, relevance: np.ndarray, explained_score: np.ndarray, initial_state_relevance: np.ndarray
) -> tuple[int, float] | None:
    """The sample with the largest blow-up error, when it is non-finite or above the threshold.

    Args:
        method: the method name (only :data:`CONSERVING_METHODS` are checked for conservation).
        relevance: (B, T, D) relevance.
        explained_score: (B,) the explained scores.
        initial_state_relevance: (B,) relevance that reached the initial states.

    Returns:
        ``(index, error)`` of the worst sample (error ``inf`` for non-finite relevance), or None
        when every sample is fine.
    """
    relevance = np.asarray(relevance)
    if relevance.size == 0:
        return None
    finite = np.isfinite(relevance).reshape(len(relevance), -1).all(axis=1)
    if not finite.all():
        return int(np.flatnonzero(~finite)[0]), float("inf")
    if method not in CONSERVING_METHODS:
        return None
    score = np.asarray(explained_score, dtype=np.float64)
    total = relevance.sum(axis=tuple(range(1, relevance.ndim)), dtype=np.float64)
    error = np.abs(score - total - np.asarray(initial_state_relevance, dtype=np.float64)) / np.maximum(np.abs(score), 1)
    worst = int(np.argmax(error))
    return (worst, float(error[worst])) if not error[worst] <= BLOWUP_THRESHOLD else None


def warn(method: str, sample: int, error: float, stacklevel: int = 2) -> None:
    """Issue the :class:`TfLrpWarning` for a blown-up sample."""
    what = (
        "non-finite relevance"
        if not np.isfinite(error)
        else f"relevance that misses the explained score by {error:.3g} times its size (the threshold is "
        f"{BLOWUP_THRESHOLD:g})"
    )
    warnings.warn(
        f"{method}: sample {sample} has {what}; the explanation is numerically meaningless there "
        "(saturated weights or a vanishing stabiliser: try float64, a larger eps, or check the weights' scale)",
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
