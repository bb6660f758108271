"""Select one time step of a sequence: (T, B, F) -> (B, F).

The node reads step ``t`` of its input (``t < 0`` counts from the end, like Python indexing):
Keras ``x[:, -1, :]`` / ``x[:, 0]`` and PyTorch ``out[:, -1]``. It has no weights: the relevance
(and the gradient) of the output goes to step ``t`` only, every other step gets exactly zero;
conserving. A masked step is selected like any other (the recurrent layer before it holds its
carried state there, so the relevance flows back through its carry to the last valid step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import SelectStepSpec
from .base import NodeContext, NodeType


def _scatter(spec: SelectStepSpec, inputs: Tensor, signal: Tensor) -> Tensor:
    """(T, B, F) zeros with ``signal`` (B, F) at step ``spec.step``."""
    steps = ops.shape(inputs)[0]
    index = spec.step if spec.step >= 0 else steps + spec.step
    chosen = ops.cast(ops.equal(ops.arange(steps), index), signal.dtype)  # (T,)
    return ops.reshape(chosen, (-1, 1, 1)) * ops.expand_dims(signal, 0)


class SelectStepNode(NodeType):
    """One time step of a sequence; relevance and gradient go to that step only."""

    kinds: ClassVar[tuple[str, ...]] = ("select_step",)

    def cache_floats(self, spec: SelectStepSpec, steps: int) -> int:
        """Nothing of its own: the input is the producer's."""
        return 0

    def forward(
        self, spec: SelectStepSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Step ``spec.step`` of the (T, B, F) input: (B, F)."""
        x = inputs[0]
        return x[spec.step], x

    def relevance(
        self, spec: SelectStepSpec, params: Any, cache: Tensor, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The output's relevance at the selected step, zero at every other step."""
        return (_scatter(spec, cache, relevance),), None

    def gradient(
        self, spec: SelectStepSpec, params: Any, cache: Tensor, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The output's gradient at the selected step, zero elsewhere."""
        return (_scatter(spec, cache, grad),)
