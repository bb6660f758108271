"""Node types of the layer graph and their registry.

:data:`NODES` maps every manifest kind to the node type that implements it; the network walk,
the memory model and the invariants harness read it. Adding a layer type is one module here (a
:class:`~tf_lrp.nodes.base.NodeType`), its layout spec and schema entry, and one entry below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .activation import ActivationNode, PReLUNode
from .attention import AttentionNode
from .base import NodeContext, NodeType
from .concatenate import ConcatenateNode
from .conv import ConvNode
from .dense import DenseNode
from .embedding import EmbeddingNode
from .flatten import FlattenNode
from .forecaster import ForecasterNode
from .merge import MergeNode, MultiplyNode
from .multi_head_attention import MultiHeadAttentionNode
from .normalization import NormalizationNode
from .pooling import PoolingNode
from .pooling1d import Pooling1DNode
from .recurrent import RecurrentNode
from .repeat_vector import RepeatVectorNode
from .select_step import SelectStepNode
from .slice import SliceNode
from .softmax import SoftmaxNode
from .weighted_sum import WeightedSumNode

_TYPES: tuple[NodeType, ...] = (
    EmbeddingNode(),
    RecurrentNode(),
    DenseNode(),
    ConcatenateNode(),
    PoolingNode(),
    SliceNode(),
    ForecasterNode(),
    ConvNode(),
    Pooling1DNode(),
    RepeatVectorNode(),
    ActivationNode(),
    PReLUNode(),
    NormalizationNode(),
    MergeNode(),
    MultiplyNode(),
    AttentionNode(),
    MultiHeadAttentionNode(),
    SelectStepNode(),
    FlattenNode(),
    SoftmaxNode(),
    WeightedSumNode(),
)

#: manifest kind -> node type.
NODES: Mapping[str, NodeType] = MappingProxyType({kind: node for node in _TYPES for kind in node.kinds})

__all__ = ["NODES", "NodeContext", "NodeType"]
