"""The only module that imports a framework: compile and dispatch.

The numeric core is written in ``keras.ops``; this module compiles a core function for the
active Keras backend:

* TensorFlow: ``tf.function`` with an input signature whose batch and time dimensions are
  ``None``, so a new batch size or sequence length never retraces; ``jit_compile=True`` asks
  for XLA;
* JAX: ``jax.jit`` (JAX specialises on shapes; the explainer keeps the set of shapes small);
* any other backend (PyTorch, NumPy): the function runs eagerly.

:class:`Compiled` counts how often the function was traced, so tests can prove the compiled
path is the one that ran and that it did not retrace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def name() -> str:
    """The active Keras backend: ``"tensorflow"``, ``"jax"``, ``"torch"`` or ``"numpy"``."""
    return str(keras.backend.backend())


class TensorSpec:
    """Shape (``None`` for a dimension that may vary) and dtype of one argument."""

    def __init__(self, shape: tuple[int | None, ...], dtype: str) -> None:
        self.shape = shape
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"TensorSpec({self.shape}, {self.dtype})"


def _tf_signature(specs: Any) -> Any:
    import tensorflow as tf

    return tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape, s.dtype), specs, expand_composites=False)


class Compiled:
    """A core function compiled for the active backend, with a trace counter.

    Args:
        function: the pure ``keras.ops`` function; positional tensor arguments only.
        signature: a list of :class:`TensorSpec` (or nested lists of them), one per argument.
        jit_compile: TensorFlow only: compile with XLA.
    """

    def __init__(self, function: Callable[..., Any], signature: list[Any], jit_compile: bool = False) -> None:
        self.traces = 0
        self.backend = name()

        def traced(*args: Any) -> Any:
            self.traces += 1  # runs once per trace, never per call
            return function(*args)

        if self.backend == "tensorflow":
            import tensorflow as tf

            self._call: Callable[..., Any] = tf.function(
                traced,
                input_signature=_tf_signature(signature),
                jit_compile=jit_compile,
                reduce_retracing=True,
            )
        elif self.backend == "jax":
            import jax

            self._call = jax.jit(traced)
        else:
            self._call = traced

    def __call__(self, *args: Any) -> Any:
        """Run on numpy arguments; return the outputs as numpy arrays (same structure)."""
        result = self._call(*args)
        return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), result)


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a :class:`TensorSpec` (for structure mapping)."""
    return isinstance(value, TensorSpec)
