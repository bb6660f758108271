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

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

from keras import ops

from .errors import InputError
from .layout import DenseSpec, EmbeddingSpec, NetworkLayout, RecurrentSpec

Tensor = Any


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


def _check_fixed_eps(eps: Any, owner: str) -> None:
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


@dataclass(frozen=True)
class SignalTakesAll:
    """Product rule for ``gate ⊙ signal``: the signal takes all relevance, the gate none.

    The default of Arras et al. 2017 ("LRP-all" in Arras et al. 2019). Gates then never
    receive relevance, so their pre-activations need no ε-node.
    """

    name: str = "signal_takes_all"

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


# --------------------------------------------------------------------------------------------
# Rules for the dense head (linear layers)


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
        _check_fixed_eps(self.eps, "Epsilon")

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


LinearRule = Epsilon | ZPlus
#: Dense-layer rules by name.
LINEAR_RULES: dict[str, type] = {"epsilon": Epsilon, "zplus": ZPlus}

SumSpread = Literal["all", "per_unit"]


def as_product_rule(rule: Any) -> ProductRule:
    """Coerce a product rule instance or name (``"half"``, ...) into an instance.

    Raises:
        InputError: for anything else.
    """
    if isinstance(rule, tuple(PRODUCT_RULES.values())):
        return rule
    if isinstance(rule, str) and rule in PRODUCT_RULES:
        return PRODUCT_RULES[rule]()
    raise InputError(f"unknown product rule {rule!r}; choose one of {sorted(PRODUCT_RULES)} or pass a rule object")


def as_linear_rule(rule: Any) -> LinearRule:
    """Coerce a dense-layer rule: an instance, a name (``"zplus"``) or a number (a fixed ε).

    Raises:
        InputError: for anything else.
    """
    if isinstance(rule, tuple(LINEAR_RULES.values())):
        return rule
    if isinstance(rule, str) and rule in LINEAR_RULES:
        return LINEAR_RULES[rule]()
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        return Epsilon(float(rule))
    raise InputError(
        f"unknown dense rule {rule!r}; pass tf_lrp.rules.Epsilon(eps), ZPlus(), a name in "
        f"{sorted(LINEAR_RULES)} or a number (a fixed ε)"
    )


@dataclass(frozen=True)
class Recurrent:
    """The rules of one recurrent layer, for :attr:`RuleSet.layers` (every field optional).

    Attributes:
        product: this layer's product rule (an instance or a name), or None for the RuleSet's.
        sum_spread: ``"all"`` or ``"per_unit"`` for this layer's sum nodes (its state update
            and, when bidirectional with ``merge_mode="sum"``/``"ave"``, its merge), or None
            for the RuleSet's.
        eps: a fixed ε for every node of this layer (both directions), or None for the ``eps``
            given to ``explain`` (as in :class:`Epsilon`).
    """

    product: ProductRule | str | None = None
    sum_spread: SumSpread | None = None
    eps: float | None = None
    name: str = "recurrent"

    def __post_init__(self) -> None:
        if self.product is not None:
            object.__setattr__(self, "product", as_product_rule(self.product))
        if self.sum_spread not in (None, "all", "per_unit"):
            raise InputError(f"Recurrent(sum_spread=...) must be 'all', 'per_unit' or None; got {self.sum_spread!r}")
        _check_fixed_eps(self.eps, "Recurrent")
        if self.eps is not None:
            object.__setattr__(self, "eps", float(self.eps))


LayerRule = LinearRule | Recurrent
LayerKey = int | str


def as_layer_rule(rule: Any) -> LayerRule:
    """Coerce one :attr:`RuleSet.layers` value into :class:`Recurrent` or a dense rule.

    Accepts :class:`Recurrent`, a product rule (instance or name, short for
    ``Recurrent(product=...)``) or a dense rule (see :func:`as_linear_rule`).

    Raises:
        InputError: for anything else.
    """
    if isinstance(rule, Recurrent):
        return rule
    if isinstance(rule, tuple(PRODUCT_RULES.values())) or (isinstance(rule, str) and rule in PRODUCT_RULES):
        return Recurrent(product=rule)
    try:
        return as_linear_rule(rule)
    except InputError:
        raise InputError(
            f"unknown layer rule {rule!r}; for a Dense layer pass Epsilon(eps), ZPlus(), a name in "
            f"{sorted(LINEAR_RULES)} or a number (a fixed ε); for an LSTM/GRU layer pass "
            f"Recurrent(product=..., sum_spread=..., eps=...) or a product rule name in {sorted(PRODUCT_RULES)}"
        ) from None


def _layer_map(layers: Any) -> tuple[tuple[LayerKey, LayerRule], ...]:
    """``layers`` (a mapping or pairs) as a sorted tuple of ``(key, rule)`` pairs (hashable)."""
    pairs = layers.items() if hasattr(layers, "items") else layers
    try:
        pairs = [(key, value) for key, value in pairs]
    except (TypeError, ValueError):
        raise InputError(
            f"RuleSet(layers=...) takes a dict {{layer index or name: rule}}; got {type(layers).__name__}"
        ) from None
    keys = [key for key, _ in pairs]
    for key in keys:
        valid_index = isinstance(key, int) and not isinstance(key, bool) and key >= 0
        if not valid_index and not (isinstance(key, str) and key):
            raise InputError(
                f"RuleSet(layers=...) keys are layer indices (int >= 0, as in the manifest and "
                f"`tf-lrp info`) or layer names (str); got {key!r}"
            )
    if len(set(keys)) != len(keys):
        raise InputError(f"RuleSet(layers=...) names a layer twice: keys {keys}")
    coerced = [(key, as_layer_rule(value)) for key, value in pairs]
    return tuple(sorted(coerced, key=lambda pair: (isinstance(pair[0], str), pair[0])))


@dataclass(frozen=True)
class RuleSet:
    """Which rule each kind of node uses (static structure; ε and bias_factor are traced).

    Attributes:
        product: the rule for ``gate ⊙ signal`` products: :class:`SignalTakesAll` (default),
            :class:`Proportional`, :class:`Half` or :class:`Absolute` (or their names). With
            any but the default, a gate's relevance passes its activation unchanged and goes
            through the gate's pre-activation, an ε-node over ``[x_t, h_prev]`` with the gate's
            kernel blocks and bias.
        sum_spread: how a state-update sum node (``c = f⊙c_prev + i⊙g`` in an LSTM,
            ``h = z⊙h_prev + (1-z)⊙n`` in a GRU) spreads its stabiliser share: ``"all"``
            spreads each unit's share over all 2H inputs, exactly as the reference
            implementations do (their identity-matrix formulation); ``"per_unit"`` gives unit
            j's share only to its own two inputs.
        head: the rule of every dense layer (:class:`Epsilon` with the call's ε by default).
        output: the rule of the last dense layer (the output), or None for ``head``.
        layers: per-layer overrides, zennit-style (like its ``NameMapComposite``): a dict
            ``{layer: rule}`` whose key is the layer's index in ``layout.layers`` (as in the
            manifest and ``tf-lrp info``; an embedding counts) or its name
            (``layout.layers[i].name``, the Keras layer name for converted models). A Dense
            layer takes a dense rule (``Epsilon(eps)``, ``ZPlus()``, ``"zplus"``, a number),
            which replaces ``head``/``output`` there; an LSTM/GRU layer takes
            :class:`Recurrent` (``product``, ``sum_spread``, a fixed ``eps``; a product rule
            alone is short for ``Recurrent(product=...)``), which replaces ``product`` and
            ``sum_spread`` (and the call's ε) for that layer only. Stored as a sorted tuple of
            ``(key, rule)`` pairs, so a RuleSet stays hashable; checked against a layout by
            :meth:`check` (the explainer does it at construction).

    Example::

        RuleSet(layers={0: Recurrent(product="half"), 2: Recurrent(eps=0.01), "out": ZPlus()})
    """

    product: ProductRule = SignalTakesAll()
    sum_spread: SumSpread = "all"
    head: LinearRule = Epsilon()
    output: LinearRule | None = None
    layers: tuple[tuple[LayerKey, LayerRule], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "product", as_product_rule(self.product))
        object.__setattr__(self, "head", as_linear_rule(self.head))
        if self.output is not None:
            object.__setattr__(self, "output", as_linear_rule(self.output))
        if self.sum_spread not in ("all", "per_unit"):
            raise InputError(f"sum_spread must be 'all' or 'per_unit'; got {self.sum_spread!r}")
        object.__setattr__(self, "layers", _layer_map(self.layers))

    def dense_rule(self, is_last: bool) -> LinearRule:
        """The rule of a dense layer.

        Args:
            is_last: whether it is the output layer (``output`` applies, when set).

        Returns:
            The dense rule.
        """
        return self.output if is_last and self.output is not None else self.head

    def resolve(self, layout: NetworkLayout) -> dict[int, LayerRule]:
        """The per-layer overrides keyed by layer index, checked against ``layout``.

        Args:
            layout: the network the overrides name layers of.

        Returns:
            ``{layer index: rule}``.

        Raises:
            InputError: for an unknown layer index or name, an ambiguous name, a layer given
                twice (by index and by name), an embedding layer, or a rule of the wrong kind
                (a dense rule for a recurrent layer or :class:`Recurrent` for a Dense layer).
        """
        resolved: dict[int, LayerRule] = {}
        keys: dict[int, LayerKey] = {}
        for key, rule in self.layers:
            index = _layer_index(layout, key)
            if index in resolved:
                raise InputError(
                    f"RuleSet(layers=...) gives layer {index} twice, as {keys[index]!r} and as {key!r}; keep one"
                )
            spec = layout.layers[index]
            where = f"RuleSet(layers=...): layer {key!r} ({_describe_layer(index, spec)})"
            if isinstance(spec, EmbeddingSpec):
                raise InputError(
                    f"{where} is an embedding: it has no LRP rule (relevance stops at the embedded vectors); "
                    "remove it from layers"
                )
            if isinstance(spec, RecurrentSpec) and not isinstance(rule, Recurrent):
                raise InputError(
                    f"{where} is recurrent and takes Recurrent(product=..., sum_spread=..., eps=...) or a "
                    f"product rule; got the dense rule {rule!r}"
                )
            if isinstance(spec, DenseSpec) and isinstance(rule, Recurrent):
                raise InputError(
                    f"{where} is Dense and takes a dense rule (Epsilon(eps), ZPlus(), 'epsilon', 'zplus' or "
                    f"a number); got {rule!r}"
                )
            resolved[index], keys[index] = rule, key
        return resolved

    def check(self, layout: NetworkLayout) -> None:
        """Raise :class:`~tf_lrp.errors.InputError` if :attr:`layers` does not fit ``layout``.

        Args:
            layout: the network to check against.
        """
        self.resolve(layout)

    def at(self, layout: NetworkLayout, index: int) -> tuple[RuleSet, float | None]:
        """The rules that layer ``index`` of ``layout`` uses, and its fixed ε (None: the call's).

        Args:
            layout: the network.
            index: the layer's index in ``layout.layers``.

        Returns:
            ``(self, None)`` for a layer without an override; otherwise a RuleSet without
            per-layer overrides whose ``product``/``sum_spread`` (recurrent) or ``head`` and
            ``output`` (dense) are the layer's, and the layer's fixed ε or None.
        """
        if not self.layers:
            return self, None
        rule = self.resolve(layout).get(index)
        if rule is None:
            return self, None
        if isinstance(rule, Recurrent):
            product = self.product if rule.product is None else rule.product
            spread = self.sum_spread if rule.sum_spread is None else rule.sum_spread
            return RuleSet(product, spread, self.head, self.output), rule.eps
        return RuleSet(self.product, self.sum_spread, rule, None), None


def _describe_layer(index: int, spec: Any) -> str:
    name = f" {spec.name!r}" if spec.name else ""
    return f"{spec.kind}{name} at index {index}"


def _layer_index(layout: NetworkLayout, key: LayerKey) -> int:
    """The index in ``layout.layers`` of a layer given by index or name."""
    layers = layout.layers
    if isinstance(key, int):
        if key >= len(layers):
            listing = ", ".join(_describe_layer(i, s) for i, s in enumerate(layers))
            raise InputError(f"RuleSet(layers=...) names layer {key}, but the network has {len(layers)}: {listing}")
        return key
    matches = [i for i, spec in enumerate(layers) if spec.name == key]
    if not matches:
        names = [spec.name for spec in layers if spec.name]
        hint = f"its layer names are {names}" if names else "its layers have no names"
        raise InputError(
            f"RuleSet(layers=...) names layer {key!r}, which the network does not have; {hint} "
            "(or use the layer's index, as in `tf-lrp info`)"
        )
    if len(matches) > 1:
        raise InputError(
            f"RuleSet(layers=...): {len(matches)} layers are named {key!r} (indices {matches}); use an index"
        )
    return matches[0]


#: Named rule sets; ``"arras2017"`` reproduces the reference implementation.
PRESETS: dict[str, RuleSet] = {
    "arras2017": RuleSet(),
    "per_unit": RuleSet(sum_spread="per_unit"),
    "proportional": RuleSet(product=Proportional()),
    "half": RuleSet(product=Half()),
    "abs": RuleSet(product=Absolute()),
    "zplus_output": RuleSet(output=ZPlus()),
}


def as_ruleset(rules: RuleSet | str | None) -> RuleSet:
    """Coerce ``None`` (the default), a preset name or a :class:`RuleSet` into a RuleSet.

    Args:
        rules: None, a name of ``PRESETS`` or a RuleSet.

    Returns:
        The RuleSet.

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
    stabiliser = signed_eps(total, eps)
    q = relevance / (total + stabiliser)
    share = bias_factor * stabiliser * q / 2
    return parts[0] * q + share, parts[1] * q + share
