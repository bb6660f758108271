"""LRP rules as small objects, the one stabiliser, and the rule maps that assign them to nodes.

Three ideas, three modules (zennit's cut): :mod:`~tf_lrp.rules.numerics` (the stabiliser, the
ε-node with bias share, the sum node), :mod:`~tf_lrp.rules.product` (the product rules for
``gate ⊙ signal``), :mod:`~tf_lrp.rules.linear` (the rules of linear nodes: ε, z⁺), and
:mod:`~tf_lrp.rules.map` (:class:`RuleSet`, the rule map resolved once per network).

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

from .linear import LINEAR_RULES, Epsilon, Gamma, LinearRule, ZPlus, as_linear_rule
from .map import (
    PRESETS,
    ByIndex,
    ByKind,
    ByName,
    ByRuleKind,
    IsOutput,
    LayerKey,
    LayerRule,
    Matcher,
    NodeRules,
    Recurrent,
    RuleSet,
    as_layer_rule,
    as_ruleset,
)
from .numerics import (
    SumSpread,
    check_fixed_eps,
    check_lrp_numbers,
    epsilon_node,
    sign,
    signed_eps,
    stabilize,
    sum_node,
)
from .product import (
    PRODUCT_RULES,
    Absolute,
    Half,
    ProductRule,
    Proportional,
    SignalTakesAll,
    as_product_rule,
    gate_takes_relevance,
    split_product,
)

__all__ = [
    "LINEAR_RULES",
    "PRESETS",
    "PRODUCT_RULES",
    "Absolute",
    "ByIndex",
    "ByKind",
    "ByName",
    "ByRuleKind",
    "Epsilon",
    "Gamma",
    "Half",
    "IsOutput",
    "LayerKey",
    "LayerRule",
    "LinearRule",
    "Matcher",
    "NodeRules",
    "ProductRule",
    "Proportional",
    "Recurrent",
    "RuleSet",
    "SignalTakesAll",
    "SumSpread",
    "ZPlus",
    "as_layer_rule",
    "as_linear_rule",
    "as_product_rule",
    "as_ruleset",
    "check_fixed_eps",
    "check_lrp_numbers",
    "epsilon_node",
    "gate_takes_relevance",
    "sign",
    "signed_eps",
    "split_product",
    "stabilize",
    "sum_node",
]
