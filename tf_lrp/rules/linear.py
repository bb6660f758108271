"""Rules for linear nodes (Dense, Conv1D and the other maps linear in their relevant input): ε, γ and z⁺."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keras import ops

from .._typing import Tensor
from ..errors import InputError
from .numerics import check_fixed_eps, epsilon_node


@dataclass(frozen=True)
class Epsilon:
    """The ε-rule with bias share for a dense layer (Bach et al. 2015; Arras et al. 2017).

    Attributes:
        eps: a fixed stabiliser for this layer, or None to use the ``eps`` given to
            ``explain`` (the default; traced, so a new ε never retraces).
    """

    eps: float | None = None
    name: str = "epsilon"

    def __post_init__(self) -> None:
        check_fixed_eps(self.eps, "Epsilon")

    def dense(
        self,
        inputs: Tensor,
        kernel: Tensor,
        bias: Tensor,
        z: Tensor,
        relevance: Tensor,
        eps: Tensor,
        bias_factor: Tensor,
    ) -> Tensor:
        """Slot: relevance (B, D) of the inputs (B, D) of ``z = inputs @ kernel + bias`` (B, C).

        Args:
            inputs: (B, D) the layer's inputs.
            kernel: (D, C).
            bias: (C,).
            z: (B, C) the pre-activation.
            relevance: (B, C) relevance arriving at ``z``.
            eps: the call's ε (replaced by this rule's own ε when it has one).
            bias_factor: share of bias and stabiliser redistributed, in [0, 1].

        Returns:
            (B, D) relevance of the inputs.
        """
        stabiliser = eps if self.eps is None else ops.convert_to_tensor(self.eps, dtype=z.dtype)
        q, share = epsilon_node(z, relevance, bias, stabiliser, bias_factor, ops.shape(kernel)[0])
        return inputs * ops.matmul(q, ops.transpose(kernel)) + share


@dataclass(frozen=True)
class ZPlus:
    """The z⁺-rule (Montavon et al. 2017) for inputs of any sign: only positive contributions.

    ``R_i = Σ_j (a_i w_ij)⁺ / (Σ_i (a_i w_ij)⁺ + stabilizer) · R_j``; the bias is ignored. With
    ``(a w)⁺ = a⁺ w⁺ + a⁻ w⁻`` it costs four matmuls and never builds the (B, D, C) messages.
    Conserves relevance wherever an output has some positive contribution.

    Attributes:
        stabilizer: a small positive number added to the denominator.
    """

    stabilizer: float = 1e-9
    name: str = "zplus"

    def __post_init__(self) -> None:
        value = self.stabilizer
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InputError(f"ZPlus(stabilizer=...) must be a number > 0; got {self.stabilizer!r}")

    def dense(
        self,
        inputs: Tensor,
        kernel: Tensor,
        bias: Tensor,
        z: Tensor,
        relevance: Tensor,
        eps: Tensor,
        bias_factor: Tensor,
    ) -> Tensor:
        """Slot: relevance (B, D) of the inputs (B, D) of a dense layer; see the class.

        Args:
            inputs: (B, D) the layer's inputs.
            kernel: (D, C).
            bias: (C,) unused: z⁺ ignores the bias.
            z: (B, C) the pre-activation (only its dtype is used).
            relevance: (B, C) relevance arriving at the layer's outputs.
            eps: unused: the denominator's stabiliser is this rule's ``stabilizer``.
            bias_factor: unused (no bias share).

        Returns:
            (B, D) relevance of the inputs.
        """
        zero = ops.zeros_like(inputs)
        a_pos, a_neg = ops.maximum(inputs, zero), ops.minimum(inputs, zero)
        w_pos, w_neg = ops.maximum(kernel, ops.zeros_like(kernel)), ops.minimum(kernel, ops.zeros_like(kernel))
        positive = ops.matmul(a_pos, w_pos) + ops.matmul(a_neg, w_neg)
        q = relevance / (positive + ops.convert_to_tensor(self.stabilizer, dtype=z.dtype))
        return a_pos * ops.matmul(q, ops.transpose(w_pos)) + a_neg * ops.matmul(q, ops.transpose(w_neg))


@dataclass(frozen=True)
class Gamma:
    """The γ-rule (Montavon et al. 2019; zennit's ``Gamma``): the ε-rule on weights ``w + γ·w⁺``.

    Positive weights (and a positive bias) are strengthened by the factor ``1 + γ``, which favours
    the evidence for the output (γ = 0 is the ε-rule; γ → ∞ approaches z⁺ for positive inputs).
    The modified pre-activation ``z_γ = a @ (w + γw⁺) + (b + γb⁺)`` is the denominator, stabilised
    by ε; the bias share of ``b + γb⁺`` is redistributed by ``bias_factor`` as in :class:`Epsilon`,
    so bias_factor = 1 conserves.

    Attributes:
        gamma: γ ≥ 0.
        eps: a fixed stabiliser, or None for the ``eps`` given to ``explain``.
    """

    gamma: float = 0.25
    eps: float | None = None
    name: str = "gamma"

    def __post_init__(self) -> None:
        value = self.gamma
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InputError(f"Gamma(gamma=...) must be a number >= 0; got {self.gamma!r}")
        check_fixed_eps(self.eps, "Gamma")

    def modified(self, kernel: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
        """The γ-modified parameters ``(w + γw⁺, b + γb⁺)``.

        Args:
            kernel: the weights, any shape.
            bias: the bias, any shape.

        Returns:
            The modified kernel and bias.
        """
        gamma = ops.convert_to_tensor(self.gamma, dtype=kernel.dtype)
        return (
            kernel + gamma * ops.maximum(kernel, ops.zeros_like(kernel)),
            bias + gamma * ops.maximum(bias, ops.zeros_like(bias)),
        )

    def dense(
        self,
        inputs: Tensor,
        kernel: Tensor,
        bias: Tensor,
        z: Tensor,
        relevance: Tensor,
        eps: Tensor,
        bias_factor: Tensor,
    ) -> Tensor:
        """Slot: relevance (B, D) of the inputs (B, D) of a dense layer; see the class.

        Args:
            inputs: (B, D) the layer's inputs.
            kernel: (D, C).
            bias: (C,).
            z: (B, C) the pre-activation (unused: the γ-modified one is recomputed).
            relevance: (B, C) relevance arriving at the layer's outputs.
            eps: the call's ε (replaced by this rule's own ε when it has one).
            bias_factor: share of the modified bias and stabiliser redistributed, in [0, 1].

        Returns:
            (B, D) relevance of the inputs.
        """
        kernel_g, bias_g = self.modified(kernel, bias)
        z_g = ops.matmul(inputs, kernel_g) + bias_g
        return Epsilon(self.eps).dense(inputs, kernel_g, bias_g, z_g, relevance, eps, bias_factor)


LinearRule = Epsilon | ZPlus | Gamma
#: Dense-layer rules by name.
LINEAR_RULES: dict[str, type] = {"epsilon": Epsilon, "zplus": ZPlus, "gamma": Gamma}

def as_linear_rule(rule: Any) -> LinearRule:
    """Coerce a dense-layer rule: an instance, a name (``"zplus"``) or a number (a fixed ε).

    Raises:
        InputError: for anything else.
    """
    if isinstance(rule, (Epsilon, ZPlus, Gamma)):
        return rule
    if isinstance(rule, str) and rule in LINEAR_RULES:
        return LINEAR_RULES[rule]()
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return Epsilon(float(rule))
    raise InputError(
        f"unknown dense rule {rule!r}; pass tf_lrp.rules.Epsilon(eps), Gamma(gamma), ZPlus(), a name in "
        f"{sorted(LINEAR_RULES)} or a number (a fixed ε)"
    )


