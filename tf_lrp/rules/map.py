"""Rule maps, zennit-style: which rule each node of a network gets.

:class:`RuleSet` is the user-facing description (global product rule, sum spread, head and output
rules, per-node overrides by index, name or node kind); :meth:`RuleSet.rule_map` turns it into
an ordered list of (matcher, rule) entries, user entries before defaults, and
:meth:`RuleSet.resolve_nodes` resolves it once per network, first match wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..layout import NODE_KINDS, NetworkLayout
from .linear import LINEAR_RULES, Epsilon, LinearRule, ZPlus, as_linear_rule
from .numerics import SumSpread, check_fixed_eps
from .product import PRODUCT_RULES, Absolute, Half, ProductRule, Proportional, SignalTakesAll, as_product_rule

#: the product rule of a multiply node when no entry names one: exact and conserving without a
#: designated gate or a denominator (proportional's ``x_0 + x_1`` can vanish)
MULTIPLY_DEFAULT: ProductRule = Half()


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
        check_fixed_eps(self.eps, "Recurrent")
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
    if isinstance(rule, (SignalTakesAll, Proportional, Half, Absolute)) or (
        isinstance(rule, str) and rule in PRODUCT_RULES
    ):
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
class NodeRules:
    """The rules one node's relevance step reads (resolved once per network, static).

    Attributes:
        product: the product rule of a gating node's ``gate ⊙ signal`` products.
        sum_spread: how its sum nodes spread the stabiliser share.
        linear: the rule of a linear node.
        eps: a fixed ε for this node, or None for the ε given to ``explain``.
        attention: the rule of an attention node: ``"cp_lrp"`` or ``"attnlrp"``.
    """

    product: ProductRule
    sum_spread: SumSpread
    linear: LinearRule
    eps: float | None = None
    output: LinearRule | None = None
    attention: str = "cp_lrp"

    def dense_rule(self, is_last: bool) -> LinearRule:
        """The rule of a dense map inside the node (the same signature as :meth:`RuleSet.dense_rule`).

        ``output`` (the RuleSet's) for a node's own output map (the forecaster's ``head2``) when
        set, else ``linear``.
        """
        return self.output if is_last and self.output is not None else self.linear


@dataclass(frozen=True)
class ByIndex:
    """Matches the node at ``index`` of the network (as in the manifest and ``tf-lrp info``)."""

    index: int

    def matches(self, index: int, spec: Any, is_output: bool) -> bool:
        """Whether this entry applies to node ``index`` with layer spec ``spec``.

        Args:
            index: the node's index in ``layout.layers``.
            spec: the node's layer spec (its ``kind`` and ``name``).
            is_output: whether the node is the network's output node.

        Returns:
            True when the entry's rule applies to the node.
        """
        return index == self.index


@dataclass(frozen=True)
class ByName:
    """Matches the node whose layer name is ``name`` (the Keras layer name for converted models)."""

    name: str

    def matches(self, index: int, spec: Any, is_output: bool) -> bool:
        """Whether this entry applies to node ``index`` with layer spec ``spec``.

        Args:
            index: the node's index in ``layout.layers``.
            spec: the node's layer spec (its ``kind`` and ``name``).
            is_output: whether the node is the network's output node.

        Returns:
            True when the entry's rule applies to the node.
        """
        return bool(spec.name) and spec.name == self.name


@dataclass(frozen=True)
class ByKind:
    """Matches every node of one kind (``"dense"``, ``"lstm"``, ``"gru"``, ``"simple_rnn"``, ...)."""

    kind: str

    def matches(self, index: int, spec: Any, is_output: bool) -> bool:
        """Whether this entry applies to node ``index`` with layer spec ``spec``.

        Args:
            index: the node's index in ``layout.layers``.
            spec: the node's layer spec (its ``kind`` and ``name``).
            is_output: whether the node is the network's output node.

        Returns:
            True when the entry's rule applies to the node.
        """
        return spec.kind == self.kind


@dataclass(frozen=True)
class ByRuleKind:
    """Matches every node that takes rules of one kind (``"linear"`` or ``"recurrent"``)."""

    rule_kind: str

    def matches(self, index: int, spec: Any, is_output: bool) -> bool:
        """Whether this entry applies to node ``index`` with layer spec ``spec``.

        Args:
            index: the node's index in ``layout.layers``.
            spec: the node's layer spec (its ``kind`` and ``name``).
            is_output: whether the node is the network's output node.

        Returns:
            True when the entry's rule applies to the node.
        """
        return spec.rule_kind == self.rule_kind


@dataclass(frozen=True)
class IsOutput:
    """Matches the network's output node (whose pre-activation is the explained score)."""

    def matches(self, index: int, spec: Any, is_output: bool) -> bool:
        """Whether this entry applies to node ``index`` with layer spec ``spec``.

        Args:
            index: the node's index in ``layout.layers``.
            spec: the node's layer spec (its ``kind`` and ``name``).
            is_output: whether the node is the network's output node.

        Returns:
            True when the entry's rule applies to the node.
        """
        return is_output and spec.rule_kind == "linear"


Matcher = ByIndex | ByName | ByKind | ByRuleKind | IsOutput
#: the rules of the attention nodes (``RuleSet(attention=...)``)
ATTENTION_RULES = ("cp_lrp", "attnlrp")
#: node kind names a ``RuleSet(kinds=...)`` key may take (rule kind of each).
RULE_KINDS = {"linear", "recurrent", "product"}


def _kind_map(kinds: Any) -> tuple[tuple[str, LayerRule], ...]:
    """``kinds`` (a mapping or pairs, node kind -> rule) as a sorted tuple of pairs (hashable)."""
    pairs = kinds.items() if hasattr(kinds, "items") else kinds
    try:
        pairs = [(key, value) for key, value in pairs]
    except (TypeError, ValueError):
        raise InputError(f"RuleSet(kinds=...) takes a dict {{node kind: rule}}; got {type(kinds).__name__}") from None
    for key, _ in pairs:
        if key not in NODE_KINDS:
            raise InputError(f"RuleSet(kinds=...) keys are node kinds, one of {list(NODE_KINDS)}; got {key!r}")
    return tuple(sorted((key, as_layer_rule(value)) for key, value in pairs))


@dataclass(frozen=True)
class RuleSet:
    """Which rule each node uses (static structure; ε and bias_factor are traced).

    A RuleSet describes a rule map (zennit's composites): :meth:`rule_map` lists its entries,
    user entries (``layers`` by index or name, then ``kinds`` by node kind) before the
    defaults (``output`` for the output node, ``head`` for every linear node, ``product`` and
    ``sum_spread`` for every recurrent node); :meth:`resolve_nodes` gives each node of a
    network the first entry that matches, once per network.

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
        head: the rule of every linear node (Dense; :class:`Epsilon` with the call's ε by default).
        output: the rule of the output node, or None for ``head``.
        layers: per-node overrides, zennit-style (like its ``NameMapComposite``): a dict
            ``{layer: rule}`` whose key is the node's index in ``layout.layers`` (as in the
            manifest and ``tf-lrp info``; an embedding counts) or its name
            (``layout.layers[i].name``, the Keras layer name for converted models). A Dense
            layer takes a dense rule (``Epsilon(eps)``, ``ZPlus()``, ``"zplus"``, a number),
            which replaces ``head``/``output`` there; a recurrent layer takes
            :class:`Recurrent` (``product``, ``sum_spread``, a fixed ``eps``; a product rule
            alone is short for ``Recurrent(product=...)``), which replaces ``product`` and
            ``sum_spread`` (and the call's ε) for that layer only. Stored as a sorted tuple of
            ``(key, rule)`` pairs, so a RuleSet stays hashable; checked against a layout by
            :meth:`check` (the explainer does it at construction).
        kinds: per-kind overrides (like zennit's ``LayerMapComposite``): ``{node kind: rule}``,
            e.g. ``{"gru": Recurrent(product="half"), "dense": ZPlus()}``; after ``layers``,
            before the defaults. A ``multiply`` node (Keras ``Multiply``) takes a product rule
            (``{"multiply": "proportional"}``, ``SignalTakesAll(gate=0)``); its default is
            :class:`Half` (:data:`MULTIPLY_DEFAULT`), whatever ``product`` says.
        attention: the rule of every attention node (``Attention``, ``AdditiveAttention``,
            ``MultiHeadAttention``): ``"cp_lrp"`` (default; Ali et al. 2022: the attention weights
            are constants, conserving) or ``"attnlrp"`` (Achtibat et al. 2024: relevance also
            through the softmax into query and key; the softmax absorbs a part).

    Example::

        RuleSet(layers={0: Recurrent(product="half"), 2: Recurrent(eps=0.01), "out": ZPlus()})
    """

    product: ProductRule = SignalTakesAll()  # noqa: RUF009 (frozen, immutable)
    sum_spread: SumSpread = "all"
    head: LinearRule = Epsilon()  # noqa: RUF009 (frozen, immutable)
    output: LinearRule | None = None
    layers: tuple[tuple[LayerKey, LayerRule], ...] = ()
    kinds: tuple[tuple[str, LayerRule], ...] = ()
    attention: str = "cp_lrp"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_RULES:
            raise InputError(f"RuleSet(attention=...) must be one of {ATTENTION_RULES}; got {self.attention!r}")
        object.__setattr__(self, "product", as_product_rule(self.product))
        object.__setattr__(self, "head", as_linear_rule(self.head))
        if self.output is not None:
            object.__setattr__(self, "output", as_linear_rule(self.output))
        if self.sum_spread not in ("all", "per_unit"):
            raise InputError(f"sum_spread must be 'all' or 'per_unit'; got {self.sum_spread!r}")
        object.__setattr__(self, "layers", _layer_map(self.layers))
        object.__setattr__(self, "kinds", _kind_map(self.kinds))

    def dense_rule(self, is_last: bool) -> LinearRule:
        """The rule of a dense layer outside a rule-mapped network.

        Args:
            is_last: whether it is the output layer (``output`` applies, when set).

        Returns:
            The linear rule.
        """
        return self.output if is_last and self.output is not None else self.head

    def rule_map(self) -> tuple[tuple[Matcher, LayerRule], ...]:
        """The ordered (matcher, rule) entries: user entries first, then the defaults; first match wins.

        Returns:
            ``((matcher, rule), ...)``.
        """
        entries: list[tuple[Matcher, LayerRule]] = []
        for key, rule in self.layers:
            entries.append((ByIndex(key) if isinstance(key, int) else ByName(key), rule))
        entries += [(ByKind(kind), rule) for kind, rule in self.kinds]
        if self.output is not None:
            entries.append((IsOutput(), self.output))
        entries.append((ByRuleKind("linear"), self.head))
        entries.append((ByRuleKind("recurrent"), Recurrent(self.product, self.sum_spread)))
        entries.append((ByRuleKind("product"), Recurrent(MULTIPLY_DEFAULT, self.sum_spread)))
        entries.append((ByRuleKind("attention"), self.head))  # the attention rule is RuleSet.attention
        return tuple(entries)

    def resolve(self, layout: NetworkLayout) -> dict[int, LayerRule]:
        """The per-layer overrides keyed by layer index, checked against ``layout``.

        Args:
            layout: the network the overrides name layers of.

        Returns:
            ``{layer index: rule}``.

        Raises:
            InputError: for an unknown layer index or name, an ambiguous name, a layer given
                twice (by index and by name), a node without LRP rule (an embedding), or a rule
                of the wrong kind (a dense rule for a recurrent layer or :class:`Recurrent` for
                a Dense layer).
        """
        resolved: dict[int, LayerRule] = {}
        keys: dict[int, LayerKey] = {}
        for key, rule in self.layers:
            index = _layer_index(layout, key)
            if index in resolved:
                raise InputError(
                    f"RuleSet(layers=...) gives layer {index} twice, as {keys[index]!r} and as {key!r}; keep one"
                )
            _check_fits(f"RuleSet(layers=...): layer {key!r} ({_describe_layer(index, layout.layers[index])})",
                        layout.layers[index], rule)  # fmt: skip
            resolved[index], keys[index] = rule, key
        for kind, rule in self.kinds:
            specs = [spec for spec in layout.layers if spec.kind == kind]
            for spec in specs:
                _check_fits(f"RuleSet(kinds=...): kind {kind!r}", spec, rule)
        return resolved

    def check(self, layout: NetworkLayout) -> None:
        """Raise :class:`~tf_lrp.errors.InputError` if :attr:`layers` does not fit ``layout``.

        Args:
            layout: the network to check against.
        """
        self.resolve_nodes(layout)  # also refuses a rule a node cannot take (SignalTakesAll on a 3-way multiply)

    def resolve_nodes(self, layout: NetworkLayout) -> tuple[NodeRules | None, ...]:
        """Each node's rules (None for a node that takes no rule), first matching entry wins.

        Args:
            layout: the network.

        Returns:
            One entry per node of ``layout.layers``.

        Raises:
            InputError: as :meth:`resolve`.
        """
        self.resolve(layout)
        entries = self.rule_map()
        output = len(layout.layers) - 1
        resolved: list[NodeRules | None] = []
        for index, spec in enumerate(layout.layers):
            if spec.rule_kind is None:
                resolved.append(None)
                continue
            rule = next(
                r for matcher, r in entries if matcher.matches(index, spec, index == output) and _fits(spec, r)
            )
            if isinstance(rule, Recurrent):
                fallback = self.product if spec.rule_kind == "recurrent" else MULTIPLY_DEFAULT
                product = fallback if rule.product is None else as_product_rule(rule.product)
                if spec.rule_kind == "product" and isinstance(product, SignalTakesAll) and len(layout.edges[index]) > 2:
                    raise InputError(
                        f"{_describe_layer(index, spec)} multiplies {len(layout.edges[index])} inputs, so "
                        "SignalTakesAll has no single signal; give it 'half', 'proportional' or 'abs' (e.g. "
                        "RuleSet(kinds={'multiply': 'half'})), or nest Multiply layers of two inputs"
                    )
                spread = self.sum_spread if rule.sum_spread is None else rule.sum_spread
                resolved.append(NodeRules(product, spread, self.head, rule.eps, self.output))
            else:
                resolved.append(NodeRules(self.product, self.sum_spread, rule, None, self.output, self.attention))
        return tuple(resolved)


def _fits(spec: Any, rule: LayerRule) -> bool:
    """Whether ``rule`` is of the kind node ``spec`` takes."""
    return isinstance(rule, Recurrent) == (spec.rule_kind in ("recurrent", "product"))


def _check_fits(where: str, spec: Any, rule: LayerRule) -> None:
    if spec.rule_kind is None:
        what = "an embedding" if spec.kind == "embedding" else f"a {spec.kind} node"
        raise InputError(
            f"{where} is {what}: its rule is fixed by its kind (no rule to choose); remove it from the rules"
            if spec.kind != "embedding"
            else f"{where} is an embedding: it has no LRP rule (relevance stops at the embedded vectors); "
            "remove it from layers"
        )
    if spec.rule_kind == "attention":
        raise InputError(
            f"{where} is an attention node: choose its rule with RuleSet(attention='cp_lrp' or 'attnlrp')"
        )
    if spec.rule_kind == "product" and not isinstance(rule, Recurrent):
        raise InputError(
            f"{where} is a product node (multiply) and takes a product rule (a name in {sorted(PRODUCT_RULES)}, "
            f"an instance such as SignalTakesAll(gate=0), or Recurrent(product=...)); got the dense rule {rule!r}"
        )
    if spec.rule_kind == "product" and isinstance(rule, Recurrent):
        return
    if spec.rule_kind == "recurrent" and not isinstance(rule, Recurrent):
        raise InputError(
            f"{where} is recurrent and takes Recurrent(product=..., sum_spread=..., eps=...) or a "
            f"product rule; got the dense rule {rule!r}"
        )
    if spec.rule_kind == "linear" and isinstance(rule, Recurrent):
        raise InputError(
            f"{where} is Dense and takes a dense rule (Epsilon(eps), ZPlus(), 'epsilon', 'zplus' or "
            f"a number); got {rule!r}"
        )


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


