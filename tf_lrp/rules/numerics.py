"""The numerics every rule shares: the stabiliser, the ε-node with bias share, the sum node.

Pure ``keras.ops`` functions; ε and bias_factor are 0-d tensors (traced, so a new ε never
retraces).

References:
    Bach et al. 2015, "On pixel-wise explanations ... by layer-wise relevance propagation".
    Arras et al. 2017 (WASSA), "Explaining recurrent neural network predictions in sentiment
    analysis": the ε-rule with bias share for every linear map, signal-take-all for gates.
    Arras et al. 2019 (BlackboxNLP), "Evaluating recurrent neural network explanations":
    product rules compared.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

from keras import ops

from .._typing import Tensor
from ..errors import InputError

SumSpread = Literal["all", "per_unit"]


def check_lrp_numbers(eps: Any, bias_factor: Any) -> None:
    """Validate the LRP stabiliser ``eps`` (a finite real >= 0) and ``bias_factor`` (in [0, 1]).

    Raises:
        InputError: naming the argument, the constraint and the value received.
    """
    for label, value in (("eps", eps), ("bias_factor", bias_factor)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"{label} must be a real number; got {value!r}")
        if not math.isfinite(float(value)):
            raise InputError(f"{label} must be finite; got {value!r}")
    if eps < 0:
        raise InputError(f"eps must be >= 0; got {eps!r}")
    if not 0.0 <= bias_factor <= 1.0:
        raise InputError(f"bias_factor must lie in [0, 1]; got {bias_factor!r}")


def sign(z: Tensor) -> Tensor:
    """``+1`` where ``z >= 0`` (zero counts as positive), else ``-1``; same dtype as ``z``."""
    return 1 - 2 * ops.cast(z < 0, z.dtype)


def signed_eps(z: Tensor, eps: Tensor) -> Tensor:
    """``eps * sign(z)`` with ``sign(0) = +1`` (and ``-0.0`` positive too); same shape as ``z``.

    Written as ``eps - 2·eps·[z < 0]``, bit-identical to ``where(z >= 0, eps, -eps)`` and about
    half its cost inside a TensorFlow CPU loop (a broadcast ``SelectV2`` is slow there;
    benchmarks/NOTES.md).

    Args:
        z: any shape, float.
        eps: 0-d tensor of z's dtype.
    """
    return eps - (eps + eps) * ops.cast(z < 0, z.dtype)


def check_fixed_eps(eps: Any, owner: str) -> None:
    """A rule's fixed ε: None (the call's ε) or a finite number >= 0; ``owner`` names the rule."""
    if eps is None:
        return
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise InputError(f"{owner}(eps=...) must be a number >= 0 or None; got {eps!r}")
    if not (eps >= 0 and eps < float("inf")):
        raise InputError(f"{owner}(eps=...) must be finite and >= 0; got {eps!r}")


def stabilize(z: Tensor, eps: Tensor) -> Tensor:
    """``z + eps * sign(z)`` with ``sign(0) = +1``, so ε never cancels a zero denominator.

    Args:
        z: any shape, float.
        eps: 0-d tensor of z's dtype.

    Returns:
        Same shape and dtype as ``z``.
    """
    return z + signed_eps(z, eps)


def epsilon_node(
    z: Tensor,
    relevance: Tensor,
    bias: Tensor | None,
    eps: Tensor,
    bias_factor: Tensor,
    n_inputs: int,
) -> tuple[Tensor, Tensor]:
    """The ε-rule with bias share for one linear node ``z = Σ_g a_g @ W_g + b``.

    For inputs ``a`` of any group with weights ``W``, the relevance is
    ``R_a = a ⊙ (Q @ Wᵀ) + share`` (Arras et al. 2017, eq. for ``lrp_linear``), where this
    function returns ``Q`` and ``share``. The share of the bias and the stabiliser, times
    ``bias_factor``, is spread evenly over all ``n_inputs`` inputs of the node (of every
    group), so with ``bias_factor = 1`` the node conserves relevance exactly.

    Args:
        z: (B, M) the node's full pre-activation (all groups plus bias).
        relevance: (B, M) relevance arriving at the node's outputs.
        bias: (M,) or (B, M) bias, or None for a node without bias.
        eps: 0-d stabiliser.
        bias_factor: 0-d factor of the redistributed bias/stabiliser share.
        n_inputs: N, the number of input units the share is spread over.

    Returns:
        ``Q`` (B, M) = relevance / stabilize(z), and ``share`` (B, 1).
    """
    absorbed = signed_eps(z, eps)
    q = relevance / (z + absorbed)
    if bias is not None:
        absorbed = absorbed + bias
    share = bias_factor * ops.sum(absorbed * q, axis=-1, keepdims=True) / n_inputs
    return q, share


def sum_node(
    parts: tuple[Tensor, Tensor],
    total: Tensor,
    relevance: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    spread: SumSpread,
) -> tuple[Tensor, Tensor]:
    """ε-rule for an elementwise two-part sum node ``total = parts[0] + parts[1]`` (no bias).

    Args:
        parts: two (B, H) tensors, the summed signals.
        total: (B, H) their sum (the denominator).
        relevance: (B, H) relevance of ``total``.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.
        spread: ``"all"`` (reference: N = 2H, the share of every unit goes to all 2H inputs)
            or ``"per_unit"`` (the share of unit j goes half to each of its two inputs).

    Returns:
        The relevance of ``parts[0]`` and of ``parts[1]``, each (B, H).
    """
    if spread == "all":
        units = ops.shape(total)[-1]
        q, share = epsilon_node(total, relevance, None, eps, bias_factor, 2 * units)
        return parts[0] * q + share, parts[1] * q + share
    stabiliser = signed_eps(total, eps)
    q = relevance / (total + stabiliser)
    share = bias_factor * stabiliser * q / 2
    return parts[0] * q + share, parts[1] * q + share
