"""LRP rules as small objects, and the one stabiliser.

The *structure* of a rule (which rule, how a sum node spreads its stabiliser share) is static:
it is part of the compiled function's key. Its *numbers* (ε, bias_factor) are passed at call
time as 0-d tensors, so a new ε never retraces.

References:
    Bach et al. 2015, "On pixel-wise explanations ... by layer-wise relevance propagation".
    Arras et al. 2017 (WASSA), "Explaining recurrent neural network predictions in sentiment
    analysis": the ε-rule with bias share for every linear map, signal-take-all for gates.
    Arras et al. 2019 (BlackboxNLP), "Evaluating recurrent neural network explanations":
    product rules compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from keras import ops

from .errors import InputError

Tensor = Any


def sign(z: Tensor) -> Tensor:
    """``+1`` where ``z >= 0`` (zero counts as positive), else ``-1``; same dtype as ``z``."""
    one = ops.ones_like(z)
    return ops.where(z >= 0, one, -one)


def stabilize(z: Tensor, eps: Tensor) -> Tensor:
    """``z + eps * sign(z)`` with ``sign(0) = +1``, so ε never cancels a zero denominator.

    Args:
        z: any shape, float.
        eps: 0-d tensor of z's dtype.

    Returns:
        Same shape and dtype as ``z``.
    """
    return z + ops.where(z >= 0, eps, -eps)


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
    q = relevance / stabilize(z, eps)
    absorbed = ops.where(z >= 0, eps, -eps)
    if bias is not None:
        absorbed = absorbed + bias
    share = bias_factor * ops.sum(absorbed * q, axis=-1, keepdims=True) / n_inputs
    return q, share


@dataclass(frozen=True)
class SignalTakesAll:
    """Product rule for ``gate ⊙ signal``: the signal takes all relevance, the gate none.

    The default of Arras et al. 2017 ("LRP-all" in Arras et al. 2019).
    """

    name: str = "signal_takes_all"


ProductRule = SignalTakesAll

SumSpread = Literal["all", "per_unit"]


@dataclass(frozen=True)
class RuleSet:
    """Which rule each kind of node uses (static structure; ε and bias_factor are traced).

    Attributes:
        product: the rule for ``gate ⊙ signal`` products (only :class:`SignalTakesAll` so far).
        sum_spread: how a state-update sum node (``c = f⊙c_prev + i⊙g`` in an LSTM,
            ``h = z⊙h_prev + (1-z)⊙n`` in a GRU) spreads its stabiliser share: ``"all"``
            spreads each unit's share over all 2H inputs, exactly as the reference
            implementations do (their identity-matrix formulation); ``"per_unit"`` gives unit
            j's share only to its own two inputs.
    """

    product: ProductRule = SignalTakesAll()
    sum_spread: SumSpread = "all"

    def __post_init__(self) -> None:
        if not isinstance(self.product, SignalTakesAll):
            raise InputError(f"product rule {self.product!r} is not supported; use tf_lrp.rules.SignalTakesAll()")
        if self.sum_spread not in ("all", "per_unit"):
            raise InputError(f"sum_spread must be 'all' or 'per_unit'; got {self.sum_spread!r}")


#: Named rule sets; ``"arras2017"`` reproduces the reference implementation.
PRESETS: dict[str, RuleSet] = {
    "arras2017": RuleSet(),
    "per_unit": RuleSet(sum_spread="per_unit"),
}


def as_ruleset(rules: RuleSet | str | None) -> RuleSet:
    """Coerce ``None`` (the default), a preset name or a :class:`RuleSet` into a RuleSet.

    Raises:
        InputError: for an unknown preset name or another type.
    """
    if rules is None:
        return PRESETS["arras2017"]
    if isinstance(rules, RuleSet):
        return rules
    if isinstance(rules, str):
        if rules not in PRESETS:
            raise InputError(f"unknown rule preset {rules!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[rules]
    raise InputError(f"rules must be a RuleSet, a preset name or None; got {type(rules).__name__}")


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
    q = relevance / stabilize(total, eps)
    share = bias_factor * ops.where(total >= 0, eps, -eps) * q / 2
    return parts[0] * q + share, parts[1] * q + share
