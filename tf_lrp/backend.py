"""The only module that imports a framework: compile and dispatch.

The numeric core is written in ``keras.ops``; this module compiles a core function for the
active Keras backend:

* TensorFlow: ``tf.function`` with an input signature whose batch and time dimensions are
  ``None``, so a new batch size or sequence length never retraces; ``jit_compile=True`` asks
  for XLA;
* JAX: ``jax.jit``. JAX specialises on shapes, so each new (batch, time) shape compiles
  once; :func:`bucket` rounds a size up to one of a few buckets so that callers who pad can
  bound the number of compilations. A function whose signature holds ``float64`` runs (traces
  and calls) inside ``jax.enable_x64(True)``, a *scoped* switch: JAX's global default
  (``jax_enable_x64`` off, float32) is left untouched, so other JAX code in the process is
  not affected;
* any other backend (PyTorch, NumPy): the function runs eagerly.

:class:`Compiled` counts how often the function was traced, so tests can prove the compiled
path is the one that ran and that it did not retrace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
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


def _flatten_specs(specs: Any) -> list[TensorSpec]:
    if isinstance(specs, TensorSpec):
        return [specs]
    if isinstance(specs, (list, tuple)):
        return [leaf for item in specs for leaf in _flatten_specs(item)]
    return []


def needs_x64(signature: Any) -> bool:
    """Whether any argument of ``signature`` is ``float64`` (JAX then needs 64-bit mode)."""
    return any(str(spec.dtype) == "float64" for spec in _flatten_specs(signature))


@contextlib.contextmanager
def _scope(x64: bool) -> Iterator[None]:
    """JAX: 64-bit mode for the duration of the block when ``x64``; elsewhere a no-op."""
    if x64 and name() == "jax":
        import jax
        from keras.src.backend.common import dtypes as keras_dtypes

        # Keras's JAX backend maps float64 to float32 in its type promotion (to mirror JAX's
        # default), so keras.ops.tanh or divide of float64 tensors return float32 even in
        # 64-bit mode; lift that one entry of its table for the duration of the block.
        table = keras_dtypes.BIT64_TO_BIT32_DTYPE
        saved = table.pop("float64", None)
        try:
            with jax.enable_x64(True):
                yield
        finally:
            if saved is not None:
                table["float64"] = saved
    else:
        yield


def bucket(size: int, minimum: int = 1) -> int:
    """The smallest bucket ``>= max(size, minimum)``; buckets are 1, 2, then 2^k and 3·2^(k-1).

    Padding a batch to its bucket bounds the number of shapes a shape-specialising compiler
    (``jax.jit``, XLA) sees to about ``2·log2(largest size)``, at a cost of less than half
    more work per call.

    Example:
        >>> [bucket(n) for n in (1, 3, 5, 7, 9, 13, 100, 256, 257)]
        [1, 3, 6, 8, 12, 16, 128, 256, 384]
    """
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    size = max(int(size), minimum)
    power = 1 << (size - 1).bit_length()  # the next power of two
    return power * 3 // 4 if power >= 4 and size <= power * 3 // 4 else power


def _pad_rows(array: Any, rows: int) -> np.ndarray:
    """Append ``rows`` copies of the last row (a valid sample: valid mask, ids and target)."""
    array = np.asarray(array)
    return np.concatenate([array, np.repeat(array[-1:], rows, axis=0)], axis=0)


class Compiled:
    """A core function compiled for the active backend, with a trace counter.

    Args:
        function: the pure ``keras.ops`` function; positional tensor arguments only.
        signature: a list of :class:`TensorSpec` (or nested lists of them), one per argument.
        jit_compile: TensorFlow only: compile with XLA.
        batch_args: positions of the batch-major arguments (same first dimension B). When
            given, a shape-specialising call (JAX, or TensorFlow with XLA) pads them to
            :func:`bucket` (B) rows by repeating the last row, and cuts every output back to
            its first B rows; only for functions whose samples are independent and whose
            outputs are all batch-major. The trace count then stays within the number of
            buckets instead of growing with every new batch size.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        signature: list[Any],
        jit_compile: bool = False,
        batch_args: Sequence[int] = (),
    ) -> None:
        self.traces = 0
        self.backend = name()
        self.x64 = needs_x64(signature)
        specialises = self.backend == "jax" or (self.backend == "tensorflow" and jit_compile)
        self._batched = frozenset(batch_args) if specialises else frozenset()

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
        rows = None
        if self._batched:
            rows = len(args[min(self._batched)])
            extra = bucket(rows) - rows
            if extra:
                args = tuple(_pad_rows(a, extra) if i in self._batched else a for i, a in enumerate(args))
        with _scope(self.x64):
            result = self._call(*args)
            result = keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), result)
        if rows is not None:
            result = keras.tree.map_structure(lambda t: t[:rows] if t.ndim else t, result)
        return result


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a :class:`TensorSpec` (for structure mapping)."""
    return isinstance(value, TensorSpec)

