"""The node contract: what every node type of the layer graph declares and implements.

A network is a DAG of nodes in topological order (:class:`~tf_lrp.layout.NetworkLayout`: its
``layers`` are the node specs, its ``edges`` say what each reads). Each node type is one module
with one :class:`NodeType` subclass: three pure ``keras.ops`` functions (forward with cache,
relevance step, gradient step) and the facts the rest of the library reads from the node, never
from ``if kind == ...``: the kinds it implements, its cache size per sample (the memory model),
whether it reads the step mask, and which kind of rule it takes (declared on its layout spec as
``rule_kind``).

Tensors on edges: a sequence is time-major (T, B, F) (the scans' order; the network transposes
once at its inputs and outputs), a vector is (B, F). A step mask is (T, B, 1) bool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from .._typing import Tensor
from ..rules import NodeRules


class NodeContext(NamedTuple):
    """What a node's backward step reads besides its cache: traced numbers and static rules.

    Attributes:
        eps: 0-d stabiliser (the node's fixed ε where its rule fixes one).
        bias_factor: 0-d share factor of the redistributed bias and stabiliser.
        rules: the node's resolved rules (None for a node that takes no rule).
        is_output: whether the node is the network's output (its pre-activation is the score).
    """

    eps: Tensor
    bias_factor: Tensor
    rules: NodeRules | None
    is_output: bool


class NodeType(ABC):
    """One node type: forward with cache, relevance step, gradient step, and its facts.

    Subclasses set :attr:`kinds` and implement the abstract methods; everything is static
    structure (``spec``) plus tensors, so a whole network walk compiles into one function.
    """

    #: the manifest kinds this node type implements (its layout spec's ``kind``)
    kinds: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`forward` reads the step mask of its input
    takes_mask: ClassVar[bool] = False
    #: whether :meth:`forward` reads the step masks of all its inputs (a tuple, one per input edge)
    takes_masks: ClassVar[bool] = False
    #: whether its relevance step conserves at bias_factor = 1 (the invariants harness checks it)
    conserves: ClassVar[bool] = True
    #: whether its output depends on steps masked in every sample (it drops the mask and reads them
    #: as data, e.g. a convolution): ``explain_dataset`` then never crops a chunk's padding
    reads_padding: ClassVar[bool] = False

    def params(self, spec: Any, arrays: Sequence[Tensor]) -> Any:
        """Group this node's weight arrays (Keras ``get_weights()`` order) for the step functions."""
        return tuple(arrays)

    def loop_width(self, spec: Any) -> int:
        """H of the (B, H) states its time loops carry from step to step; 0 for a node without one.

        The compiled call fuses loop steps only where ``B·H`` is large enough to pay
        (:class:`tf_lrp.backend.Compiled`, ``jit_compile="auto"``).
        """
        return 0

    @abstractmethod
    def cache_floats(self, spec: Any, steps: int) -> int:
        """Floats per sample the forward keeps for the backward passes, for ``steps`` time steps."""

    def merge_masks(self, spec: Any, masks: Sequence[Tensor | None]) -> Tensor | None:
        """The (T, B, 1) step mask a node of several inputs passes on (default: the first input's).

        ``masks`` holds each input's mask (None: unmasked); :meth:`output_mask` then reads the
        result. Keras's elementwise merges override this.
        """
        return masks[0]

    def output_mask(self, spec: Any, mask: Tensor | None) -> Tensor | None:
        """The (T', B, 1) step mask of a sequence output, from the first input's (default: the same).

        A node that changes the time axis (strides, valid padding, repeats) overrides this, or
        returns None where Keras drops the mask.
        """
        return mask

    @abstractmethod
    def forward(self, spec: Any, params: Any, inputs: Sequence[Tensor], mask: Tensor | None) -> tuple[Tensor, Any]:
        """Run the node.

        Args:
            spec: the layer spec (static).
            params: from :meth:`params`.
            inputs: one tensor per input edge (sequences time-major).
            mask: (T, B, 1) bool step mask of the first input, or None.

        Returns:
            The output tensor and the cache the backward steps read.
        """

    @abstractmethod
    def relevance(
        self, spec: Any, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """LRP through the node.

        Args:
            spec: the layer spec.
            params: from :meth:`params`.
            cache: from :meth:`forward`.
            relevance: relevance at the node's output (its shape).
            ctx: ε, bias_factor, the node's rules.

        Returns:
            The relevance at each input edge (None where none flows, e.g. token ids) and the
            (B,) relevance that reached the node's zero initial states (None if it has none).
        """

    @abstractmethod
    def gradient(self, spec: Any, params: Any, cache: Any, grad: Tensor, ctx: NodeContext) -> tuple[Tensor | None, ...]:
        """Backpropagate the gradient at the node's output to each input edge (None: not differentiable)."""
