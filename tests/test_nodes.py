"""The node contract, checked for every registered node type (``tf_lrp.nodes.NODES``).

Behaviour (forward = Keras, relevance, gradient, masks, conservation) is the invariants harness's
(tests/test_invariants.py); this file checks the declarations every node type must make.
"""

from __future__ import annotations

import inspect

import pytest

from tf_lrp.layout import NODE_KINDS, load_schema
from tf_lrp.nodes import NODES, NodeType

KINDS = sorted(NODES)


def test_every_manifest_kind_has_exactly_one_node_type() -> None:
    schema_kinds = set(load_schema()["properties"]["layers"]["items"]["properties"]["kind"]["enum"])
    assert set(NODES) == set(NODE_KINDS)
    assert set(NODES) == schema_kinds  # the forecaster too is a node (seq2seq)
    for kind in KINDS:
        assert kind in NODES[kind].kinds


@pytest.mark.parametrize("kind", KINDS)
def test_node_types_implement_the_contract(kind: str) -> None:
    node = NODES[kind]
    assert isinstance(node, NodeType)
    assert not inspect.isabstract(type(node))
    for name in ("params", "cache_floats", "forward", "relevance", "gradient"):
        assert callable(getattr(node, name)), name
    assert isinstance(node.takes_mask, bool)
    assert isinstance(node.conserves, bool)


def test_a_node_type_without_its_steps_cannot_be_made() -> None:
    class Incomplete(NodeType):
        kinds = ("incomplete",)

        def cache_floats(self, spec, steps):
            return 0

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
