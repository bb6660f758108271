"""Perturbation evaluation of explanations: curves, their area (AUC), method comparisons.

The sequence analogue of pixel flipping (Bach et al. 2015; Samek et al. 2017): remove the time
steps (or single features) of each sample in the order an explanation ranks them, re-score
the batch after each removal step, and record the target's score.

* ``order="morf"`` (most relevant first): a good explanation makes the score fall fast, so
  a *small* area under the curve is good;
* ``order="lrf"`` (least relevant first): the score should stay high, a *large* area is good;
* ``order="random"``: the baseline both are compared with.

"Removing" replaces the unit by a value chosen by ``mode``: ``"zero"``, ``"constant"``
(``value``), ``"mean"`` (the per-feature mean of the valid steps of ``data``),
``"random_draw"`` (a value drawn once per unit from a valid step of ``data``),
``"interpolate"`` (linear interpolation between the nearest kept valid steps on each side, the
sequence analogue of inpainting), ``"token"`` (a replacement token id, for token models).

Padding is the model's: a scorer with a ``layout`` (such as :class:`tf_lrp.Explainer`) says
which inputs it reads as padding (``Embedding(mask_zero=True)``: token 0; ``Masking``: steps
whose every feature equals ``mask_value``), so ``x`` alone gives the same curves as ``x`` with
its mask. Padded steps are never removed, never used as reference values or interpolation
anchors, and a removed unit never becomes padding.

This module imports no other stage of tf_lrp: it needs arrays and any object with a
``score(x, mask=None) -> (B, C)`` method (a :class:`Scorer`), and for :func:`compare` also
``explain(x, method=..., target=..., mask=...)`` (an :class:`Attributor`), such as
:class:`tf_lrp.Explainer`. All samples and, within ``max_elements`` input values per call,
several removal steps are scored in one call.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .errors import InputError

ORDERS = ("morf", "lrf", "random")
MODES = ("zero", "constant", "mean", "random_draw", "interpolate", "token")
UNITS = ("step", "feature")
#: How a curve's values are expressed: the raw target score, the score relative to the
#: unperturbed one, the softmax probability of the target, or "auto" (probability with two or
#: more outputs, else relative).
NORMALIZATIONS = ("none", "relative", "probability", "auto")
#: Default bound on the number of input values scored in one call (all stacked steps).
DEFAULT_MAX_ELEMENTS = 1 << 22
#: The methods :func:`compare` runs by default (``random`` is the control).
DEFAULT_METHODS = ("lrp", "gradient_x_input", "integrated_gradients", "sensitivity", "random")
#: Removal steps per curve in :func:`compare` (capped at the number of units).
DEFAULT_COMPARE_STEPS = 20


class Scorer(Protocol):
    """Anything that scores a batch: ``score(x, mask=None) -> (B, C)`` numpy array.

    It may also have a ``layout`` with ``embedding.mask_zero`` and ``mask_value`` (as
    :class:`tf_lrp.Explainer` does): then its padding rule is used (``padding="model"``).
    """

    def score(self, x: Any, mask: Any = None) -> np.ndarray:
        """Scores (B, C) of the batch ``x``.

        Args:
            x: (B, T, D) floats or (B, T) token ids.
            mask: (B, T) bool, True on valid steps, or None.

        Returns:
            (B, C) scores.
        """
        ...


class Attributor(Scorer, Protocol):
    """A :class:`Scorer` that also explains: ``explain(x, method=..., ...)`` with ``.relevance``."""

    def explain(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """An object with ``relevance`` (B, T, D) or (B, T) for the batch ``x``.

        Args:
            x: (B, T, D) floats or (B, T) token ids.
            *args: further positional arguments of the attributor.
            **kwargs: ``method``, ``target``, ``mask`` and the method's options.

        Returns:
            The explanation (e.g. an :class:`~tf_lrp.explainer.Explanation`).
        """
        ...
@dataclass(frozen=True)
class PerturbationResult:
    """A batch of perturbation curves.

    Attributes:
        curve: (B, steps + 1) the target's value (see ``normalize``) after removing
            ``fractions[k]`` of the units (``curve[:, 0]`` is the unperturbed value).
        auc: (B,) the area under each curve over the removed fraction in [0, 1] (trapezoid).
        fractions: (steps + 1,) the removed fraction at each point, 0 ... 1.
        target: (B,) the scored output unit.
        order: ``"morf"``, ``"lrf"`` or ``"random"``.
        mode: how a removed unit was replaced.
        unit: ``"step"`` or ``"feature"``.
        normalize: ``"none"`` (raw score), ``"relative"`` (score / unperturbed score) or
            ``"probability"`` (softmax probability of the target).
    """

    curve: np.ndarray
    auc: np.ndarray
    fractions: np.ndarray
    target: np.ndarray
    order: str
    mode: str
    unit: str
    normalize: str = "none"

    @property
    def samples(self) -> int:
        """B, the number of curves."""
        return int(self.curve.shape[0])

    @property
    def mean_curve(self) -> np.ndarray:
        """(steps + 1,) the curve averaged over the batch."""
        return self.curve.mean(axis=0)

    @property
    def sem_curve(self) -> np.ndarray:
        """(steps + 1,) the standard error of ``mean_curve`` over the batch (0 for one sample)."""
        return _sem(self.curve)

    @property
    def mean_auc(self) -> float:
        """The AUC averaged over the batch."""
        return float(self.auc.mean())

    @property
    def sem_auc(self) -> float:
        """The standard error of ``mean_auc`` over the batch (0 for one sample)."""
        return float(_sem(self.auc))


def _sem(values: np.ndarray) -> np.ndarray:
    """Standard error of the mean over axis 0 (sample standard deviation / sqrt(n))."""
    count = values.shape[0]
    if count < 2:
        return np.zeros(values.shape[1:])
    return values.std(axis=0, ddof=1) / math.sqrt(count)


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
    keys: dict[str, Callable[[], np.ndarray]] = {
        "random": lambda: rng.random((batch, count)), "morf": lambda: -scores, "lrf": lambda: scores
    }  # fmt: skip
    key = keys[order]()
    key = np.where(valid, key, np.inf)
    order_index = np.argsort(key, axis=1, kind="stable")
    rank = np.empty_like(order_index)
    np.put_along_axis(rank, order_index, np.arange(count)[None, :].repeat(batch, axis=0), axis=1)
    return rank


def _interpolate(x: np.ndarray, kept: np.ndarray, fallback: Any = 0.0) -> np.ndarray:
    """Replace removed steps by linear interpolation between the nearest kept steps.

    Args:
        x: (B, T, D) inputs.
        kept: (B, T, D) bool, the anchors (per-feature channels are interpolated independently).
        fallback: the value of a channel with no anchor at all: a number or (D,).

    Returns:
        (B, T, D): kept values unchanged; a removed value between kept neighbours is
        interpolated linearly in time, beyond the last (first) kept one it repeats it, and a
        channel with nothing kept becomes ``fallback``.
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
    empty = np.broadcast_to(np.asarray(fallback, dtype=x.dtype), x.shape)
    one_sided = np.where(has_left, left_value, np.where(has_right, right_value, empty))
    filled = np.where(has_left & has_right, both, one_sided)
    return np.where(kept, x, filled)


def padding_value(scorer: Any, padding: Any, x: np.ndarray) -> Any:
    """The input value the model reads as padding, or None.

    Args:
        scorer: the model; with ``padding="model"`` its ``layout`` is read:
            ``embedding.mask_zero`` (token models: token id 0) and ``mask_value`` (Keras
            ``Masking``, float models).
        padding: ``"model"``, None (no padding rule) or the padding value itself (a token id
            for (B, T) ids, a feature value for (B, T, D) floats).
        x: the inputs, (B, T) ids or (B, T, D) floats.

    Returns:
        The padding value, or None.

    Raises:
        InputError: for a padding value that is not a number.
    """
    if isinstance(padding, str):
        if padding != "model":
            raise InputError(f'padding must be "model", None or a number; got {padding!r}')
        layout = getattr(scorer, "layout", None)
        if x.ndim == 2:
            embedding = getattr(layout, "embedding", None)
            return 0 if embedding is not None and getattr(embedding, "mask_zero", False) else None
        return getattr(layout, "mask_value", None)
    if padding is None:
        return None
    if isinstance(padding, bool) or not isinstance(padding, (int, float, np.integer, np.floating)):
        raise InputError(f'padding must be "model", None or a number; got {padding!r}')
    return padding


def input_mask(x: np.ndarray, pad: Any) -> np.ndarray | None:
    """(B, T) True where a step is not padding, the way Keras derives it; None without a rule.

    Token ids: ``x != pad`` (``Embedding(mask_zero=True)``, pad 0); floats (B, T, D): a step is
    padding when every feature equals ``pad`` (``Masking(mask_value=pad)``).

    Args:
        x: (B, T) token ids or (B, T, D) floats.
        pad: the padding token or ``mask_value``; None when the model has no padding rule.

    Returns:
        (B, T) bool, or None when ``pad`` is None.
    """
    if pad is None:
        return None
    if x.ndim == 2:
        return np.asarray(x != pad)
    return np.any(x != np.asarray(pad, dtype=x.dtype), axis=-1)


def _is_padding(steps: np.ndarray, pad: Any, token_model: bool) -> np.ndarray:
    """Which replacement steps the model would read as padding: bool of steps' shape[:-1] (floats)."""
    if pad is None:
        return np.zeros(steps.shape if token_model else steps.shape[:-1], dtype=bool)
    return steps == pad if token_model else np.all(steps == np.asarray(pad, dtype=steps.dtype), axis=-1)


def _valid_reference(reference: np.ndarray, reference_valid: np.ndarray, mode: str) -> np.ndarray:
    """(N_valid, 2) (sample, time) of every valid reference step; refuses an empty set."""
    positions = np.argwhere(reference_valid)
    if len(positions) == 0:
        raise InputError(f"mode={mode!r}: the reference data has no valid (non-padding) step to draw from")
    return positions


def _replacement(
    mode: str,
    x: np.ndarray,
    value: Any,
    reference: np.ndarray,
    reference_valid: np.ndarray,
    token: Any,
    pad: Any,
    rng: np.random.Generator,
    vocabulary: int | None = None,
) -> np.ndarray | None:
    """The fixed replacement for every unit, shaped like ``x`` (None for interpolation).

    Raises:
        InputError: when the replacement does not fit ``x``, or would turn removed steps into
            the model's padding.
    """
    if mode == "interpolate":
        if x.ndim != 3:
            raise InputError('mode="interpolate" needs float inputs (B, T, D); for token ids use mode="token"')
        return None
    if mode == "token":
        if x.ndim != 2:
            raise InputError('mode="token" is for token models (x of shape (B, T) integer ids)')
        if token is None:
            if pad is not None:
                raise InputError(
                    f'mode="token" on a model that reads token {pad} as padding needs token=ID, an '
                    'out-of-vocabulary/[UNK] id that is not padding (or use mode="random_draw")'
                )
            token = 0
        if isinstance(token, bool) or not isinstance(token, (int, np.integer)):
            raise InputError(f"token must be an int token id; got {token!r}")
        if vocabulary is not None and not 0 <= int(token) < vocabulary:
            raise InputError(f"token={int(token)} is outside the model's vocabulary [0, {vocabulary})")
        if pad is not None and int(token) == pad:
            raise InputError(
                f"token={int(token)} is the model's padding id: removing a token would turn it into padding; "
                'pass an out-of-vocabulary/[UNK] id or use mode="random_draw"'
            )
        return np.full_like(x, int(token))
    if mode == "random_draw":
        if reference.ndim != x.ndim or reference.shape[2:] != x.shape[2:]:
            raise InputError(
                f"data must have shape (N, T', ...) with trailing dims {x.shape[2:]}; got {reference.shape}"
            )
        positions = _valid_reference(reference, reference_valid, mode)
        if x.ndim == 2:  # one valid token per unit
            picked = positions[rng.integers(0, len(positions), size=x.shape)]
            return reference[picked[..., 0], picked[..., 1]].astype(x.dtype)
        picked = positions[rng.integers(0, len(positions), size=x.shape)]  # per feature, an independent draw
        drawn = reference[picked[..., 0], picked[..., 1], np.arange(x.shape[2])[None, None, :]]
        return drawn.astype(x.dtype)
    if x.ndim != 3:
        raise InputError(f'mode={mode!r} needs float inputs (B, T, D); for token ids use mode="token" or "random_draw"')
    if mode in ("zero", "constant"):
        fill_value = 0.0 if mode == "zero" else value
        try:
            fill = np.array(np.broadcast_to(np.asarray(fill_value, dtype=x.dtype), x.shape))
        except (TypeError, ValueError) as exc:
            raise InputError(f"value must be a number or broadcast to x's shape {x.shape}; got {value!r}") from exc
        if _is_padding(fill, pad, token_model=False).any():
            raise InputError(
                f"mode={mode!r} replaces steps by the model's Masking value {pad}: removed steps would become "
                'padding; use mode="mean", "random_draw" or "interpolate"'
            )
        return fill
    # mean
    if reference.ndim != 3 or reference.shape[2] != x.shape[2]:
        raise InputError(f"data must have shape (N, T', {x.shape[2]}) for mode='mean'; got {reference.shape}")
    _valid_reference(reference, reference_valid, mode)
    return np.broadcast_to(reference[reference_valid].mean(axis=0).astype(x.dtype), x.shape).copy()


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


def _normalization(normalize: str, classes: int) -> str:
    _choice(normalize, NORMALIZATIONS, "normalize")
    if normalize == "auto":
        return "probability" if classes >= 2 else "relative"
    if normalize == "probability" and classes < 2:
        raise InputError('normalize="probability" needs a model with two or more outputs; use "relative" or "none"')
    return normalize


def _target_values(scores: np.ndarray, targets: np.ndarray, normalize: str) -> np.ndarray:
    """(N,) the target's raw score or softmax probability (``normalize="probability"``)."""
    scores = np.asarray(scores, dtype=np.float64)
    picked = scores[np.arange(len(targets)), targets]
    if normalize != "probability":
        return picked
    top = scores.max(axis=1)
    return np.exp(picked - top) / np.exp(scores - top[:, None]).sum(axis=1)


def _default_mode(x: np.ndarray, pad: Any) -> str:
    """The default removal mode for inputs like ``x`` under the padding value ``pad``.

    Token ids: ``"token"`` (id 0) without padding, else ``"random_draw"``; floats: ``"zero"``
    unless zeros are the model's padding (``Masking(0.0)``), then ``"mean"``.
    """
    if x.ndim == 2:
        return "token" if pad is None else "random_draw"
    return "mean" if pad is not None and float(pad) == 0.0 else "zero"


def perturbation_curve(
    explainer: Scorer,
    x: Any,
    relevance: Any,
    order: str = "morf",
    mode: str | None = None,
    steps: int | None = None,
    unit: str = "step",
    target: Any = None,
    mask: Any = None,
    value: Any = 0.0,
    data: Any = None,
    token: int | None = None,
    seed: int = 0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    padding: Any = "model",
    data_mask: Any = None,
    normalize: str = "none",
) -> PerturbationResult:
    """Remove units in the order of ``relevance`` and re-score after each removal step.

    At point ``k`` of ``steps + 1`` the first ``round(k · N_b / steps)`` units of sample ``b``
    in the removal order are replaced (``N_b``: its number of valid units; padded or masked
    steps are never removed), so every curve ends with all valid units removed. Each point
    is scored with the mask the model derives from the perturbed input (a sample whose
    every step reads as padding is scored as the model sees it, never refused).

    Args:
        explainer: any object with ``score(x, mask=None) -> (B, C)`` (e.g. ``Explainer``).
        x: (B, T, D) float inputs or (B, T) token ids.
        relevance: (B, T) or (B, T, D) relevance (or an ``Explanation``); per step it is summed
            over features.
        order: ``"morf"``, ``"lrf"`` or ``"random"`` (seeded per call by ``seed``).
        mode: ``"zero"``, ``"constant"``, ``"mean"``, ``"random_draw"``, ``"interpolate"`` or
            ``"token"``; None picks ``"zero"`` for float inputs (``"mean"`` when zeros are
            the model's ``Masking`` value) and, for token ids, ``"token"`` (id 0) or, when the
            model reads 0 as padding, ``"random_draw"`` from the data's non-padding tokens.
        steps: removal steps, capped at the largest number of valid units of a sample; None
            removes one unit per step.
        unit: ``"step"`` (whole time steps / tokens) or ``"feature"`` (single values).
        target: None (the predicted class on ``x``), an int or (B,) ints.
        mask: (B, T) bool, True for valid steps, passed to ``score``; None: the model's
            padding rule (see ``padding``) decides, else all steps are valid.
        value: ``mode="constant"``: the fill value (a number or broadcastable to x).
        data: ``"mean"`` / ``"random_draw"``: reference data (N, T', D) (token ids (N, T')),
            by default ``x`` itself; its padding is excluded.
        token: ``mode="token"``: the replacement token id, never the padding id (pass an
            out-of-vocabulary/``[UNK]`` id); None: 0 for models without padding.
        seed: seed of the random order and of random draws.
        max_elements: bound on the input values scored per call; several removal steps are
            stacked along the batch axis while they fit.
        padding: ``"model"`` (read the scorer's ``layout``: ``Embedding(mask_zero)`` or
            ``Masking(mask_value)``), None (no padding) or the padding value.
        data_mask: (N, T') bool, the valid steps of ``data`` (its padding rule also applies).
        normalize: the curve's values: ``"none"`` (the raw score), ``"relative"`` (score /
            unperturbed score; needs positive scores), ``"probability"`` (softmax
            probability of the target) or ``"auto"`` (probability for two or more outputs).

    Returns:
        A :class:`PerturbationResult`: curve (B, steps + 1), auc (B,), and their means.

    Raises:
        InputError: for an unknown order, mode or unit, mismatched shapes, a bad target or
            mode options that do not fit the inputs or would turn removed units into padding.
    """
    _choice(order, ORDERS, "order")
    if mode is not None:
        _choice(mode, MODES, "mode")
    _choice(unit, UNITS, "unit")
    _choice(normalize, NORMALIZATIONS, "normalize")
    inputs = np.asarray(x)
    if inputs.ndim not in (2, 3) or inputs.shape[0] == 0 or inputs.shape[1] == 0:
        raise InputError(f"x must be (B, T, D) floats or (B, T) token ids with B, T >= 1; got shape {inputs.shape}")
    if inputs.ndim == 2 and inputs.dtype.kind not in "iu":
        raise InputError(f"x of shape (B, T) must hold integer token ids; got dtype {inputs.dtype}")
    if inputs.ndim == 3 and inputs.dtype.kind != "f":
        inputs = inputs.astype(np.float64)
    max_elements = _positive_int(max_elements, "max_elements")
    if steps is not None:
        steps = _positive_int(steps, "steps")
    units = _unit_relevance(relevance, inputs, unit)
    batch, length = inputs.shape[:2]
    pad = padding_value(explainer, padding, inputs)
    given = None if mask is None else _mask(mask, (batch, length), "mask")
    derived = input_mask(inputs, pad)
    valid = _combine(given, derived, (batch, length))
    explicit = given is not None or derived is not None
    if data is None:
        reference, reference_valid = inputs, valid
    else:
        reference = np.asarray(data)
        if reference.ndim < 2:
            raise InputError(f"data must have shape (N, T', ...) like x; got {reference.shape}")
        given_reference = None if data_mask is None else _mask(data_mask, reference.shape[:2], "data_mask")
        reference_valid = _combine(given_reference, input_mask(reference, pad), reference.shape[:2])
    mode = _default_mode(inputs, pad) if mode is None else mode
    rng = np.random.default_rng(seed)
    embedding = getattr(getattr(explainer, "layout", None), "embedding", None)
    vocabulary = getattr(embedding, "input_dim", None) if inputs.ndim == 2 else None
    replacement = _replacement(mode, inputs, value, reference, reference_valid, token, pad, rng, vocabulary)
    fallback = 0.0
    if replacement is None and pad is not None and float(pad) == 0.0:  # an anchorless channel must not become padding
        if reference.ndim != 3 or reference.shape[2] != inputs.shape[2]:
            raise InputError(f"data must have shape (N, T', {inputs.shape[2]}); got {reference.shape}")
        _valid_reference(reference, reference_valid, mode)
        fallback = reference[reference_valid].mean(axis=0)
    scores, targets = _target(explainer, inputs, valid if explicit else None, target)
    normalize = _normalization(normalize, scores.shape[1])
    base = _target_values(scores, targets, normalize)
    if normalize == "relative" and not (base > 0).all():
        worst = int(np.argmin(base))
        raise InputError(
            f'normalize="relative" needs positive unperturbed scores; sample {worst} scores {base[worst]:.4g} '
            'for its target: use normalize="probability" or "none"'
        )

    valid_units = valid if unit == "step" else np.broadcast_to(valid[..., None], units.shape)
    flat_scores = units.reshape(batch, -1)
    flat_valid = valid_units.reshape(batch, -1)
    rank = _ranking(flat_scores, flat_valid, order, rng)
    count = flat_valid.sum(axis=1)
    most = max(int(count.max()), 1)
    steps = most if steps is None else min(steps, most)
    removed_counts = np.rint(np.arange(steps + 1)[:, None] * count[None, :] / steps).astype(np.int64)  # (K+1, B)

    def perturbed(k: int) -> np.ndarray:
        removed = (rank < removed_counts[k][:, None]).reshape(units.shape)
        if inputs.ndim == 3 and unit == "step":
            removed = np.broadcast_to(removed[..., None], inputs.shape)
        if replacement is None:
            anchors = ~removed & (valid[..., None] if inputs.ndim == 3 else valid)
            return np.where(removed, _interpolate(inputs, anchors, fallback), inputs)
        return np.where(removed, replacement, inputs)

    curve = np.empty((batch, steps + 1), dtype=np.float64)
    curve[:, 0] = base
    per_call = max(1, max_elements // max(inputs.size, 1))
    for start in range(1, steps + 1, per_call):
        points = list(range(start, min(start + per_call, steps + 1)))
        stacked = np.concatenate([perturbed(k) for k in points], axis=0)
        seen = None
        if explicit:  # what the model sees: the given mask and the padding rule on the perturbed input
            seen = _combine(None if given is None else np.tile(given, (len(points), 1)), input_mask(stacked, pad),
                            stacked.shape[:2])  # fmt: skip
        result = _score_stacked(explainer, stacked, seen, batch, points)
        picked = _target_values(result, np.tile(targets, len(points)), normalize).reshape(len(points), batch)
        curve[:, points] = picked.T
    if normalize == "relative":
        curve = curve / base[:, None]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    return PerturbationResult(curve, auc(curve), fractions, targets, order, mode, unit, normalize)


def _score_stacked(
    scorer: Scorer, stacked: np.ndarray, seen: np.ndarray | None, batch: int, points: list[int]
) -> np.ndarray:
    """Score removal points stacked along the batch; a scorer's error names the user's sample index.

    Row ``i`` of ``stacked`` is sample ``i % batch`` of ``x`` at point ``points[i // batch]``.
    """
    try:
        return np.asarray(scorer.score(stacked) if seen is None else scorer.score(stacked, mask=seen))
    except InputError as exc:
        text = re.sub(r"\bsample (\d+)", lambda m: f"sample {int(m.group(1)) % batch}", str(exc))
        span = f"{points[0]}" if len(points) == 1 else f"{points[0]}-{points[-1]}"
        raise InputError(f"scoring the perturbed inputs (removal point {span}) failed: {text}") from exc


def _mask(mask: Any, shape: tuple[int, ...], label: str) -> np.ndarray:
    """A (B, T) bool mask of the given shape (0/1 integers accepted)."""
    array = np.asarray(mask)
    if array.shape != tuple(shape):
        raise InputError(f"{label} must have shape (B, T) = {tuple(shape)}; got {array.shape}")
    if array.dtype != bool:
        if array.dtype.kind not in "iub" or not np.isin(array, (0, 1)).all():
            raise InputError(f"{label} must be boolean (True = valid step) or 0/1 integers")
        array = array.astype(bool)
    return array


def _combine(given: np.ndarray | None, derived: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The valid steps: the given mask and the padding rule's, all True without either."""
    if given is None and derived is None:
        return np.ones(shape, dtype=bool)
    if given is None:
        return np.asarray(derived)
    return given if derived is None else given & derived


@dataclass(frozen=True)
class MethodEvaluation:
    """One method's curves in a :class:`Comparison`.

    Attributes:
        method: the method name passed to ``explain``.
        relevance: the relevance the curves ranked by (the cache: explained once per method).
        morf: the most-relevant-first curves.
        lrf: the least-relevant-first curves.
        seconds: wall time of ``explain`` on all samples (after a warm-up call; NaN when the
            relevance was given).
    """

    method: str
    relevance: np.ndarray = field(repr=False)
    morf: PerturbationResult
    lrf: PerturbationResult
    seconds: float

    @property
    def abpc(self) -> np.ndarray:
        """(B,) the area between the LRF and MoRF curves, ``lrf.auc - morf.auc`` (larger is better)."""
        return self.lrf.auc - self.morf.auc

    @property
    def samples_per_second(self) -> float:
        """Samples explained per second (NaN when the relevance was given, not computed)."""
        return self.morf.samples / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True)
class Comparison:
    """Several methods' perturbation curves on one batch, with the random-order baseline.

    Attributes:
        methods: method name -> :class:`MethodEvaluation`, in the order given.
        random_order: the curves of removal in random order (the same for every method).
        mode, unit, normalize, steps: the settings every curve shares.
    """

    methods: dict[str, MethodEvaluation]
    random_order: PerturbationResult
    mode: str
    unit: str
    normalize: str
    steps: int

    @property
    def samples(self) -> int:
        """The number of samples (curves per method and order)."""
        return self.random_order.samples

    def rows(self) -> list[dict[str, Any]]:
        """One dict per method: AUC means and standard errors, ABPC, samples/s.

        Returns:
            The table's rows, in the order of the methods.
        """
        rows = []
        for name, result in self.methods.items():
            rows.append(
                {
                    "method": name,
                    "morf_auc": result.morf.mean_auc,
                    "morf_auc_sem": result.morf.sem_auc,
                    "lrf_auc": result.lrf.mean_auc,
                    "lrf_auc_sem": result.lrf.sem_auc,
                    "abpc": float(result.abpc.mean()),
                    "abpc_sem": float(_sem(result.abpc)),
                    "seconds": result.seconds,
                    "samples_per_second": result.samples_per_second,
                }
            )
        return rows

    def _value_label(self) -> str:
        return {
            "probability": "the softmax probability of the explained class",
            "relative": "the explained score divided by its unperturbed value",
            "none": "the raw explained score (logit)",
        }[self.normalize]

    def markdown(self) -> str:
        """The comparison as a Markdown table with a header that says how to read it.

        Returns:
            The Markdown text.
        """
        lines = [
            f"Perturbation comparison: {self.samples} samples, {self.unit}s removed ({self.mode}), "
            f"{self.steps} removal steps; curve values: {self._value_label()}.",
            "AUC over the removed fraction, mean ± standard error over samples. MoRF (most relevant "
            "first): lower is better; LRF (least relevant first): higher is better; ABPC = LRF − MoRF "
            "(area between the curves): higher is better.",
            "",
            "| method | MoRF AUC ↓ | LRF AUC ↑ | ABPC ↑ | samples/s |",
            "|---|---|---|---|---|",
        ]
        for row in self.rows():
            speed = "given" if math.isnan(row["samples_per_second"]) else f"{row['samples_per_second']:,.0f}"
            lines.append(
                f"| {row['method']} | {row['morf_auc']:.4f} ± {row['morf_auc_sem']:.4f} "
                f"| {row['lrf_auc']:.4f} ± {row['lrf_auc_sem']:.4f} "
                f"| {row['abpc']:.4f} ± {row['abpc_sem']:.4f} | {speed} |"
            )
        base = self.random_order
        lines += ["", f"Random removal order (baseline for both): AUC {base.mean_auc:.4f} ± {base.sem_auc:.4f}."]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, the table rows, mean curves and standard errors.

        Returns:
            The dict (plain Python types only).
        """

        def finite(value: float) -> float | None:
            return None if math.isnan(value) else value

        def curves(result: PerturbationResult) -> dict[str, Any]:
            return {
                "mean_auc": result.mean_auc,
                "sem_auc": result.sem_auc,
                "mean_curve": result.mean_curve.tolist(),
                "sem_curve": result.sem_curve.tolist(),
            }

        return {
            "samples": self.samples,
            "mode": self.mode,
            "unit": self.unit,
            "normalize": self.normalize,
            "value": self._value_label(),
            "steps": self.steps,
            "fractions": self.random_order.fractions.tolist(),
            "methods": [
                {
                    **{k: finite(v) if isinstance(v, float) else v for k, v in row.items()},
                    "morf": curves(self.methods[row["method"]].morf),
                    "lrf": curves(self.methods[row["method"]].lrf),
                }
                for row in self.rows()
            ],
            "random_order": curves(self.random_order),
        }


def compare(
    explainer: Attributor,
    x: Any,
    methods: Sequence[str] = DEFAULT_METHODS,
    target: Any = None,
    mask: Any = None,
    mode: str | None = None,
    steps: int | None = DEFAULT_COMPARE_STEPS,
    unit: str = "step",
    normalize: str = "auto",
    data: Any = None,
    data_mask: Any = None,
    padding: Any = "model",
    seed: int = 0,
    explain_options: Mapping[str, Mapping[str, Any]] | None = None,
    relevances: Mapping[str, Any] | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    seconds: Mapping[str, float] | None = None,
) -> Comparison:
    """Explain ``x`` with each method and compare their MoRF / LRF curves and AUCs.

    Each method is explained once (after a warm-up call on a few samples, so that compiling
    is not timed) and its relevance is reused for both orders; the random-order curve is
    computed once. Every curve uses the same targets, removal mode, steps and normalisation.

    Args:
        explainer: an object with ``score(x, mask=None)`` and ``explain(x, method=...,
            target=..., mask=...)`` returning an object with ``relevance``, such as
            :class:`tf_lrp.Explainer`.
        x: (B, T, D) floats or (B, T) token ids.
        methods: method names for ``explain`` (e.g. ``"lrp"``, ``"gradient_x_input"``,
            ``"integrated_gradients"``, ``"sensitivity"``, ``"random"``).
        target: None (the predicted class), an int or (B,) ints; explained and scored alike.
        mask: (B, T) valid steps, or None (the model's padding rule decides).
        mode: as in :func:`perturbation_curve` (None: the default for the model).
        unit: ``"step"`` or ``"feature"``.
        data: reference data of ``"mean"`` / ``"random_draw"`` (default ``x``).
        data_mask: the valid steps of ``data``.
        padding: ``"model"``, None or the padding value.
        seed: seed of the random order and random draws.
        max_elements: bound on the input values scored per call.
        steps: removal steps per curve (default 20, capped at the number of units; None:
            one unit per step).
        normalize: as in :func:`perturbation_curve`; by default ``"auto"`` (probability of
            the explained class for two or more outputs, else relative to the unperturbed
            score), so AUCs compare across models.
        explain_options: method name -> extra keyword arguments of ``explain`` (e.g.
            ``{"integrated_gradients": {"steps": 64}}``).
        relevances: method name -> a precomputed relevance (B, T[, D]) to use instead of
            explaining (its speed is then not measured).
        seconds: method name -> the explain time of a given relevance, when it is known
            (e.g. recorded with a cached relevance); reported as its samples/s.

    Returns:
        A :class:`Comparison` (``markdown()``, ``to_json()``; draw it with
        ``tf_lrp.viz.plot_comparison``).

    Raises:
        InputError: for an empty or repeated method list, or any invalid curve option.
    """
    names = list(methods)
    if not names or any(not isinstance(name, str) or not name for name in names):
        raise InputError(f"methods must be a non-empty list of method names; got {methods!r}")
    if len(set(names)) != len(names):
        raise InputError(f"methods lists a method twice: {names}")
    options = dict(explain_options or {})
    given = dict(relevances or {})
    inputs = np.asarray(x)
    if inputs.ndim not in (2, 3) or inputs.shape[0] == 0:
        raise InputError(f"x must be (B, T, D) floats or (B, T) token ids with B >= 1; got shape {inputs.shape}")
    masked = {} if mask is None else {"mask": mask}
    _, targets = _target(explainer, inputs, None if mask is None else np.asarray(mask, dtype=bool), target)
    curve_options: dict[str, Any] = {
        "mode": mode, "steps": steps, "unit": unit, "target": targets, "mask": mask, "data": data,
        "data_mask": data_mask, "padding": padding, "seed": seed, "max_elements": max_elements,
        "normalize": normalize,
    }  # fmt: skip
    results: dict[str, MethodEvaluation] = {}
    for name in names:
        if name in given:
            relevance = np.asarray(getattr(given[name], "relevance", given[name]))
            elapsed = float((seconds or {}).get(name, math.nan))
        else:
            extra = dict(options.get(name, {}))
            warm = slice(0, min(len(inputs), 4))
            warm_mask = {} if mask is None else {"mask": np.asarray(mask)[warm]}
            explainer.explain(inputs[warm], method=name, target=targets[warm], **warm_mask, **extra)
            started = time.perf_counter()
            relevance = np.asarray(explainer.explain(inputs, method=name, target=targets, **masked, **extra).relevance)
            elapsed = time.perf_counter() - started
        morf = perturbation_curve(explainer, inputs, relevance, order="morf", **curve_options)
        lrf = perturbation_curve(explainer, inputs, relevance, order="lrf", **curve_options)
        results[name] = MethodEvaluation(name, relevance, morf, lrf, elapsed)
    first = next(iter(results.values()))
    random_order = perturbation_curve(explainer, inputs, first.relevance, order="random", **curve_options)
    return Comparison(
        results, random_order, first.morf.mode, unit, first.morf.normalize, len(first.morf.fractions) - 1
    )


__all__ = [
    "DEFAULT_METHODS",
    "MODES",
    "NORMALIZATIONS",
    "ORDERS",
    "UNITS",
    "Attributor",
    "Comparison",
    "MethodEvaluation",
    "PerturbationResult",
    "Scorer",
    "auc",
    "compare",
    "input_mask",
    "padding_value",
    "perturbation_curve",
]
