"""Sliding windows over the time axis, shared by the conv1d and pooling1d nodes.

A windowed layer reads, for output step ``t'``, the padded input steps ``t'·s + k·d`` (tap
``k < K``). With time-major tensors each tap is one strided slice of the padded input, so the
forward of all outputs is K slices (stacked: one matmul for a convolution), and the transpose
(relevance, gradient) puts each tap's (T', B, F) message back at its steps (:func:`untap`) and
sums: the exact transpose of the forward, never a per-connection tensor. The padded steps are
cut off at the end (:func:`crop`): whatever reached them is dropped, so a rule that must conserve
spreads its shares over the real steps only (:func:`real_taps` counts them per output).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from .._typing import Tensor


def window_geometry(steps: Any, size: int, stride: int, dilation: int, padding: str) -> tuple[Any, Any, Any]:
    """Keras's sliding-window arithmetic on a time axis of ``steps`` (an int or a traced scalar).

    Args:
        steps: T, the input length.
        size: the window (kernel or pool) size K.
        stride: s.
        dilation: d (1 for pooling).
        padding: ``"valid"``, ``"same"`` (TensorFlow's SAME: ``ceil(T / s)`` outputs, the padding
            split with the smaller half on the left) or ``"causal"`` (``d·(K-1)`` zeros on the left).

    Returns:
        ``(outputs, left, right)``: T' and the zero steps padded on each side; output ``t'``
        reads padded steps ``t'·s + k·d`` for ``k < K``.
    """
    extent = dilation * (size - 1) + 1
    if padding == "valid":
        return (steps - extent) // stride + 1, 0, 0
    if padding == "causal":
        return (steps - 1) // stride + 1, extent - 1, 0
    outputs = (steps + stride - 1) // stride
    total = (outputs - 1) * stride + extent - steps
    total = max(total, 0) if isinstance(total, int) else ops.maximum(total, 0)
    return outputs, total // 2, total - total // 2


class Window:
    """One window geometry on a concrete (possibly traced) input length.

    Attributes:
        steps: T, the input length.
        outputs: T', the output length.
        left: zero steps padded before the input.
        right: zero steps padded after it.
        size: K taps; ``stride`` s; ``dilation`` d.
    """

    def __init__(self, steps: Any, size: int, stride: int, dilation: int, padding: str) -> None:
        self.steps = steps
        self.size, self.stride, self.dilation = size, stride, dilation
        self.outputs, self.left, self.right = window_geometry(steps, size, stride, dilation, padding)

    @classmethod
    def of(cls, x: Tensor, size: int, stride: int, dilation: int, padding: str) -> Window:
        """The window on the (T, B, F) sequence ``x``."""
        return cls(ops.shape(x)[0], size, stride, dilation, padding)

    def pad(self, x: Tensor, value: float = 0.0) -> Tensor:
        """(T, B, F) -> (left + T + right, B, F), padded with ``value``."""
        shape = ops.shape(x)
        before = ops.full((self.left, shape[1], shape[2]), value, dtype=x.dtype)
        after = ops.full((self.right, shape[1], shape[2]), value, dtype=x.dtype)
        return ops.concatenate([before, x, after], axis=0)

    def tap(self, padded: Tensor, k: int) -> Tensor:
        """(T', B, F): the padded steps ``t'·s + k·d`` that tap ``k`` of every output reads."""
        return padded[k * self.dilation :: self.stride][: self.outputs]

    def taps(self, padded: Tensor) -> list[Tensor]:
        """Every tap's (T', B, F) slice, k = 0 .. K-1."""
        return [self.tap(padded, k) for k in range(self.size)]

    def untap(self, message: Tensor, k: int) -> Tensor:
        """The transpose of :meth:`tap`: (T', B, F) -> (left + T + right, B, F), zero off tap ``k``'s steps."""
        shape = ops.shape(message)
        if self.stride > 1:  # interleave s-1 zero steps after each output step
            spread = ops.stack([message] + [ops.zeros_like(message)] * (self.stride - 1), axis=1)
            message = ops.reshape(spread, (-1, shape[1], shape[2]))[: (self.outputs - 1) * self.stride + 1]
        offset = k * self.dilation
        padded_steps = self.left + self.steps + self.right
        after = padded_steps - offset - (self.outputs - 1) * self.stride - 1
        return ops.concatenate(
            [
                ops.zeros((offset, shape[1], shape[2]), dtype=message.dtype),
                message,
                ops.zeros((after, shape[1], shape[2]), dtype=message.dtype),
            ],
            axis=0,
        )

    def crop(self, padded: Tensor) -> Tensor:
        """(left + T + right, B, F) -> (T, B, F): drop the padded steps."""
        return padded[self.left : self.left + self.steps]

    def transpose(self, messages: list[Tensor]) -> Tensor:
        """(T, B, F): each tap's (T', B, F) message put back at its input steps, summed, padding dropped."""
        total = self.untap(messages[0], 0)
        for k in range(1, self.size):
            total = total + self.untap(messages[k], k)
        return self.crop(total)

    def real_taps(self, dtype: str) -> Tensor:
        """(T', 1, 1): how many of each output's K taps land on real (unpadded) input steps."""
        real = self.pad(ops.ones((self.steps, 1, 1), dtype=dtype))
        count = self.tap(real, 0)
        for k in range(1, self.size):
            count = count + self.tap(real, k)
        return count
