"""The conv1d node: Keras ``Conv1D`` (channels_last) on a sequence, (T, B, C_in) -> (T', B, C_out).

Forward: ``z[t'] = Σ_k x_pad[t'·s + k·d] @ W_k + b``, all outputs at once: the K taps of the
padded input (:class:`~tf_lrp.nodes.windows.Window`) side by side, one matmul with the kernel
(K·C_in, C_out). Grouped kernels (``groups`` G) are expanded once to block-diagonal ones (an
input channel meets only the filters of its group). Padding (``same``, ``causal``) is zeros.

LRP: the node's linear rule over each output's receptive field, as for a dense layer, computed
for all outputs by the transposed convolution (each tap's message put back at its steps):

* **ε** (bias share): ``R_i = Σ_{t', j} (x_i w_ij + bias_factor·(b_j + ε_j)/n_j) · R_j / (z_j + ε_j)``,
  ``ε_j = ε·sign(z_j)``, the sum over the outputs ``(t', j)`` whose receptive field holds the real
  input ``i``; the share of the bias and stabiliser of output ``(t', j)`` is spread evenly over
  its ``n_j = (C_in / G) · m(t')`` real inputs (``m(t')``: its taps on unpadded steps), so zero
  padding receives nothing and bias_factor = 1 conserves exactly.
* **z⁺**: ``R_i = Σ (x_i w_ij)⁺ / (Σ_i (x_i w_ij)⁺ + stabilizer) · R_j`` (``(xw)⁺ = x⁺w⁺ + x⁻w⁻``).

A relu / linear activation passes relevance unchanged to the pre-activation. Gradient: the
activation's derivative, then the transposed convolution. Keras's ``Conv1D`` does not support
masking: it drops the mask (the output has no mask; the steps it reads are taken as data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
from keras import ops

from .._typing import Tensor
from ..cells import ACTIVATIONS
from ..layout import ConvSpec
from ..rules import Epsilon, Gamma, LinearRule, signed_eps
from .base import NodeContext, NodeType
from .windows import Window


class ConvParams(NamedTuple):
    """A conv1d layer's weights, grouped kernels expanded."""

    kernel: Tensor  # (K·C_in, C_out): tap k's block-diagonal (C_in, C_out) kernel at rows k·C_in ...
    bias: Tensor  # (C_out,); zeros when use_bias=False
    blocks: Tensor  # (C_in, C_out): 1 where input channel and filter share a group


class ConvCache(NamedTuple):
    """What the backward steps read."""

    inputs: Tensor  # (T, B, C_in)
    pre_activation: Tensor  # (T', B, C_out)


def group_blocks(spec: ConvSpec) -> np.ndarray:
    """(C_in, C_out) 0/1: input channel i feeds filter j iff they are in the same group."""
    rows = np.arange(spec.input_size) // (spec.input_size // spec.groups)
    cols = np.arange(spec.filters) // (spec.filters // spec.groups)
    return (rows[:, None] == cols[None, :]).astype("float64")


def _window(spec: ConvSpec, x: Tensor) -> Window:
    return Window.of(x, spec.kernel_size, spec.strides, spec.dilation_rate, spec.padding)


def _split(spec: ConvSpec, joined: Tensor) -> list[Tensor]:
    """(T', B, K·C_in) -> K tensors (T', B, C_in)."""
    c = spec.input_size
    return [joined[..., k * c : (k + 1) * c] for k in range(spec.kernel_size)]


def conv_relevance(
    rule: LinearRule, spec: ConvSpec, params: ConvParams, cache: ConvCache, relevance: Tensor, eps: Tensor,
    bias_factor: Tensor,
) -> Tensor:  # fmt: skip
    """(T, B, C_in) relevance of the inputs by ``rule`` (ε with bias share, or z⁺); see the module."""
    x, z = cache.inputs, cache.pre_activation
    window = _window(spec, x)
    taps = window.taps(window.pad(x))
    kernel, bias = params.kernel, params.bias
    if isinstance(rule, Gamma):  # the ε-rule on w + γw⁺, b + γb⁺ (its own pre-activation)
        kernel, bias = rule.modified(kernel, bias)
        z = ops.matmul(ops.concatenate(taps, axis=-1), kernel) + bias
        rule = Epsilon(rule.eps)
    kernel_t = ops.transpose(kernel)  # (C_out, K·C_in)
    if isinstance(rule, Epsilon):
        stabiliser = eps if rule.eps is None else ops.convert_to_tensor(rule.eps, dtype=z.dtype)
        absorbed = signed_eps(z, stabiliser)
        q = relevance / (z + absorbed)
        inputs = window.real_taps(z.dtype) * (spec.input_size // spec.groups)  # (T', 1, 1) real inputs per output
        share = ops.matmul(bias_factor * (absorbed + bias) * q / inputs, ops.transpose(params.blocks))
        back = _split(spec, ops.matmul(q, kernel_t))
        return window.transpose([tap * message + share for tap, message in zip(taps, back, strict=True)])
    zero = ops.zeros_like(params.kernel)
    w_pos, w_neg = ops.maximum(params.kernel, zero), ops.minimum(params.kernel, zero)
    joined = ops.concatenate(taps, axis=-1)
    a_pos, a_neg = ops.maximum(joined, ops.zeros_like(joined)), ops.minimum(joined, ops.zeros_like(joined))
    positive = ops.matmul(a_pos, w_pos) + ops.matmul(a_neg, w_neg)
    q = relevance / (positive + ops.convert_to_tensor(rule.stabilizer, dtype=z.dtype))
    messages = a_pos * ops.matmul(q, ops.transpose(w_pos)) + a_neg * ops.matmul(q, ops.transpose(w_neg))
    return window.transpose(_split(spec, messages))


class ConvNode(NodeType):
    """Keras ``Conv1D``: a linear node over each output's receptive field, relu or linear activation."""

    kinds: ClassVar[tuple[str, ...]] = ("conv1d",)
    reads_padding: ClassVar[bool] = True

    def params(self, spec: ConvSpec, arrays: Sequence[Tensor]) -> ConvParams:
        """The kernel (K, C_in/G, C_out) expanded to block-diagonal (K·C_in, C_out); a zero bias without use_bias."""
        kernel = arrays[0]
        blocks = ops.convert_to_tensor(group_blocks(spec), dtype=kernel.dtype)
        full = ops.tile(kernel, (1, spec.groups, 1)) * ops.expand_dims(blocks, 0)  # (K, C_in, C_out)
        bias = arrays[1] if spec.use_bias else ops.zeros((spec.filters,), dtype=kernel.dtype)
        return ConvParams(ops.reshape(full, (spec.kernel_size * spec.input_size, spec.filters)), bias, blocks)

    def cache_floats(self, spec: ConvSpec, steps: int) -> int:
        """Inputs and pre-activation (at most T output steps)."""
        return steps * (spec.input_size + spec.filters)

    def output_mask(self, spec: ConvSpec, mask: Tensor | None) -> Tensor | None:
        """None: Keras's Conv1D drops the mask."""
        return None

    def forward(
        self, spec: ConvSpec, params: ConvParams, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, ConvCache]:
        """``activation(conv(x) + bias)`` with Keras's padding, strides and dilation."""
        x = inputs[0]
        window = _window(spec, x)
        joined = ops.concatenate(window.taps(window.pad(x)), axis=-1)  # (T', B, K·C_in)
        pre = ops.matmul(joined, params.kernel) + params.bias
        return ACTIVATIONS[spec.activation][0](pre), ConvCache(x, pre)

    def relevance(
        self, spec: ConvSpec, params: ConvParams, cache: ConvCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The node's linear rule over each receptive field; see the module."""
        if ctx.rules is None:
            raise TypeError("a conv1d node needs resolved rules")  # the network always resolves them
        return (conv_relevance(ctx.rules.linear, spec, params, cache, relevance, ctx.eps, ctx.bias_factor),), None

    def gradient(
        self, spec: ConvSpec, params: ConvParams, cache: ConvCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Through the activation's derivative and the transposed convolution."""
        activation, derivative = ACTIVATIONS[spec.activation]
        grad = grad * derivative(activation(cache.pre_activation))
        window = _window(spec, cache.inputs)
        return (window.transpose(_split(spec, ops.matmul(grad, ops.transpose(params.kernel)))),)
