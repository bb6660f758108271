"""Folding ``BatchNormalization`` (inference) into a neighbouring linear node (a canonizer).

At inference a batch normalisation is the elementwise affine map ``y = s ⊙ x + c`` with
``s = γ / sqrt(moving_variance + epsilon)`` and ``c = β - moving_mean · s`` (per feature). Where
it sits next to a linear node it is merged into that node's kernel and bias, as zennit's
canonizers do:

* **after** a ``Dense`` / ``Conv1D`` with a linear activation whose output only the
  normalisation reads (the preferred fold, zennit's ``MergeBatchNorm``): per output channel j,
  ``W'[..., j] = W[..., j] · s_j`` and ``b'_j = b_j · s_j + c_j``;
* else **before** a ``Dense`` that is the only reader of the normalisation's output:
  ``W' = diag(s) · W`` and ``b' = b + c · W`` (a ``Conv1D`` is not folded from this side: its
  zero padding is applied after the normalisation, which a fold would move before it).

A ``ReLU`` right after a normalisation folded after its layer moves onto that layer (``Dense(relu)``;
relevance passes a relu unchanged, so LRP is the same). Otherwise the normalisation stays a
``batch_normalization`` node. The folded network computes the same function (up to rounding); LRP
then applies the linear node's rule to the folded map: one ε-rule over ``x → W'x + b'`` instead of
two ε-rules in a row. See ``docs/keras.md``.

Everything here works on the converter's flat graph: the specs, their input edges (node
indices, negative for network inputs), the weights in spec order, and the output node's index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..layout import ActivationSpec, ConvSpec, DenseSpec, Edge, LayerSpec, NormalizationSpec, layer_array_specs


class FlatGraph(NamedTuple):
    """The converter's graph: per node its spec and input edges; the weights in node order; the output node."""

    specs: tuple[LayerSpec, ...]
    edges: tuple[tuple[Edge, ...], ...]
    weights: tuple[np.ndarray, ...]
    output: int


def affine(spec: NormalizationSpec, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(s, c)`` (F,) float64 each, of a batch normalisation's arrays (Keras order: [γ], [β], mean, variance)."""
    rest = [np.asarray(a, dtype=np.float64) for a in arrays]
    gamma = rest.pop(0) if spec.scale else np.ones(spec.features)
    beta = rest.pop(0) if spec.center else np.zeros(spec.features)
    mean, variance = rest
    scale = gamma / np.sqrt(variance + spec.epsilon)
    return scale, beta - mean * scale


def _owned(graph: FlatGraph) -> list[list[int]]:
    """Per node, the positions of its arrays in ``graph.weights``."""
    owned: list[list[int]] = [[] for _ in graph.specs]
    for position, array in enumerate(layer_array_specs(graph.specs)):
        owned[array.layer].append(position)
    return owned


def _readers(graph: FlatGraph, node: int) -> list[int]:
    """The nodes that read ``node``'s output (a node reading it twice is listed twice)."""
    return [k for k, reads in enumerate(graph.edges) for edge in reads if edge == node]


def fold_after(kernel: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, shift: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:  # fmt: skip
    """``BN(x W + b)`` as one map: kernel (..., F) scaled per output channel, bias ``b·s + c`` (F,)."""
    return kernel * scale, shift if bias is None else bias * scale + shift


def fold_before(kernel: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, shift: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:  # fmt: skip
    """``BN(x) W + b`` as one map: kernel (D, U) scaled per input row, bias ``b + c W`` (U,)."""
    moved = shift @ kernel
    return kernel * scale[:, None], moved if bias is None else bias + moved


def _target(graph: FlatGraph, node: int) -> tuple[int, bool] | None:
    """The linear node a batch normalisation folds into and whether it comes after it; None: no fold."""
    spec = graph.specs[node]
    if not isinstance(spec, NormalizationSpec) or spec.kind != "batch_normalization" or node == graph.output:
        return None
    (source,) = graph.edges[node]
    before = graph.specs[source] if source >= 0 else None
    linear = isinstance(before, (DenseSpec, ConvSpec)) and before.activation == "linear"
    if linear and _readers(graph, source) == [node]:
        return source, False
    readers = _readers(graph, node)
    if len(readers) == 1 and isinstance(graph.specs[readers[0]], DenseSpec):
        return readers[0], True
    return None


def _remove(graph: FlatGraph, node: int, specs: list[LayerSpec], weights: list[np.ndarray]) -> FlatGraph:
    """``graph`` with new ``specs`` / ``weights`` and without ``node`` (its readers read its input)."""
    (source,) = graph.edges[node]

    def moved(edge: Edge) -> Edge:
        if edge == node:
            edge = source
        return edge - 1 if edge > node else edge

    edges = [tuple(moved(e) for e in reads) for k, reads in enumerate(graph.edges) if k != node]
    del specs[node]
    return FlatGraph(tuple(specs), tuple(edges), tuple(weights), moved(graph.output))


def fold_one(graph: FlatGraph, node: int) -> FlatGraph | None:
    """``graph`` with the batch normalisation ``node`` folded into its neighbour, or None if it does not fold."""
    found = _target(graph, node)
    if found is None:
        return None
    target, norm_first = found
    owned = _owned(graph)
    linear, norm = graph.specs[target], graph.specs[node]
    if not isinstance(linear, (DenseSpec, ConvSpec)) or not isinstance(norm, NormalizationSpec):
        return None  # unreachable: _target checked both
    scale, shift = affine(norm, [graph.weights[p] for p in owned[node]])
    kernel = graph.weights[owned[target][0]]
    bias = graph.weights[owned[target][1]] if linear.use_bias else None
    fold = fold_before if norm_first else fold_after
    wide = np.float64  # fold in float64, store in the kernel's dtype
    new_kernel, new_bias = fold(kernel.astype(wide), None if bias is None else bias.astype(wide), scale, shift)
    new_kernel, new_bias = new_kernel.astype(kernel.dtype), new_bias.astype(kernel.dtype)
    weights: list[np.ndarray] = []
    for k, positions in enumerate(owned):
        if k == target:
            weights += [new_kernel, new_bias]
        elif k != node:
            weights += [graph.weights[p] for p in positions]
    specs = list(graph.specs)
    specs[target] = dataclasses.replace(linear, use_bias=True)
    return _remove(graph, node, specs, weights)


def carry_relu(graph: FlatGraph, node: int) -> FlatGraph:
    """``graph`` with a ``relu`` activation node that alone reads the linear ``node`` moved onto it.

    ``Dense`` / ``Conv1D`` (linear) -> ``relu`` is ``Dense`` / ``Conv1D`` (relu): the same forward,
    gradient and LRP (relevance passes a relu unchanged). Only for a node a batch normalisation
    was folded into (``Dense -> BatchNormalization -> ReLU``), so other manifests stay as they were.
    """
    linear = graph.specs[node]
    readers = _readers(graph, node)
    if not isinstance(linear, (DenseSpec, ConvSpec)) or linear.activation != "linear" or len(readers) != 1:
        return graph
    after = graph.specs[readers[0]]
    if not isinstance(after, ActivationSpec) or after.activation != "relu":
        return graph
    specs = list(graph.specs)
    specs[node] = dataclasses.replace(linear, activation="relu")
    return _remove(graph, readers[0], specs, list(graph.weights))  # an activation node has no weights


def fold_batch_norms(graph: FlatGraph) -> FlatGraph:
    """Fold every batch normalisation that sits next to a linear node it may merge into (see the module).

    A ``relu`` that alone reads a layer a normalisation was folded into (after it) moves onto that
    layer (:func:`carry_relu`).
    """
    node = 0
    while node < len(graph.specs):
        found = _target(graph, node)
        folded = fold_one(graph, node)
        if folded is None or found is None:
            node += 1
            continue
        target, norm_first = found
        graph = folded if norm_first else carry_relu(folded, target)
    return graph


__all__ = ["FlatGraph", "affine", "carry_relu", "fold_after", "fold_batch_norms", "fold_before", "fold_one"]
