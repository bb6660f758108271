"""Product rules for ``gate ⊙ signal`` (Arras et al. 2017; Arras et al. 2019 compare them).

One small object per rule, each owning its split through the ``weigh`` slot; the gating cells
apply them to their products (``split_product``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras import ops

from .._typing import Tensor
from ..errors import InputError
from .numerics import sum_node


@dataclass(frozen=True)
class SignalTakesAll:
    """Product rule for ``gate ⊙ signal``: the signal takes all relevance, the gate none.

    The default of Arras et al. 2017 ("LRP-all" in Arras et al. 2019). Gates then never
    receive relevance, so their pre-activations need no ε-node.

    Attributes:
        gate: on a ``multiply`` node (Keras ``Multiply``), which of its two inputs is the gate
            (0 or 1; default 1, the second: ``Multiply()([signal, gate])``). The gating cells
            know their gates and ignore it.
    """

    name: str = "signal_takes_all"
    gate: int = 1

    def __post_init__(self) -> None:
        if self.gate not in (0, 1) or isinstance(self.gate, bool):
            raise InputError(f"SignalTakesAll(gate=...) names a multiply node's gate input, 0 or 1; got {self.gate!r}")

    def weigh(self, gate: Tensor, signal: Tensor) -> tuple[Tensor, Tensor] | None:
        """Slot: the two shares' weights; None means "all to the signal".

        Args:
            gate: (B, H) the gate's activation.
            signal: (B, H) the signal (candidate or previous cell state).

        Returns:
            The (gate, signal) weights of the product's relevance split, each (B, H), or None
            when the signal takes all.
        """
        return None


@dataclass(frozen=True)
class Proportional:
    """LRP-prop (Arras et al. 2019): gate and signal share in proportion to their values.

    ``R_gate = gate / (gate + signal) · R`` and ``R_signal = signal / (gate + signal) · R``,
    the denominator stabilised like an ε-node (``sign(0) = +1``); the stabiliser's share
    times ``bias_factor`` goes half to each, so ``bias_factor = 1`` conserves exactly.
    """

    name: str = "proportional"

    def weigh(self, gate: Tensor, signal: Tensor) -> tuple[Tensor, Tensor] | None:
        """Slot: the weights are the values themselves.

        Args:
            gate: (B, H) the gate's activation.
            signal: (B, H) the signal (candidate or previous cell state).

        Returns:
            The (gate, signal) weights of the product's relevance split, each (B, H), or None
            when the signal takes all.
        """
        return gate, signal


@dataclass(frozen=True)
class Half:
    """LRP-half (Arras et al. 2019): gate and signal get half of the relevance each (exact)."""

    name: str = "half"

    def weigh(self, gate: Tensor, signal: Tensor) -> tuple[Tensor, Tensor] | None:
        """Slot: equal weights.

        Args:
            gate: (B, H) the gate's activation.
            signal: (B, H) the signal (candidate or previous cell state).

        Returns:
            The (gate, signal) weights of the product's relevance split, each (B, H), or None
            when the signal takes all.
        """
        return ops.ones_like(signal), ops.ones_like(signal)


@dataclass(frozen=True)
class Absolute:
    """LRP-abs (Arras et al. 2019): shares in proportion to ``|gate|`` and ``|signal|``.

    The denominator ``|gate| + |signal| + ε`` is positive; the ε share times ``bias_factor``
    goes half to each, so ``bias_factor = 1`` conserves exactly.
    """

    name: str = "abs"

    def weigh(self, gate: Tensor, signal: Tensor) -> tuple[Tensor, Tensor] | None:
        """Slot: the weights are the absolute values.

        Args:
            gate: (B, H) the gate's activation.
            signal: (B, H) the signal (candidate or previous cell state).

        Returns:
            The (gate, signal) weights of the product's relevance split, each (B, H), or None
            when the signal takes all.
        """
        return ops.abs(gate), ops.abs(signal)


ProductRule = SignalTakesAll | Proportional | Half | Absolute
#: Product rules by name (``RuleSet(product="half")`` works too).
PRODUCT_RULES: dict[str, type] = {
    "signal_takes_all": SignalTakesAll,
    "proportional": Proportional,
    "half": Half,
    "abs": Absolute,
}


def gate_takes_relevance(rule: ProductRule) -> bool:
    """Whether ``rule`` gives gates any relevance (static: decides the relevance path)."""
    return not isinstance(rule, SignalTakesAll)


def split_product(
    rule: ProductRule, gate: Tensor, signal: Tensor, relevance: Tensor, eps: Tensor, bias_factor: Tensor
) -> tuple[Tensor, Tensor]:
    """Split the relevance of ``gate ⊙ signal`` (all (B, H)) into ``(R_gate, R_signal)``.

    With the weights ``(w_g, w_s)`` from ``rule.weigh``: ``Q = R / stabilize(w_g + w_s)``,
    ``R_gate = w_g Q + s``, ``R_signal = w_s Q + s`` with ``s = bias_factor · ε·sign·Q / 2``;
    :class:`Half` divides by exactly 2.
    """
    weights = rule.weigh(gate, signal)
    if weights is None:
        return ops.zeros_like(relevance), relevance
    if isinstance(rule, Half):
        return relevance / 2, relevance / 2
    # a two-input ε-node with the share split per unit: the per-unit sum node over the weights
    return sum_node(weights, weights[0] + weights[1], relevance, eps, bias_factor, "per_unit")


def as_product_rule(rule: Any) -> ProductRule:
    """Coerce a product rule instance or name (``"half"``, ...) into an instance.

    Raises:
        InputError: for anything else.
    """
    if isinstance(rule, (SignalTakesAll, Proportional, Half, Absolute)):
        return rule
    if isinstance(rule, str) and rule in PRODUCT_RULES:
        return PRODUCT_RULES[rule]()
    raise InputError(f"unknown product rule {rule!r}; choose one of {sorted(PRODUCT_RULES)} or pass a rule object")


