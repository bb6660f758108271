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

Float32 matrix products are computed in full float32 on every backend (:func:`float32_matmuls`):
GPUs of the NVIDIA Ampere generation and newer otherwise round their inputs to TensorFloat-32
(10 mantissa bits) by default under TensorFlow and JAX, which would move relevances in the
third or fourth significant digit.

:class:`Compiled` counts how often the function was traced, so tests can prove the compiled
path is the one that ran and that it did not retrace.

:func:`accelerator_memory` reads the memory of the accelerator (GPU, TPU) the active backend
computes on (JAX ``memory_stats()``, TensorFlow ``get_memory_info``, PyTorch
``cuda.mem_get_info``), for ``batch_size="auto"`` and default memory budgets.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ._fusion import compiling_steps_with


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


class SharedSwitch:
    """A process-wide setting changed while any tf_lrp call runs, on any thread.

    ``change()`` applies the setting and returns the function that undoes it. The first of
    overlapping blocks (threads) applies it, the last one to leave undoes it, so a call on one
    thread never sees the setting undone by another call's exit.

    Args:
        change: applies the setting; returns its undo.
    """

    def __init__(self, change: Callable[[], Callable[[], None]]) -> None:
        self._change = change
        self._lock = threading.Lock()
        self._depth = 0
        self._undo: Callable[[], None] | None = None

    @property
    def active(self) -> bool:
        """Whether some block holds the setting now."""
        return self._depth > 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        """Hold the setting for the block."""
        with self._lock:
            if self._depth == 0:
                self._undo = self._change()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._undo is not None:
                    undo, self._undo = self._undo, None
                    undo()


def _keep_float64() -> Callable[[], None]:
    """Lift Keras's float64-to-float32 promotion rule (JAX, PyTorch backends); return the undo."""
    from keras.src.backend.common import dtypes as keras_dtypes

    table = keras_dtypes.BIT64_TO_BIT32_DTYPE
    saved = table.pop("float64", None)

    def undo() -> None:
        if saved is not None:
            table["float64"] = saved

    return undo


def _no_tensor_float_32() -> Callable[[], None]:
    """TensorFlow: switch TensorFloat-32 off (if on); PyTorch: ``"highest"``; return the undo."""
    if name() == "tensorflow":
        import tensorflow as tf

        experimental = tf.config.experimental
        if not experimental.tensor_float_32_execution_enabled():
            return lambda: None
        experimental.enable_tensor_float_32_execution(False)
        return lambda: experimental.enable_tensor_float_32_execution(True)
    import torch

    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    return lambda: torch.set_float32_matmul_precision(previous)


#: Keras's float64 promotion rule lifted (see :func:`_scope`).
KEEP_FLOAT64 = SharedSwitch(_keep_float64)
#: TensorFloat-32 off (see :func:`float32_matmuls`).
NO_TENSOR_FLOAT_32 = SharedSwitch(_no_tensor_float_32)


@contextlib.contextmanager
def _scope(x64: bool) -> Iterator[None]:
    """float64 for the duration of the block when ``x64`` (JAX, PyTorch); elsewhere a no-op.

    JAX: 64-bit mode (``jax.enable_x64``, a thread-local context). JAX and PyTorch: Keras maps
    float64 to float32 in its type promotion on these backends (to mirror JAX's default), so
    ``keras.ops.tanh``, ``divide`` or ``matmul`` of float64 tensors return float32; that one
    entry of its (process-wide) table is lifted while any such block runs
    (:data:`KEEP_FLOAT64`, safe across threads).
    """
    backend = name()
    if not x64 or backend not in ("jax", "torch"):
        yield
        return
    with KEEP_FLOAT64():
        if backend == "jax":
            import jax

            with jax.enable_x64(True):
                yield
        else:
            yield


@contextlib.contextmanager
def float32_matmuls() -> Iterator[None]:
    """Float32 matrix products in full float32 precision (no TensorFloat-32) for the block.

    TensorFlow enables TensorFloat-32 on NVIDIA Ampere and newer GPUs by default, a
    process-wide switch read when a kernel runs (or when XLA compiles); PyTorch has
    ``set_float32_matmul_precision``. Both are set to full float32 while any such block runs,
    on any thread, and restored when the last one ends (:data:`NO_TENSOR_FLOAT_32`). JAX:
    ``jax.default_matmul_precision("highest")``, a thread-local context, for the block: eager
    code (a Keras model's own forward pass) computes under it, and ``Compiled`` calls, so
    traces, its function under it, so every compiled product carries ``precision=HIGHEST``
    (the setting is part of ``jax.jit``'s cache key). No effect on CPUs, where float32 products
    are float32 anyway.
    """
    backend = name()
    if backend == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            yield
    elif backend in ("tensorflow", "torch"):
        with NO_TENSOR_FLOAT_32():
            yield
    else:
        yield


@dataclass(frozen=True)
class DeviceMemory:
    """Memory of the accelerator the active backend computes on, in bytes (None: not reported).

    Attributes:
        device: ``platform:kind``, e.g. ``"gpu:NVIDIA H200"``.
        limit: bytes the framework's allocator may hold on the device (JAX: ``bytes_limit``,
            by default 75 % of the device's memory, preallocated; TensorFlow: the device's
            ``memory_limit``; PyTorch: the device's total memory).
        in_use: bytes held by live arrays now.
        peak: the most bytes held at once since the process started (PyTorch: since the last
            ``torch.cuda.reset_peak_memory_stats``).
    """

    device: str
    limit: int | None
    in_use: int | None
    peak: int | None

    @property
    def free(self) -> int | None:
        """``limit - in_use`` (None when the limit is unknown)."""
        if self.limit is None:
            return None
        return max(0, self.limit - (self.in_use or 0))


def accelerator_memory() -> DeviceMemory | None:
    """The memory of the first accelerator the active backend computes on; None on a CPU.

    JAX: the default device's ``memory_stats()``; TensorFlow: ``tf.config.experimental.get_memory_info``
    of ``GPU:0`` and its ``memory_limit``; PyTorch: ``torch.cuda``. Cheap after the backend
    has started; a failing query reports the device with unknown sizes rather than raising.
    """
    backend = name()
    if backend == "jax":
        return _jax_memory()
    if backend == "tensorflow":
        return _tensorflow_memory()
    if backend == "torch":
        return _torch_memory()
    return None


def _jax_memory() -> DeviceMemory | None:
    import jax

    device = jax.devices()[0]  # the default device: accelerators come first
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # a plugin without memory statistics
        stats = {}

    def field(key: str) -> int | None:
        return int(stats[key]) if key in stats else None

    return DeviceMemory(
        f"{device.platform}:{device.device_kind}",
        field("bytes_limit"),
        field("bytes_in_use"),
        field("peak_bytes_in_use"),
    )


def _tensorflow_memory() -> DeviceMemory | None:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        return None
    try:
        info = tf.config.experimental.get_memory_info("GPU:0")
    except (ValueError, RuntimeError):
        info = {}
    limit = None
    with contextlib.suppress(Exception):  # the allocator's limit is only in a private API's device attributes
        from tensorflow.python.client import device_lib

        limit = next(int(d.memory_limit) for d in device_lib.list_local_devices() if d.device_type == "GPU")
    current, peak = info.get("current"), info.get("peak")
    return DeviceMemory(
        f"gpu:{gpus[0].name}", limit, None if current is None else int(current), None if peak is None else int(peak)
    )


def _torch_memory() -> DeviceMemory | None:
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return DeviceMemory(
        f"gpu:{torch.cuda.get_device_name()}", int(total), int(total - free), int(torch.cuda.max_memory_allocated())
    )


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


def bucket_below(size: int) -> int:
    """The largest :func:`bucket` ``<= size`` (a chunk size that padding leaves alone).

    Example:
        >>> [bucket_below(n) for n in (1, 5, 7, 2080, 3100)]
        [1, 4, 6, 2048, 3072]
    """
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    power = 1 << (int(size).bit_length() - 1)  # the largest power of two <= size
    return power * 3 // 2 if power >= 2 and power * 3 // 2 <= size else power


def _pad_rows(array: Any, rows: int) -> np.ndarray:
    """Append ``rows`` copies of the last row (a valid sample: valid mask, ids and target)."""
    array = np.asarray(array)
    return np.concatenate([array, np.repeat(array[-1:], rows, axis=0)], axis=0)


class XlaSteps:
    """TensorFlow: bodies of time loops as XLA-compiled functions, kept by their static key.

    TensorFlow runs a loop body one kernel per op; a backward step of an LSTM is about 30
    elementwise ops on (B, H) tensors, each a pass over memory. XLA fuses them into a few
    loops (benchmarks/NOTES.md: about 15 % off an LRP call on a CPU, the same numbers to the
    bit in the cases measured). XLA compiles a function once per batch size, at its first
    call, in about 0.1-0.2 s; keeping the function by its key (:func:`tf_lrp._fusion.fused_step`)
    lets every later trace of an equal step (another method, another explainer of the same
    layer) reuse the compiled kernel. The ``size`` most recently used are kept.

    Args:
        size: how many compiled steps to keep.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._steps: OrderedDict[Hashable, Callable[..., Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, step: Callable[..., Any], key: Hashable) -> Callable[..., Any]:
        """The compiled step of ``key``, compiling ``step`` for it on first use."""
        import tensorflow as tf

        compile_step = functools.partial(tf.function, jit_compile=True, autograph=False)
        try:
            hash(key)
        except TypeError:  # a static part without a hash: compile this step alone
            return compile_step(step)
        with self._lock:
            if key not in self._steps:
                self._steps[key] = compile_step(step)
                if len(self._steps) > self._size:
                    self._steps.popitem(last=False)
            self._steps.move_to_end(key)
            return self._steps[key]


#: the compiled loop steps of ``jit_compile="auto"`` calls (TensorFlow)
XLA_STEPS = XlaSteps()
#: ``jit_compile="auto"`` fuses the loop steps of a call whose (B, H) loop states hold at least
#: this many numbers. Measured on a 2-core CPU (benchmarks/NOTES.md): the small bi-LSTM (H = 60)
#: gains 7-15 % at B >= 512 and loses 10-40 % at B <= 256, where each step's XLA call costs more
#: than the fusion saves; the large one (H = 256) is even at B = 64 and 256.
FUSED_STEP_NUMBERS = 32768


def check_jit_compile(value: Any) -> bool | str:
    """``jit_compile`` must be True, False or ``"auto"``; return it.

    Raises:
        InputError: naming the value received.
    """
    from .errors import InputError

    if value is True or value is False or value == "auto":
        return value
    raise InputError(f'jit_compile must be True, False or "auto"; got {value!r}')


class Compiled:
    """A core function compiled for the active backend, with a trace counter.

    Args:
        function: the pure ``keras.ops`` function; positional tensor arguments only.
        signature: a list of :class:`TensorSpec` (or nested lists of them), one per argument.
        jit_compile: TensorFlow only: ``True`` compiles the whole function with XLA;
            ``False``: no XLA; ``"auto"``: a call with enough rows (``B·loop_width >=``
            :data:`FUSED_STEP_NUMBERS`) runs a second trace whose time-loop steps are each one
            XLA function (:data:`XLA_STEPS`, through :func:`tf_lrp._fusion.fused_step`), the
            rest as a graph; smaller calls run the plain graph.
        batch_args: positions of the batch-major arguments (same first dimension B). When
            given, a shape-specialising call (JAX, or TensorFlow with XLA) pads them to
            :func:`bucket` (B) rows by repeating the last row, and cuts every output back to
            its first B rows; only for functions whose samples are independent and whose
            outputs are all batch-major. The trace count then stays within the number of
            buckets instead of growing with every new batch size.
        loop_width: H of the widest (B, H) state the function's time loops carry (0: no loop).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        signature: list[Any],
        jit_compile: bool | str = False,
        batch_args: Sequence[int] = (),
        loop_width: int = 0,
    ) -> None:
        self.traces = 0
        self.backend = name()
        self.x64 = needs_x64(signature)
        whole = check_jit_compile(jit_compile) is True
        fuses = self.backend == "tensorflow" and jit_compile == "auto" and loop_width > 0 and bool(batch_args)
        #: rows from which a call runs the trace with fused loop steps (None: never)
        self.fused_from = -(-FUSED_STEP_NUMBERS // loop_width) if fuses else None
        specialises = self.backend == "jax" or (self.backend == "tensorflow" and whole)
        self._batched = frozenset(batch_args) if specialises else frozenset()
        self._batch_args = frozenset(batch_args)  # split across replicas by run_distributed
        self._steps: dict[int, tuple[Any, Callable[..., Any]]] = {}  # id(strategy) -> (strategy, step)

        def traced(step_compiler: Any, *args: Any) -> Any:
            self.traces += 1  # runs once per trace, never per call
            with compiling_steps_with(step_compiler):
                return function(*args)

        if self.backend == "tensorflow":
            import tensorflow as tf

            # Keyed by the callable, not by the shared code of `traced`: TensorFlow's frequent-retracing
            # detector counts traces per code object, so one trace per Compiled (by design) across
            # several methods would otherwise print "triggered tf.function retracing".
            self._call: Callable[..., Any] = tf.function(
                functools.partial(traced, None),
                input_signature=_tf_signature(signature),
                jit_compile=whole,
                reduce_retracing=True,
            )
            self._fused = self._call
            if self.fused_from is not None:  # a second trace, its loop steps compiled by XLA_STEPS
                self._fused = tf.function(
                    functools.partial(traced, XLA_STEPS), input_signature=_tf_signature(signature),
                    reduce_retracing=True,
                )  # fmt: skip
        elif self.backend == "jax":
            import jax

            self._call = jax.jit(functools.partial(traced, None))  # called, so traced, inside float32_matmuls
        else:  # eager: numpy arguments become the backend's tensors first
            self._call = lambda *args: traced(None, *keras.tree.map_structure(keras.ops.convert_to_tensor, args))

    def __call__(self, *args: Any) -> Any:
        """Run on numpy arguments; return the outputs as numpy arrays (same structure)."""
        batch = len(args[min(self._batch_args)]) if self._batch_args else 0
        rows = None
        if self._batched:
            rows = batch
            extra = bucket(rows) - rows
            if extra:
                args = tuple(_pad_rows(a, extra) if i in self._batched else a for i, a in enumerate(args))
        call = self._fused if self.fused_from is not None and batch >= self.fused_from else self._call
        with _scope(self.x64), float32_matmuls():
            result = call(*args)
            result = keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), result)
        if rows is not None:
            result = keras.tree.map_structure(lambda t: t[:rows] if t.ndim else t, result)
        return result

    def run_distributed(self, strategy: Any, *args: Any) -> Any:
        """Like calling, but with the batch split across ``strategy``'s replicas (TensorFlow only).

        See :func:`distribute_call`: the ``batch_args`` are split, the other arguments go to
        every replica. Needs ``batch_args``; the outputs must be batch-major (or scalars).
        """
        check_strategy(strategy)
        if not self._batch_args:
            raise ValueError("run_distributed needs a Compiled built with batch_args (the batch-major arguments)")
        if id(strategy) not in self._steps:
            self._steps[id(strategy)] = (strategy, distributed_step(strategy, self._call))
        batched = [i in self._batch_args for i in range(len(args))]
        pad_to = bucket if self._batched else None
        with float32_matmuls():
            return distribute_call(strategy, self._steps[id(strategy)][1], args, batched, pad_to)


def is_spec(value: Any) -> bool:
    """Whether ``value`` is a :class:`TensorSpec` (for structure mapping)."""
    return isinstance(value, TensorSpec)


# --------------------------------------------------------------------------------------------
# Several devices: tf.distribute


def check_strategy(strategy: Any) -> None:
    """Refuse a ``strategy`` that is not a ``tf.distribute.Strategy`` or a backend that is not TensorFlow.

    Raises:
        InputError: naming what was passed and the fix.
    """
    from .errors import InputError

    if name() != "tensorflow":
        raise InputError(
            f"strategy= needs the TensorFlow backend; the active Keras backend is {name()!r}. "
            "Set KERAS_BACKEND=tensorflow, or drop strategy= (on JAX, shard with jax.sharding instead)"
        )
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.Strategy):
        raise InputError(
            f"strategy must be a tf.distribute.Strategy (e.g. tf.distribute.MirroredStrategy()); "
            f"got {type(strategy).__name__}"
        )


def distributed_step(strategy: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """A ``tf.function`` that runs ``function`` on every replica of ``strategy`` (``strategy.run``).

    The per-replica function is a ``tf.function`` with a fixed input signature, so it traces
    once per replica device; the step itself relaxes to unknown batch and time dimensions
    after the second shape (``reduce_retracing``).
    """
    import tensorflow as tf

    def replica(*args: Any) -> Any:  # a plain callable: strategy.run re-wraps a tf.function itself
        return function(*args)

    def step(*args: Any) -> Any:
        return strategy.run(replica, args=args)

    return tf.function(step, reduce_retracing=True)


def distribute_call(
    strategy: Any,
    step: Callable[..., Any],
    args: list[Any] | tuple[Any, ...],
    batched: list[bool],
    pad_to: Callable[[int], int] | None = None,
) -> Any:
    """Split the batch of one call across ``strategy``'s replicas, run, gather in order.

    The batch-major arguments (``batched[i]``) are padded with copies of their last row to
    ``n·per`` rows (``n`` replicas, ``per = ceil(B / n)``, or ``pad_to(per)``) and cut into
    ``n`` contiguous slices, replica ``r`` getting rows ``[r·per, (r+1)·per)``; the other
    arguments (weights, scalars) go to every replica unchanged. The per-replica outputs are
    concatenated in replica order (``experimental_local_results``; ``strategy.gather`` when
    some replicas live on other workers, so each worker sees the whole batch) and cut back to
    ``B`` rows. Samples are independent, so the result equals the single-device call (up to
    the last bits: a smaller batch may change the order of BLAS sums).

    Args:
        strategy: a ``tf.distribute.Strategy`` (checked by :func:`check_strategy`).
        step: runs the per-replica function on every replica (:func:`distributed_step`).
        args: its positional arguments, numpy arrays or nested lists of them.
        batched: per argument, whether it is batch-major (split) or shared (broadcast).
        pad_to: rounds the per-replica batch up (e.g. :func:`bucket` for XLA); None: exact.

    Returns:
        The outputs (same structure as ``function``'s) as numpy arrays with ``B`` rows.
    """
    import tensorflow as tf

    replicas = int(strategy.num_replicas_in_sync)
    rows = len(next(a for a, b in zip(args, batched, strict=True) if b))
    per = -(-rows // replicas)
    if pad_to is not None:
        per = pad_to(per)
    extra = per * replicas - rows
    padded = [_pad_rows(a, extra) if b and extra else a for a, b in zip(args, batched, strict=True)]
    split = [a for a, b in zip(padded, batched, strict=True) if b]

    def replica_values(context: Any) -> tuple[Any, ...]:
        window = slice(context.replica_id_in_sync_group * per, (context.replica_id_in_sync_group + 1) * per)
        return tuple(tf.convert_to_tensor(a[window]) for a in split)

    values = iter(strategy.experimental_distribute_values_from_function(replica_values))
    call_args = [next(values) if b else tf.nest.map_structure(tf.convert_to_tensor, a)
                 for a, b in zip(padded, batched, strict=True)]  # fmt: skip
    result = step(*call_args)
    if _all_local(strategy):  # concatenate the replicas' outputs in order
        gathered = tf.nest.map_structure(lambda value: _concatenate_local(strategy, value), result)
    else:  # several workers: an all-gather, so each worker sees the whole batch
        gathered = tf.nest.map_structure(lambda value: np.asarray(strategy.gather(value, axis=0)), result)
    return tf.nest.map_structure(lambda t: t[:rows] if t.ndim else t, gathered)


def _all_local(strategy: Any) -> bool:
    try:
        return len(strategy.extended.worker_devices) == strategy.num_replicas_in_sync
    except RuntimeError:  # the default strategy has no worker devices: one replica, here
        return True


def _concatenate_local(strategy: Any, value: Any) -> np.ndarray:
    parts = [np.asarray(part) for part in strategy.experimental_local_results(value)]
    return np.concatenate(parts, axis=0) if parts[0].ndim else parts[0]
