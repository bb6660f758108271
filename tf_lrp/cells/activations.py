"""Activations the cells compute, each with its derivative as a function of its output."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from keras import ops

from .._typing import Tensor


def _linear(x: Tensor) -> Tensor:
    return x


def _linear_derivative(y: Tensor) -> Tensor:
    return ops.ones_like(y)


def _hard_sigmoid_derivative(y: Tensor) -> Tensor:
    inside = ops.logical_and(y > 0, y < 1)
    return ops.where(inside, ops.ones_like(y) / 6, ops.zeros_like(y))


#: name -> (activation, derivative written as a function of the activation's *output*).
ACTIVATIONS: Mapping[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = MappingProxyType(
    {
        "tanh": (ops.tanh, lambda y: 1 - y * y),
        "sigmoid": (ops.sigmoid, lambda y: y * (1 - y)),
        "hard_sigmoid": (ops.hard_sigmoid, _hard_sigmoid_derivative),
        "relu": (ops.relu, lambda y: ops.cast(y > 0, y.dtype)),
        "linear": (_linear, _linear_derivative),
    }
)
