"""Perturbation evaluation of explanations: curves and their area (AUC), batched.

The sequence analogue of pixel flipping (Bach et al. 2015; Samek et al. 2017): remove the time
steps (or single features) of each sample in the order an explanation ranks them, re-score
the batch after each removal step, and record the target's score.

* ``order="morf"`` (most relevant first): a good explanation makes the score fall fast, so
  a *small* area under the curve is good;
* ``order="lrf"`` (least relevant first): the score should stay high, a *large* area is good;
* ``order="random"``: the baseline both are compared with.

"Removing" replaces the unit by a value chosen by ``mode``: ``"zero"``, ``"constant"``
(``value``), ``"mean"`` (the per-feature mean of ``data``), ``"random_draw"`` (a value drawn
once per unit from ``data`` at a random sample and time), ``"interpolate"`` (linear
interpolation between the nearest kept steps on each side, the sequence analogue of
inpainting), ``"token"`` (a replacement token id, for token models).

This module imports no other stage of tf_lrp: it needs arrays and any object with a
``score(x, mask=None) -> (B, C)`` method (a :class:`Scorer`), such as
:class:`tf_lrp.Explainer`. All samples and, within ``max_elements`` input values per call,
several removal steps are scored in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import InputError

ORDERS = ("morf", "lrf", "random")
MODES = ("zero", "constant", "mean", "random_draw", "interpolate", "token")
UNITS = ("step", "feature")
#: Default bound on the number of input values scored in one call (all stacked steps).
DEFAULT_MAX_ELEMENTS = 1 << 22


class Scorer(Protocol):
    """Anything that scores a batch: ``score(x, mask=None) -> (B, C)`` numpy array."""

    def score(self, x: Any, mask: Any = None) -> np.ndarray:
        """Scores (B, C) of the batch ``x``.

        Args:
            x: (B, T, D) floats or (B, T) token ids.
            mask: (B, T) bool, True on valid steps, or None.

        Returns:
            (B, C) scores.
        """
        ...


@dataclass(frozen=True)
class PerturbationResult:
    """A batch of perturbation curves.

    Attributes:
        curve: (B, steps + 1) the target's score after removing ``fractions[k]`` of the units
            (``curve[:, 0]`` is the unperturbed score).
        auc: (B,) the area under each curve over the removed fraction in [0, 1] (trapezoid).
        fractions: (steps + 1,) the removed fraction at each point, 0 ... 1.
        target: (B,) the scored output unit.
        order: ``"morf"``, ``"lrf"`` or ``"random"``.
        mode: how a removed unit was replaced.
        unit: ``"step"`` or ``"feature"``.
    """

    curve: np.ndarray
    auc: np.ndarray
    fractions: np.ndarray
    target: np.ndarray
    order: str
    mode: str
    unit: str

    @property
    def mean_curve(self) -> np.ndarray:
        """(steps + 1,) the curve averaged over the batch."""
        return self.curve.mean(axis=0)

    @property
    def mean_auc(self) -> float:
        """The AUC averaged over the batch."""
        return float(self.auc.mean())


def auc(curve: Any) -> np.ndarray:
    """Area under curves sampled at equally spaced fractions of [0, 1] (trapezoid rule).

    Args:
        curve: (..., K + 1) with K >= 1.

    Returns:
        (...,) the areas.

    Raises:
        InputError: if the last axis has fewer than two points.
    """
    values = np.asarray(curve, dtype=np.float64)
    if values.ndim < 1 or values.shape[-1] < 2:
        raise InputError(f"a curve needs at least two points on its last axis; got shape {values.shape}")
    inner = values[..., 1:-1].sum(axis=-1)
    return (inner + (values[..., 0] + values[..., -1]) / 2) / (values.shape[-1] - 1)


def _choice(value: str, allowed: tuple[str, ...], label: str) -> str:
    if value not in allowed:
        raise InputError(f"{label} must be one of {list(allowed)}; got {value!r}")
    return value


def _positive_int(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{label} must be a positive int; got {value!r}")
    return int(value)


def _unit_relevance(relevance: Any, x: np.ndarray, unit: str) -> np.ndarray:
    """Relevance per unit: (B, T) for steps, (B, T, D) for features."""
    values = getattr(relevance, "relevance", relevance)  # an Explanation works too
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"relevance cannot be read as a float array ({exc})") from exc
    batch_steps = x.shape[:2]
    if values.shape[:2] != batch_steps or values.ndim not in (2, 3):
        raise InputError(
            f"relevance must be (B, T) or (B, T, D) with (B, T) = {batch_steps} like x; got {values.shape}"
        )
    if not np.isfinite(values).all():
        raise InputError("relevance contains NaN or infinite values")
    if unit == "step":
        return values.sum(axis=-1) if values.ndim == 3 else values
    if x.ndim != 3:
        raise InputError('unit="feature" needs float inputs (B, T, D); token models are perturbed per step')
    if values.shape != x.shape:
        raise InputError(f'unit="feature" needs relevance of shape {x.shape} (one per feature); got {values.shape}')
    return values


def _ranking(scores: np.ndarray, valid: np.ndarray, order: str, rng: np.random.Generator) -> np.ndarray:
    """Rank of each unit in the removal order, (B, N) ints; invalid units come last."""
    batch, count = scores.shape
    key = {"random": lambda: rng.random((batch, count)), "morf": lambda: -scores, "lrf": lambda: scores}[order]()
    key = np.where(valid, key, np.inf)
    order_index = np.argsort(key, axis=1, kind="stable")
    rank = np.empty_like(order_index)
    np.put_along_axis(rank, order_index, np.arange(count)[None, :].repeat(batch, axis=0), axis=1)
    return rank


def _interpolate(x: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Replace removed steps by linear interpolation between the nearest kept steps.

    Args:
        x: (B, T, D) inputs.
        kept: (B, T, D) bool (per-feature channels are interpolated independently).

    Returns:
        (B, T, D): kept values unchanged; a removed value between kept neighbours is
        interpolated linearly in time, beyond the last (first) kept one it repeats it, and a
        channel with nothing kept becomes 0.
    """
    steps = x.shape[1]
    index = np.arange(steps)[None, :, None]
    left = np.maximum.accumulate(np.where(kept, index, -1), axis=1)
    right = np.flip(np.minimum.accumulate(np.flip(np.where(kept, index, steps), axis=1), axis=1), axis=1)
    has_left, has_right = left >= 0, right < steps
    left_value = np.take_along_axis(x, np.clip(left, 0, steps - 1), axis=1)
    right_value = np.take_along_axis(x, np.clip(right, 0, steps - 1), axis=1)
    span = np.maximum(right - left, 1)
    weight = (index - left) / span
    both = left_value + weight * (right_value - left_value)
    filled = np.where(has_left & has_right, both, np.where(has_left, left_value, np.where(has_right, right_value, 0.0)))
    return np.where(kept, x, filled)


def _replacement(
    mode: str, x: np.ndarray, value: Any, data: np.ndarray, token: Any, rng: np.random.Generator
) -> np.ndarray | None:
    """The fixed replacement for every unit, shaped like ``x`` (None for interpolation)."""
    if mode == "interpolate":
        if x.ndim != 3:
            raise InputError('mode="interpolate" needs float inputs (B, T, D); for token ids use mode="token"')
        return None
    if mode == "token":
        if x.ndim != 2:
            raise InputError('mode="token" is for token models (x of shape (B, T) integer ids)')
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise InputError(f"token must be an int token id; got {token!r}")
        return np.full_like(x, int(token))
    if mode == "random_draw":
        if data.ndim != x.ndim or data.shape[2:] != x.shape[2:]:
            raise InputError(f"data must have shape (N, T', ...) with trailing dims {x.shape[2:]}; got {data.shape}")
        samples = rng.integers(0, data.shape[0], size=x.shape[:2])
        times = rng.integers(0, data.shape[1], size=x.shape[:2])
        drawn = data[samples, times]  # (B, T) or (B, T, D): one draw per step
        if x.ndim == 3:  # per feature, an independent draw
            samples = rng.integers(0, data.shape[0], size=x.shape)
            times = rng.integers(0, data.shape[1], size=x.shape)
            drawn = data[samples, times, np.arange(x.shape[2])[None, None, :]]
        return drawn.astype(x.dtype)
    if x.ndim != 3:
        raise InputError(f'mode={mode!r} needs float inputs (B, T, D); for token ids use mode="token" or "random_draw"')
    if mode == "zero":
        return np.zeros_like(x)
    if mode == "constant":
        try:
            fill = np.broadcast_to(np.asarray(value, dtype=x.dtype), x.shape)
        except (TypeError, ValueError) as exc:
            raise InputError(f"value must be a number or broadcast to x's shape {x.shape}; got {value!r}") from exc
        return np.array(fill)
    # mean
    if data.ndim != 3 or data.shape[2] != x.shape[2]:
        raise InputError(f"data must have shape (N, T', {x.shape[2]}) for mode='mean'; got {data.shape}")
    return np.broadcast_to(data.mean(axis=(0, 1)).astype(x.dtype), x.shape).copy()


def _target(scorer: Scorer, x: np.ndarray, mask: np.ndarray | None, target: Any) -> tuple[np.ndarray, np.ndarray]:
    base = np.asarray(scorer.score(x) if mask is None else scorer.score(x, mask=mask))
    batch = x.shape[0]
    if base.ndim != 2 or base.shape[0] != batch:
        raise InputError(f"score(x) must return (B, C) = ({batch}, C) scores; got shape {base.shape}")
    if target is None:
        return base, np.argmax(base, axis=1)
    array = np.asarray(target)
    if array.dtype.kind not in "iu":
        raise InputError(f"target must be None, an int or ({batch},) integers; got dtype {array.dtype}")
    array = np.broadcast_to(array, (batch,)) if array.ndim == 0 else array
    if array.shape != (batch,) or array.min() < 0 or array.max() >= base.shape[1]:
        raise InputError(
            f"target must be None, an int or ({batch},) integers in [0, {base.shape[1]}); got {np.asarray(target)!r}"
        )
    return base, array.astype(np.int64)


def perturbation_curve(
    explainer: Scorer,
    x: Any,
    relevance: Any,
    order: str = "morf",
    mode: str = "zero",
    steps: int | None = None,
    unit: str = "step",
    target: Any = None,
    mask: Any = None,
    value: Any = 0.0,
    data: Any = None,
    token: int = 0,
    seed: int = 0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> PerturbationResult:
    """Remove units in the order of ``relevance`` and re-score after each removal step.

    At point ``k`` of ``steps + 1`` the first ``round(k · N_b / steps)`` units of sample ``b``
    in the removal order are replaced (``N_b``: its number of valid units; masked steps are
    never removed), so every curve ends with all valid units removed.

    Args:
        explainer: any object with ``score(x, mask=None) -> (B, C)`` (e.g. ``Explainer``).
        x: (B, T, D) float inputs or (B, T) token ids.
        relevance: (B, T) or (B, T, D) relevance (or an ``Explanation``); per step it is summed
            over features.
        order: ``"morf"``, ``"lrf"`` or ``"random"`` (seeded per call by ``seed``).
        mode: ``"zero"``, ``"constant"``, ``"mean"``, ``"random_draw"``, ``"interpolate"`` or
            ``"token"`` (token models; ``"random_draw"`` also works for them).
        steps: removal steps; None removes one unit per step (T or T·D of them).
        unit: ``"step"`` (whole time steps / tokens) or ``"feature"`` (single values).
        target: None (the predicted class on ``x``), an int or (B,) ints.
        mask: (B, T) bool, True for valid steps, passed to ``score``; None: all valid.
        value: ``mode="constant"``: the fill value (a number or broadcastable to x).
        data: ``"mean"`` / ``"random_draw"``: reference data (N, T', D) (token ids (N, T')),
            by default ``x`` itself.
        token: ``mode="token"``: the replacement token id.
        seed: seed of the random order and of random draws.
        max_elements: bound on the input values scored per call; several removal steps are
            stacked along the batch axis while they fit.

    Returns:
        A :class:`PerturbationResult`: curve (B, steps + 1), auc (B,), and their means.

    Raises:
        InputError: for an unknown order, mode or unit, mismatched shapes, a bad target or
            mode options that do not fit the inputs.
    """
    _choice(order, ORDERS, "order")
    _choice(mode, MODES, "mode")
    _choice(unit, UNITS, "unit")
    inputs = np.asarray(x)
    if inputs.ndim not in (2, 3) or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise InputError(f"x must be (B, T, D) floats or (B, T) token ids with B, T >= 1; got shape {inputs.shape}")
    if inputs.ndim == 2 and inputs.dtype.kind not in "iu":
        raise InputError(f"x of shape (B, T) must hold integer token ids; got dtype {inputs.dtype}")
    if inputs.ndim == 3 and inputs.dtype.kind != "f":
        inputs = inputs.astype(np.float64)
    max_elements = _positive_int(max_elements, "max_elements")
    units = _unit_relevance(relevance, inputs, unit)
    batch, length = inputs.shape[:2]
    valid = np.ones((batch, length), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if valid.shape != (batch, length):
        raise InputError(f"mask must have shape (B, T) = {(batch, length)}; got {valid.shape}")
    reference = inputs if data is None else np.asarray(data)
    rng = np.random.default_rng(seed)
    replacement = _replacement(mode, inputs, value, reference, token, rng)
    scores, targets = _target(explainer, inputs, None if mask is None else valid, target)

    valid_units = valid if unit == "step" else np.broadcast_to(valid[..., None], units.shape)
    flat_scores = units.reshape(batch, -1)
    flat_valid = valid_units.reshape(batch, -1)
    rank = _ranking(flat_scores, flat_valid, order, rng)
    count = flat_valid.sum(axis=1)
    steps = int(flat_scores.shape[1]) if steps is None else _positive_int(steps, "steps")
    removed_counts = np.rint(np.arange(steps + 1)[:, None] * count[None, :] / steps).astype(np.int64)  # (K+1, B)

    def perturbed(k: int) -> np.ndarray:
        removed = (rank < removed_counts[k][:, None]).reshape(units.shape)
        if inputs.ndim == 3 and unit == "step":
            removed = np.broadcast_to(removed[..., None], inputs.shape)
        if replacement is None:
            return _interpolate(inputs, ~removed)
        return np.where(removed, replacement, inputs)

    curve = np.empty((batch, steps + 1), dtype=np.float64)
    curve[:, 0] = scores[np.arange(batch), targets]
    per_call = max(1, max_elements // max(inputs.size, 1))
    repeated_mask = None
    for start in range(1, steps + 1, per_call):
        points = list(range(start, min(start + per_call, steps + 1)))
        stacked = np.concatenate([perturbed(k) for k in points], axis=0)
        if mask is not None:
            repeated_mask = np.concatenate([valid] * len(points), axis=0)
        result = np.asarray(
            explainer.score(stacked) if repeated_mask is None else explainer.score(stacked, mask=repeated_mask)
        )
        picked = result[np.arange(len(stacked)), np.tile(targets, len(points))].reshape(len(points), batch)
        curve[:, points] = picked.T
    fractions = np.linspace(0.0, 1.0, steps + 1)
    return PerturbationResult(curve, auc(curve), fractions, targets, order, mode, unit)


__all__ = ["MODES", "ORDERS", "UNITS", "PerturbationResult", "Scorer", "auc", "perturbation_curve"]
