"""Dataset-scale explaining: chunks, length buckets, progress bar, resumable ``.npy`` output.

:func:`explain_dataset` drives a *batch function* it is given (the explainer hands it a closure
around :meth:`tf_lrp.Explainer.explain`) over data of any size:

* **sources**: a numpy array, an ``np.memmap``, a ``.npy`` path (memory-mapped, never
  unpickled), an ``.npz`` path (keys ``x`` and optional ``lengths`` / ``mask``), a
  ``tf.data.Dataset`` (anything with ``as_numpy_iterator``) or an iterable of batches (arrays,
  ``(x, lengths)`` tuples or dicts with ``x`` and ``lengths`` / ``mask``);
* **chunks**: ``batch_size="auto"`` picks, per chunk, the largest batch (at most
  :data:`MAX_AUTO_BATCH` on a CPU, no cap on an accelerator) whose working set fits the memory
  budget, by default a fraction of the free memory of the accelerator in use, else of the host's;
* **buckets**: with lengths, a mask or ``mask_zero`` token padding, samples are processed in
  order of decreasing valid length, and each chunk is cropped to the columns some of its
  samples use. A masked step carries the recurrent state through unchanged and gets zero
  relevance, so removing columns that are masked in *every* sample of a chunk changes nothing
  (unless a node reads padded steps as data, ``NodeType.reads_padding``: a network with a
  convolution or windowed pooling is never cropped).
  For post-padded data those are the trailing columns; for pre-padded data (valid steps at the
  end, a mask with leading ``False``) they are the *leading* columns, so the crop window is
  ``[first valid step, last valid step]`` over the chunk and results are written back at their
  original columns. Padding the model does not mask (no mask, no lengths, no ``mask_zero``) is
  real input and is never cropped. Results come back in the original order;
* **output that survives**: with ``out="relevances.npy"`` the relevances go into a
  preallocated ``.npy``; scores, targets and initial-state relevance go beside it
  (``relevances.scores.npy``, ...), and a JSON sidecar (``relevances.json``) records the model
  fingerprint, the arguments, the chunk plan, the files' layout, how many samples are complete
  and digests of each completed chunk's inputs and outputs. :mod:`tf_lrp.resumable` owns those
  files: one writer (a lock), nothing written over an input, space allocated up front, each
  chunk ``fsync``-ed before the sidecar records it, everything verified before a resume. After
  a crash the same call resumes at the first incomplete chunk, recomputes exactly the same
  chunks and writes byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _io, backend, conservation, resumable
from ._progress import progress_bar
from .errors import InputError, TfLrpWarning
from .resumable import output_paths

#: Upper bound of an automatically chosen batch on a CPU (keeps progress and resume granularity
#: useful); lifted on an accelerator, where large batches are what makes it fast.
MAX_AUTO_BATCH = 1024
#: Default memory budget on an accelerator: this fraction of its free memory (room for JAX's
#: batch padding, up to 1.5x, and temporaries beyond the working-set estimate).
DEVICE_MEMORY_FRACTION = 0.3
#: Default memory budget: this fraction of the host's available memory.
HOST_MEMORY_FRACTION = 0.25
#: Budget used when the available memory cannot be read.
FALLBACK_BUDGET = 1 << 30
#: On JAX (one compilation per shape) crop widths are multiples of this.
JAX_WIDTH_QUANTUM = 8
SIDECAR_FORMAT = resumable.SIDECAR_FORMAT
SIDECAR_VERSION = resumable.SIDECAR_VERSION
#: Rows hashed at each end of the data to recognise it again on resume.
_DIGEST_ROWS = 64

#: ``run(x, target, mask, lengths) -> (relevance, scores, target, initial_state, mask, explained)``; for several
#: inputs ``x``, ``mask``, ``lengths`` and ``relevance`` are tuples with one entry per input.
BatchFunction = Callable[[Any, Any, Any, Any], tuple[Any, ...]]


# --------------------------------------------------------------------------------------------
# Memory


def available_memory() -> int | None:
    """Bytes of host memory available now (``os.sysconf``), or None where it cannot be read."""
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or size <= 0:
        return None
    return int(pages) * int(size)


def default_budget() -> int:
    """The default chunk budget: a fraction of the free memory of the device that computes.

    :data:`DEVICE_MEMORY_FRACTION` of the accelerator's free memory when the backend computes on
    one (1 GiB if it does not report its size), else :data:`HOST_MEMORY_FRACTION` of the
    available host memory (1 GiB if unknown).
    """
    device = backend.accelerator_memory()
    if device is not None:
        return FALLBACK_BUDGET if device.free is None else max(1 << 20, int(device.free * DEVICE_MEMORY_FRACTION))
    free = available_memory()
    return FALLBACK_BUDGET if free is None else max(1 << 20, int(free * HOST_MEMORY_FRACTION))


# --------------------------------------------------------------------------------------------
# Chunk plan


@dataclass(frozen=True)
class Chunk:
    """One compiled call: which samples (original indices, ascending) and which columns."""

    indices: np.ndarray  # (b,) int64, indices into the block
    start: int  # first column of the crop window
    stop: int  # one past the last column


def max_auto_batch() -> int | None:
    """:data:`MAX_AUTO_BATCH` on a CPU; None (no cap) when the backend computes on an accelerator."""
    return None if backend.accelerator_memory() is not None else MAX_AUTO_BATCH


def spans(steps: int, lengths: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray | None:
    """Per sample ``[first valid step, last valid step + 1)``, or None when nothing is masked.

    Args:
        steps: T.
        lengths: (N,) valid lengths of post-padded data.
        mask: (N, T) bool, True on valid steps (any padding side).

    Returns:
        (N, 2) int64, or None.
    """
    if lengths is not None:
        lengths = np.asarray(lengths, dtype=np.int64)
        return np.stack([np.zeros_like(lengths), np.clip(lengths, 1, steps)], axis=1)
    if mask is None:
        return None
    valid = np.asarray(mask, dtype=bool)
    any_valid = valid.any(axis=1)
    first = np.where(any_valid, valid.argmax(axis=1), 0)
    last = np.where(any_valid, steps - valid[:, ::-1].argmax(axis=1), steps)
    return np.stack([first, last], axis=1).astype(np.int64)


def plan(
    count: int,
    steps: int,
    window: np.ndarray | None,
    batch_size: int | None,
    per_sample_bytes: Callable[[int], int],
    budget: int,
    quantum: int = 1,
    max_batch: int | None = MAX_AUTO_BATCH,
) -> list[Chunk]:
    """Split ``count`` samples into chunks, longest valid span first.

    Args:
        count: N.
        steps: T of the data.
        window: (N, 2) valid spans from :func:`spans`, or None (every chunk is full width).
        batch_size: a fixed batch size, or None to fit ``budget``.
        per_sample_bytes: working set of one sample of a given length.
        budget: bytes one chunk may use (``batch_size=None`` only).
        quantum: crop widths are rounded up to a multiple of this (within ``[0, steps)``), so
            that a backend that compiles once per shape (JAX) sees few distinct lengths.
        max_batch: cap of a budget-fitted chunk (None: none; see :func:`max_auto_batch`).

    Returns:
        The chunks in processing order; together they hold every index exactly once.
    """
    if window is None:
        order = np.arange(count, dtype=np.int64)
        window = np.tile(np.asarray([[0, steps]], dtype=np.int64), (count, 1))
    else:
        order = np.argsort(-(window[:, 1] - window[:, 0]), kind="stable").astype(np.int64)
    chunks: list[Chunk] = []
    position = 0
    while position < count:
        first = order[position]
        size = batch_size or _fit(budget, per_sample_bytes, int(window[first, 1] - window[first, 0]), max_batch)
        while True:
            members = order[position : position + size]
            start, stop = _widen(int(window[members, 0].min()), int(window[members, 1].max()), steps, quantum)
            if batch_size or size == 1 or size * per_sample_bytes(stop - start) <= budget:
                break
            size = _fit(budget, per_sample_bytes, stop - start, max_batch)
        chunks.append(Chunk(np.sort(members), start, stop))
        position += len(members)
    return chunks


def _widen(start: int, stop: int, steps: int, quantum: int) -> tuple[int, int]:
    """Grow ``[start, stop)`` to a width that is a multiple of ``quantum`` (or ``steps``)."""
    width = min(steps, -(-(stop - start) // quantum) * quantum)
    stop = min(steps, start + width)
    return stop - width, stop


def _fit(budget: int, per_sample_bytes: Callable[[int], int], steps: int, max_batch: int | None) -> int:
    fitting = budget // max(per_sample_bytes(steps), 1)
    return int(max(1, fitting if max_batch is None else min(max_batch, fitting)))


# --------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True)
class InputInfo:
    """One network input as the driver sees it.

    Attributes:
        name: the input's name (the key ``relevance/<name>`` of a network with several inputs).
        feature_shape: the trailing shape of one step: ``()`` for token ids, ``(F,)`` for features.
        features: the width of its relevance (the embedding width for token ids).
        mask_zero: token id 0 is padding the model masks.
    """

    name: str
    feature_shape: tuple[int, ...]
    features: int
    mask_zero: bool = False

    @property
    def rank(self) -> int:
        """The rank of the data: batch, time and the feature shape."""
        return 2 + len(self.feature_shape)


@dataclass
class Block:
    """A piece of the data set: the whole arrays, or one batch of a stream; one entry per input."""

    xs: tuple[np.ndarray, ...]
    lengths: tuple[np.ndarray | None, ...]
    masks: tuple[np.ndarray | None, ...]

    @property
    def x(self) -> np.ndarray:
        """The first input (the only one of a one-input network)."""
        return self.xs[0]

    @property
    def count(self) -> int:
        """The number of samples."""
        return int(self.xs[0].shape[0])

    @property
    def steps(self) -> int:
        """The longest input's T."""
        return max(int(x.shape[1]) for x in self.xs)


def _single(x: np.ndarray, lengths: np.ndarray | None = None, mask: np.ndarray | None = None) -> Block:
    return Block((x,), (lengths,), (mask,))


def _by_input(value: Any, names: Sequence[str], what: str, optional: bool) -> tuple[Any, ...]:
    """``value`` (a list or tuple with one entry per input, or a dict by input name) in input order."""
    if value is None and optional:
        return (None,) * len(names)
    if isinstance(value, Mapping):
        keys = [str(key) for key in value]
        unknown = sorted(set(keys) - set(names))
        missing = [name for name in names if name not in value]
        if unknown or (missing and not optional):
            raise InputError(
                f"{what} names inputs {sorted(keys)}; the network's inputs are {list(names)} "
                f"(missing {missing}, unknown {unknown})"
            )
        return tuple(value.get(name) for name in names)
    if isinstance(value, (list, tuple)) and len(value) == len(names):
        return tuple(value)
    raise InputError(
        f"{what}: this network has {len(names)} inputs {list(names)}; pass a list of {len(names)} entries "
        "or a dict by input name"
    )


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, (list, tuple, Mapping))
    )


def _is_inputs(data: Any, names: Sequence[str]) -> bool:
    """Whether ``data`` is the arrays of a several-input network (not a stream of batches)."""
    if isinstance(data, Mapping):
        return all(str(key) in names for key in data)
    return isinstance(data, (list, tuple)) and len(data) == len(names) and all(_is_array(v) for v in data)


def _open_path(path: Path, names: Sequence[str]) -> Block:
    if not path.is_file():
        raise InputError(f"data file {str(path)!r} does not exist")
    if len(names) > 1:
        keys = ", ".join(f"x/{name}" for name in names)
        if path.suffix != ".npz":
            raise InputError(
                f"{str(path)!r} holds one array; this network has inputs {list(names)}: pass an .npz with keys {keys}"
            )
        arrays = _io.load_npz(path)
        missing = [name for name in names if f"x/{name}" not in arrays]
        if missing:
            raise InputError(
                f"{str(path)!r} has no array 'x/{missing[0]}' (keys: {sorted(arrays)}); store one array per input "
                f"as {keys} (optional lengths/<input>, mask/<input>)"
            )
        return Block(
            tuple(arrays[f"x/{name}"] for name in names),
            tuple(arrays.get(f"lengths/{name}") for name in names),
            tuple(arrays.get(f"mask/{name}") for name in names),
        )
    if path.suffix == ".npz":
        arrays = _io.load_npz(path)
        if "x" not in arrays:
            raise InputError(f"{str(path)!r} has no array 'x' (keys: {sorted(arrays)}); store the inputs as x=")
        return _single(arrays["x"], arrays.get("lengths"), arrays.get("mask"))
    with open(path, "rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            raise InputError(f"{str(path)!r} holds several arrays; pass an .npy file or an .npz with key 'x'")
    return _single(_io.load_npy(path, mmap=True))


def _as_block(item: Any, where: str, names: Sequence[str] = ("input",)) -> Block:
    """One element of a stream: an array, ``(x, lengths)`` / ``(x, lengths, mask)`` or a dict.

    For several inputs ``x`` is a list or a dict by input name (so is each of lengths and mask),
    and a bare list/tuple of arrays or a dict by input name is the inputs alone.
    """
    if len(names) > 1:
        return _as_multi_block(item, where, names)
    if isinstance(item, Mapping):
        if "x" not in item:
            raise InputError(f"{where} is a dict without key 'x' (keys: {sorted(item)})")
        return _single(np.asarray(item["x"]), _optional(item.get("lengths")), _optional(item.get("mask")))
    if isinstance(item, tuple):
        if not 1 <= len(item) <= 3:
            raise InputError(f"{where} is a tuple of {len(item)}; expected (x,), (x, lengths) or (x, lengths, mask)")
        parts = [*item, None, None][:3]
        return _single(np.asarray(parts[0]), _optional(parts[1]), _optional(parts[2]))
    return _single(np.asarray(item))


def _as_multi_block(item: Any, where: str, names: Sequence[str]) -> Block:
    if _is_inputs(item, names) and not (isinstance(item, Mapping) and not item):
        xs, lengths, mask = item, None, None
    elif isinstance(item, Mapping) and "x" in item:
        xs, lengths, mask = item["x"], item.get("lengths"), item.get("mask")
    elif isinstance(item, (list, tuple)) and 1 <= len(item) <= 3 and isinstance(item[0], (list, tuple, Mapping)):
        xs, lengths, mask = [*item, None, None][:3]
    else:
        raise InputError(
            f"{where} must hold one array per input {list(names)}: a list, a dict by input name, "
            "or {'x': ..., 'lengths': ..., 'mask': ...} with such lists or dicts"
        )
    return Block(
        tuple(np.asarray(x) for x in _by_input(xs, names, f"{where}: x", optional=False)),
        tuple(_optional(v) for v in _by_input(lengths, names, f"{where}: lengths", optional=True)),
        tuple(_optional(v) for v in _by_input(mask, names, f"{where}: mask", optional=True)),
    )


def _optional(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def _is_stream(data: Any) -> bool:
    return not isinstance(data, (np.ndarray, str, os.PathLike, Mapping)) and (
        hasattr(data, "as_numpy_iterator") or isinstance(data, Iterable)
    )


def _stream(data: Any, names: Sequence[str] = ("input",)) -> Iterator[Block]:
    items = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else iter(data)
    for number, item in enumerate(items):
        yield _as_block(item, f"batch {number} of the data", names)


# --------------------------------------------------------------------------------------------
# The driver


@dataclass(frozen=True)
class OutputFiles:
    """Where :func:`explain_dataset` wrote its results (``out=`` given).

    For a network with several inputs ``relevance`` is a dict from input name to its file, and
    :meth:`load` returns each under ``relevance/<input name>``; ``explained`` is the file of the
    explained scores of a network with per-step outputs (None otherwise).
    """

    relevance: Path | dict[str, Path]
    scores: Path
    targets: Path
    initial_state_relevance: Path
    sidecar: Path
    samples: int
    resumed_from: int
    explained: Path | None = None

    @property
    def arrays(self) -> dict[str, Path]:
        """Every array file by key (``relevance`` or ``relevance/<input name>``, ``scores``, ...)."""
        relevance = (
            {f"relevance/{name}": path for name, path in self.relevance.items()}
            if isinstance(self.relevance, dict)
            else {"relevance": self.relevance}
        )
        files = {
            **relevance,
            "scores": self.scores,
            "targets": self.targets,
            "initial_state_relevance": self.initial_state_relevance,
        }
        return files if self.explained is None else {**files, "explained": self.explained}

    def load(self) -> dict[str, np.ndarray]:
        """The arrays, memory-mapped read-only (``allow_pickle=False``).

        Returns:
            ``relevance`` (one input) or ``relevance/<input name>`` (each input), ``scores``,
            ``targets``, ``initial_state_relevance`` and, for per-step outputs, ``explained``.
        """
        return {name: np.load(path, mmap_mode="r", allow_pickle=False) for name, path in self.arrays.items()}


@dataclass(frozen=True)
class _Net:
    """What the driver knows of the network: its inputs and whether it scores every step."""

    inputs: tuple[InputInfo, ...]
    per_step: bool
    output_dtype: str
    num_outputs: int
    croppable: bool = True  # False: a node reads padded steps as data (a convolution), never crop

    @property
    def names(self) -> tuple[str, ...]:
        """The input names."""
        return tuple(info.name for info in self.inputs)

    @property
    def multi(self) -> bool:
        """Whether the network has several inputs."""
        return len(self.inputs) > 1

    @property
    def crop(self) -> bool:
        """Whether chunks are bucketed by length and cropped (one input, one score vector per sample)."""
        return self.croppable and not self.multi and not self.per_step

    @property
    def relevance_keys(self) -> tuple[str, ...]:
        """``relevance`` for one input, else ``relevance/<name>`` per input."""
        return ("relevance",) if not self.multi else tuple(f"relevance/{name}" for name in self.names)

    def time_keys(self) -> tuple[str, ...]:
        """The outputs with a time axis (filled from column 0, or the crop start)."""
        return (*self.relevance_keys, *(("scores",) if self.per_step else ()))

    def shapes(self, count: int, steps: Sequence[int]) -> dict[str, tuple[tuple[int, ...], str]]:
        """Per output key (in digest order): shape and dtype for ``count`` samples of ``steps`` (per input)."""
        shapes: dict[str, tuple[tuple[int, ...], str]] = {
            key: ((count, int(t), info.features), self.output_dtype)
            for key, t, info in zip(self.relevance_keys, steps, self.inputs, strict=True)
        }
        scores = (count, max(steps), self.num_outputs) if self.per_step else (count, self.num_outputs)
        shapes["scores"] = (scores, self.output_dtype)
        shapes["targets"] = ((count,), "int64")
        shapes["initial_state_relevance"] = ((count,), self.output_dtype)
        if self.per_step:
            shapes["explained"] = ((count,), self.output_dtype)
        return shapes

    def parts(self, result: tuple[Any, ...]) -> dict[str, Any]:
        """One chunk's result from the batch function, by output key."""
        relevance, scores, target, initial = result[:4]
        relevance = relevance if isinstance(relevance, (tuple, list)) else (relevance,)
        parts = dict(zip(self.relevance_keys, relevance, strict=True))
        parts.update(scores=scores, targets=target, initial_state_relevance=initial)
        if self.per_step:
            parts["explained"] = result[5]
        return parts


class _Sink:
    """Where chunk results go in memory (files: :class:`tf_lrp.resumable.Store`)."""

    def __init__(self, net: _Net, arrays: dict[str, np.ndarray], masks: list[np.ndarray | None]) -> None:
        self.net = net
        self.arrays = arrays
        self.masks = masks
        #: whether any chunk reported a mask (several inputs: the result's mask is None otherwise)
        self.seen: list[bool] = [False]

    def put(self, indices: np.ndarray, start: int, stop: int, result: tuple[Any, ...]) -> None:
        time_keys = self.net.time_keys()
        for key, part in self.net.parts(result).items():
            part = np.asarray(part)
            if key in time_keys:
                self.arrays[key][indices, start : start + part.shape[1]] = part
            else:
                self.arrays[key][indices] = part
        mask = result[4]
        self.seen[0] = self.seen[0] or mask is not None
        masks = mask if isinstance(mask, (tuple, list)) else (mask,)
        for target, part in zip(self.masks, masks, strict=False):
            if target is not None and part is not None:
                part = np.asarray(part)
                target[indices, start : start + part.shape[1]] = part


def explain_dataset(
    run: BatchFunction,
    data: Any,
    *,
    record: Mapping[str, Any],
    per_sample_bytes: Callable[[int], int],
    feature_shape: tuple[int, ...],
    features: int,
    output_dtype: str,
    num_outputs: int,
    mask_zero: bool,
    batch_size: int | str | None = "auto",
    out: str | os.PathLike[str] | None = None,
    targets: Any = None,
    lengths: Any = None,
    mask: Any = None,
    progress: bool | None = None,
    memory_budget: int | None = None,
    resume: bool = True,
    inputs: Sequence[InputInfo] | None = None,
    per_step: bool = False,
    crop: bool = True,
) -> dict[str, Any] | OutputFiles:
    """Explain a data set chunk by chunk (see the module docstring).

    Args:
        run: the batch function ``run(x, target, mask, lengths)`` returning
            ``(relevance, scores, target, initial_state_relevance, mask, explained)`` for one
            chunk; for several inputs ``x``, ``mask``, ``lengths`` and ``relevance`` are tuples
            (one entry per input).
        data: array, memmap, ``.npy`` / ``.npz`` path, ``tf.data.Dataset`` or iterable of
            batches; for several inputs a list or a dict by input name of arrays, an ``.npz``
            with keys ``x/<input>``, or batches holding such lists or dicts.
        record: what identifies the computation (model fingerprint, method, ε, ...); stored in
            the sidecar and compared on resume.
        per_sample_bytes: working set of one sample of ``T`` steps.
        feature_shape: the trailing shape of one step: ``()`` for token ids, ``(D,)`` for features.
        features: D of the relevance (the embedding width for token models).
        output_dtype: dtype of the relevance and scores.
        num_outputs: C.
        mask_zero: the model masks token id 0 (buckets are derived from the tokens).
        batch_size: ``"auto"`` (fit ``memory_budget``) or a positive int.
        out: ``.npy`` path to stream the relevances into, or None to return arrays.
        targets: None (predicted class), an int, or (N,) integers (arrays and paths only).
        lengths: (N,) valid lengths of post-padded data (arrays and paths only); a list or a
            dict by input name for several inputs.
        mask: (N, T) bool mask (arrays and paths only); a list or dict for several inputs.
        progress: True: a tqdm bar; False: none; None: a bar on a terminal or in a notebook, a plain line every
            30 s otherwise (logs, CI).
        memory_budget: bytes per chunk for ``batch_size="auto"``; None: a fraction of the free
            memory of the accelerator in use, else of the available host memory (:func:`default_budget`).
        resume: continue a run recorded in ``out``'s sidecar; False starts over.
        inputs: the network's inputs (several: ``feature_shape``, ``features`` and ``mask_zero``
            are then ignored); None: one input described by those three.
        per_step: the network scores every step (scores (N, T, C), an ``explained`` output;
            chunks are not cropped).
        crop: whether chunks may be cropped to the columns their samples use (False when a node
            reads padded steps as data, e.g. a convolution: the padding changes its output).

    Returns:
        With ``out=None`` a dict of arrays (``relevance`` (N, T, D) or ``relevance/<input>``
        per input, ``scores`` (N, C) or (N, T, C), ``targets`` (N,), ``initial_state_relevance``
        (N,), ``explained`` (N,) for per-step outputs, ``mask`` (N, T) or None (a tuple per
        input for several)); else the :class:`OutputFiles`.

    Raises:
        InputError: for invalid arguments or data; when ``out`` holds a run of another model,
            other arguments or other data, or files that changed since they were written (pass
            ``resume=False`` to start over); when ``out`` or a companion file is an input file;
            when another process is writing ``out``; when the disk is full.

    Warns:
        TfLrpWarning: once, naming the worst sample, when relevance blows up (see
            :mod:`tf_lrp.conservation`).
    """
    infos = tuple(inputs) if inputs is not None else (InputInfo("input", tuple(feature_shape), features, mask_zero),)
    net = _Net(infos, bool(per_step), output_dtype, num_outputs, bool(crop))
    names = net.names
    fixed = _check_batch_size(batch_size)
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0
    ):
        raise InputError(f"memory_budget must be a positive number of bytes or None; got {memory_budget!r}")
    inputs_found = _input_files(*_flat(data), *_flat(lengths), *_flat(mask))
    opened: Block | None = None
    if isinstance(data, (str, os.PathLike)):
        opened = _open_path(Path(data), names)
    elif net.multi and _is_inputs(data, names):
        opened = Block(
            tuple(_by_input(data, names, "data", optional=False)), (None,) * len(names), (None,) * len(names)
        )
    if opened is not None and net.multi:
        given_lengths = _by_input(lengths, names, "lengths", optional=True)
        given_mask = _by_input(mask, names, "mask", optional=True)
        opened = Block(
            opened.xs,
            tuple(_optional(o if g is None else g) for o, g in zip(opened.lengths, given_lengths, strict=True)),
            tuple(_optional(o if g is None else g) for o, g in zip(opened.masks, given_mask, strict=True)),
        )
    elif opened is not None:
        lengths = opened.lengths[0] if lengths is None else lengths
        mask = opened.masks[0] if mask is None else mask
        data = opened.x
        opened = None
    if opened is None and _is_stream(data):
        if lengths is not None or mask is not None:
            raise InputError("with a stream of batches, put lengths/mask into each batch (dicts or tuples)")
        if targets is not None and not isinstance(targets, (int, np.integer)):
            raise InputError("with a stream of batches, targets must be None or one int")
        blocks: Callable[[], Iterator[Block]] = lambda: _stream(data, names)  # noqa: E731
        one_shot = not hasattr(data, "as_numpy_iterator") and iter(data) is data
        if out is not None and one_shot:
            raise InputError(
                "out= needs to know the data set's size first, and a one-shot iterator (a generator) can only "
                "be read once: pass a list of batches, a tf.data.Dataset or an array/.npy file"
            )
        count, steps = _measure(blocks(), infos) if out is not None else (0, (0,) * len(infos))
    else:
        if opened is None:
            if net.multi:
                raise InputError(
                    f"this network has {len(names)} inputs {list(names)}: pass data as a list of {len(names)} "
                    "arrays, a dict by input name, an .npz with keys x/<input>, or a stream of such batches"
                )
            opened = _single(_check_array(data, infos[0].rank, infos[0].feature_shape), _optional(lengths),
                             _optional(mask))  # fmt: skip
        block = _check_block(opened, infos, "the data")
        blocks = lambda: iter([block])  # noqa: E731
        count, steps = block.count, tuple(int(x.shape[1]) for x in block.xs)
        if targets is not None and np.ndim(targets) == 1 and np.shape(targets)[0] != count:
            raise InputError(f"targets must be None, an int or ({count},) integers; got shape {np.shape(targets)}")
    # a fixed batch size needs no budget: then the host's free memory (which changes from run to run) is
    # not measured, so that the sidecar of a resumed run equals a clean run's byte for byte
    budget = int(memory_budget) if memory_budget is not None else default_budget() if fixed is None else None
    max_batch = max_auto_batch() if fixed is None else MAX_AUTO_BATCH
    arguments = {
        **record,
        "batch_size": "auto" if fixed is None else fixed,
        "targets": _describe_targets(targets),
        "samples": int(count),
    }
    method = str(record.get("method", ""))
    if out is None:
        return _run_in_memory(
            run, blocks(), fixed, budget or 0, per_sample_bytes, targets, net, progress, method, max_batch,
        )  # fmt: skip
    paths = output_paths(out, _file_names(names) if net.multi else None, explained=net.per_step)
    if count == 0:
        raise InputError("the data set holds no samples")
    resumable.check_not_inputs(paths, inputs_found)
    if not paths["sidecar"].parent.is_dir():
        raise InputError(
            f"cannot write {str(resumable.out_path(paths))!r}: directory {str(paths['sidecar'].parent)!r} does not "
            "exist"
        )
    first = next(blocks())
    arguments["data"] = _digest(first, count, steps)
    arguments = json.loads(json.dumps(arguments))  # normalise (tuples -> lists) for comparison
    shapes = net.shapes(count, steps)
    plan_record = {"batch_size": fixed, "memory_budget": budget, "max_batch": max_batch}
    with resumable.Lock(paths["lock"], resumable.out_path(paths)):
        sidecar, store = _open_output(paths, arguments, shapes, plan_record, resume)
        try:
            _run_to_files(
                run, blocks, sidecar, store, paths, targets, per_sample_bytes, net, progress, method, count,
            )  # fmt: skip
        finally:
            store.close()
    relevance: Path | dict[str, Path] = (
        paths["relevance"] if not net.multi else {name: paths[f"relevance/{name}"] for name in names}
    )
    return OutputFiles(
        relevance, paths["scores"], paths["targets"], paths["initial_state_relevance"], paths["sidecar"],
        samples=count, resumed_from=int(sidecar["completed"]), explained=paths.get("explained"),
    )  # fmt: skip


def _file_names(names: Sequence[str]) -> list[str]:
    """Input names as they appear in file names (``OUT.relevance.<name>.npy``); refuses unsafe ones."""
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise InputError(
                f"input name {name!r} cannot name an output file (OUT.relevance.<name>.npy); rename the input to "
                "letters, digits, '_', '-' and '.'"
            )
    return list(names)


def _flat(value: Any) -> list[Any]:
    """The arrays or paths in ``value`` (one, or a list / dict of them per input)."""
    if isinstance(value, Mapping):
        return [v for item in value.values() for v in _flat(item)]
    if isinstance(value, (list, tuple)) and all(_is_array(v) or v is None for v in value):
        return [v for v in value if v is not None]
    return [] if value is None else [value]


def _run_to_files(
    run: BatchFunction,
    blocks: Callable[[], Iterator[Block]],
    sidecar: dict[str, Any],
    store: resumable.Store,
    paths: Mapping[str, Path],
    targets: Any,
    per_sample_bytes: Callable[[int], int],
    net: _Net,
    progress: bool | None,
    method: str,
    count: int,
) -> None:
    """Verify the completed chunks, then compute and write the others; record them as checkpoints."""
    completed = int(sidecar["completed"])
    recorded: list[dict[str, Any]] = list(sidecar["chunks"])
    plan_record = sidecar["plan"]
    checkpoint = resumable.Checkpoint(store, paths["sidecar"], sidecar)
    worst = _Worst(method, net)
    done = 0  # samples of the chunks passed so far, in processing order
    bar = _progress(progress, count, completed)
    time_keys = net.time_keys()
    try:
        for number, (offset, chunk, block) in enumerate(
            _chunks(blocks(), plan_record["batch_size"], plan_record["memory_budget"] or 0, per_sample_bytes, net,
                    plan_record.get("max_batch", MAX_AUTO_BATCH))
        ):  # fmt: skip
            size = len(chunk.indices)
            rows = _gather(block, chunk)
            where = chunk.indices + offset
            if done < completed:
                _check_completed(recorded, number, rows, chunk, where, store, paths)
                done += size
                continue
            result = worst.run(run, rows, chunk, targets, where)
            outputs = store.put(where, net.parts(result), dict.fromkeys(time_keys, chunk.start))
            checkpoint.add(
                number, {"inputs": _rows_digest(rows), "outputs": outputs, "samples": size, "first": int(where[0])}
            )
            done += size
            bar.update(size)
        checkpoint.write()
    except OSError as exc:
        saved = checkpoint.write_quietly()
        if resumable.is_no_space(exc):
            raise resumable.no_space_while_writing(resumable.out_path(paths), saved, count) from exc
        raise
    except BaseException:
        checkpoint.write_quietly()  # an error or an interrupt keeps what is written (a SIGKILL cannot)
        raise
    finally:
        bar.close()
    worst.warn()


class _Worst:
    """Runs chunks with the per-call blow-up warning silenced; warns once for the worst sample."""

    def __init__(self, method: str, net: _Net) -> None:
        self.method = method
        self.net = net
        self.sample = -1
        self.error = -1.0

    def run(self, run: BatchFunction, rows: Block, chunk: Chunk, targets: Any, where: np.ndarray) -> tuple[Any, ...]:
        _check_finite(rows, chunk, where, self.net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TfLrpWarning)
            result = _run_chunk(run, rows, chunk, targets)
        relevance: Any = result[0] if isinstance(result[0], (tuple, list)) else np.asarray(result[0])
        scores, target, initial = (np.asarray(part) for part in result[1:4])
        explained = np.asarray(result[5]) if self.net.per_step else scores[np.arange(len(target)), target]
        found = conservation.worst_sample(self.method, relevance, explained, initial)
        if found is not None and not found[1] <= self.error:
            self.sample, self.error = int(where[found[0]]), found[1]
        return result

    def warn(self) -> None:
        if self.sample >= 0:
            conservation.warn(self.method, self.sample, self.error, stacklevel=5)  # the caller of explain_dataset


def _check_finite(rows: Block, chunk: Chunk, where: np.ndarray, net: _Net) -> None:
    """NaN or inf in a chunk's columns, reported at the index of the whole data set."""
    for name, x_all in zip(net.names, rows.xs, strict=True):
        x = x_all[:, chunk.start : chunk.stop]
        if x.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            row, column, *rest = (int(i) for i in np.argwhere(bad)[0])
            index = (int(where[row]), column + chunk.start, *rest)
            label = f"x[{name!r}]" if net.multi else "x"
            raise InputError(
                f"{label} contains NaN or infinite values (first at index {index}); clean or impute them before "
                "explaining"
            )


def _input_files(*sources: Any) -> list[Path]:
    """The files the data comes from: paths, and the files behind memory-mapped arrays."""
    files = []
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            files.append(Path(source))
            continue
        array = source
        while isinstance(array, np.ndarray):
            filename = getattr(array, "filename", None) if isinstance(array, np.memmap) else None
            if filename:
                files.append(Path(filename))
                break
            array = array.base
    return files


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size == "auto" or batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be 'auto' or a positive int; got {batch_size!r}")
    return int(batch_size)


def _check_array(data: Any, rank: int, feature_shape: tuple[int, ...], label: str = "data") -> np.ndarray:
    try:
        array = data if isinstance(data, np.ndarray) else np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label} cannot be read as an array ({exc})") from exc
    what = "(batch, time) token ids" if not feature_shape else f"(batch, time, {feature_shape[0]}) features"
    if array.ndim != rank or tuple(array.shape[2:]) != feature_shape:
        hint = " (one batch of a stream? pass a list of batches)" if array.ndim == rank + 1 else ""
        raise InputError(f"{label} must be {what} for this network; got shape {array.shape}{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{label} is empty: shape {array.shape}")
    return array


def _check_block(block: Block, infos: Sequence[InputInfo], where: str) -> Block:
    """Check each input's array and its lengths / mask; the inputs must agree on the batch size."""
    multi = len(infos) > 1
    xs = tuple(
        _check_array(x, info.rank, info.feature_shape, f"data[{info.name!r}]" if multi else "data")
        for x, info in zip(block.xs, infos, strict=True)
    )
    checked = Block(xs, block.lengths, block.masks)
    if len({x.shape[0] for x in xs}) > 1:
        raise InputError(f"{where}: the inputs have different batch sizes {[x.shape[0] for x in xs]}; they must agree")
    for k, info in enumerate(infos):
        _check_block_masks(checked, k, f"{where} (input {info.name!r})" if multi else where)
    return checked


def _check_block_masks(block: Block, k: int, where: str) -> None:
    count, steps = block.xs[k].shape[:2]
    lengths, mask = block.lengths[k], block.masks[k]
    if lengths is not None and mask is not None:
        raise InputError(f"{where}: pass either lengths or mask, not both")
    if lengths is not None:
        if lengths.shape != (count,) or lengths.dtype.kind not in "iu":
            raise InputError(
                f"{where}: lengths must be ({count},) integers; got shape {lengths.shape}, {lengths.dtype}"
            )
        if count and (lengths.min() < 1 or lengths.max() > steps):
            raise InputError(f"{where}: lengths must lie in [1, {steps}]; got min {lengths.min()}, max {lengths.max()}")
    if mask is not None and mask.shape != (count, steps):
        raise InputError(f"{where}: mask must have shape (batch, time) = {(count, steps)}; got {mask.shape}")


def _block_spans(block: Block, net: _Net) -> np.ndarray | None:
    if not net.crop:  # several inputs, per-step scores or a node reading padding: every chunk is full width
        return None
    steps = block.x.shape[1]
    lengths, mask = block.lengths[0], block.masks[0]
    if lengths is not None or mask is not None:
        return spans(steps, lengths, mask)
    if not net.inputs[0].mask_zero:
        return None
    rows = max(1, (1 << 26) // max(block.x.itemsize * steps, 1))  # read memmaps in pieces
    parts = [spans(steps, mask=np.asarray(block.x[i : i + rows]) != 0) for i in range(0, block.x.shape[0], rows)]
    return np.concatenate([p for p in parts if p is not None], axis=0)


def _chunks(
    blocks: Iterator[Block],
    batch_size: int | None,
    budget: int,
    per_sample_bytes: Callable[[int], int],
    net: _Net,
    max_batch: int | None = MAX_AUTO_BATCH,
) -> Iterator[tuple[int, Chunk, Block]]:
    offset = 0
    for number, raw in enumerate(blocks):
        block = _check_block(raw, net.inputs, f"batch {number}")
        window = _block_spans(block, net)
        quantum = JAX_WIDTH_QUANTUM if backend.name() == "jax" else 1
        for chunk in plan(block.count, block.steps, window, batch_size, per_sample_bytes, budget, quantum,
                          max_batch):  # fmt: skip
            yield offset, chunk, block
        offset += block.count


def _gather(block: Block, chunk: Chunk) -> Block:
    """The chunk's rows of the block, full width (read once from a memory map)."""
    return Block(
        tuple(np.asarray(x[chunk.indices]) for x in block.xs),
        tuple(None if v is None else np.asarray(v)[chunk.indices] for v in block.lengths),
        tuple(None if v is None else np.asarray(v)[chunk.indices] for v in block.masks),
    )


def _run_chunk(run: BatchFunction, rows: Block, chunk: Chunk, targets: Any) -> tuple[Any, ...]:
    target = targets[chunk.indices] if targets is not None and np.ndim(targets) == 1 else targets
    if len(rows.xs) > 1:  # never cropped (chunk.start == 0)
        return run(rows.xs, target, rows.masks, rows.lengths)
    columns = slice(chunk.start, chunk.stop)
    lengths = None if rows.lengths[0] is None else rows.lengths[0] - chunk.start
    mask = None if rows.masks[0] is None else rows.masks[0][:, columns]
    return run(rows.x[:, columns], target, mask, lengths)


def _rows_digest(rows: Block) -> str:
    """Hash of a chunk's inputs (values, dtype, shape, lengths and mask of each input)."""
    digest = hashlib.sha256()
    for k in range(len(rows.xs)):
        for part in (rows.xs[k], rows.lengths[k], rows.masks[k]):
            if part is None:
                digest.update(b"none")
            else:
                digest.update(f"{part.dtype.str}{part.shape}".encode())
                digest.update(np.ascontiguousarray(part).reshape(-1).view(np.uint8).data)  # no copy
    return digest.hexdigest()[:32]


def _check_completed(
    recorded: list[dict[str, Any]],
    number: int,
    rows: Block,
    chunk: Chunk,
    where: np.ndarray,
    store: resumable.Store,
    paths: Mapping[str, Path],
) -> None:
    """On resume, a completed chunk must be the recorded one: same samples, same inputs, same outputs."""
    sidecar = paths["sidecar"]
    entry = recorded[number] if number < len(recorded) else None
    if entry is None or (entry["samples"], entry["first"]) != (len(where), int(where[0])):
        raise InputError(
            f"cannot resume {str(sidecar)!r}: its chunk plan does not produce the chunks it records (chunk {number}); "
            "it was edited or damaged. Pass resume=False (--overwrite) to start over"
        )
    if entry["inputs"] != _rows_digest(rows):
        raise InputError(
            f"cannot resume {str(sidecar)!r}: the data changed since the recorded run; the {len(where)} "
            f"samples of completed chunk {number} (from sample {int(where[0])}) differ from the ones explained then. "
            "Pass resume=False (--overwrite) to start over"
        )
    if entry["outputs"] != store.digest(where):
        raise InputError(
            f"cannot resume: the output files of {str(resumable.out_path(paths))!r} changed since completed chunk "
            f"{number} "
            f"(samples from {int(where[0])}) was written: they were edited or damaged. "
            "Pass resume=False (--overwrite) to start over"
        )


def _measure(blocks: Iterator[Block], infos: Sequence[InputInfo]) -> tuple[int, tuple[int, ...]]:
    count, steps = 0, [0] * len(infos)
    for number, block in enumerate(blocks):
        checked = _check_block(block, infos, f"batch {number}")
        count += checked.count
        steps = [max(s, int(x.shape[1])) for s, x in zip(steps, checked.xs, strict=True)]
    return count, tuple(steps)


def _progress(progress: bool | None, total: int, initial: int = 0) -> Any:
    return progress_bar(progress, total, initial)  # tqdm.auto bar, or plain lines in logs


def _run_in_memory(
    run: BatchFunction,
    blocks: Iterator[Block],
    batch_size: int | None,
    budget: int,
    per_sample_bytes: Callable[[int], int],
    targets: Any,
    net: _Net,
    progress: bool | None,
    method: str,
    max_batch: int | None = MAX_AUTO_BATCH,
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    worst = _Worst(method, net)
    bar = _progress(progress, 0)
    try:
        current: tuple[int, _Sink] | None = None
        for offset, chunk, block in _chunks(blocks, batch_size, budget, per_sample_bytes, net, max_batch):
            if current is None or current[0] != offset:
                count, steps = block.count, [int(x.shape[1]) for x in block.xs]
                arrays = _allocate(net, count, steps)
                masked = [
                    lengths is not None or mask is not None or info.mask_zero
                    for lengths, mask, info in zip(block.lengths, block.masks, net.inputs, strict=True)
                ]
                masks = [np.zeros((count, t), bool) if m else None for m, t in zip(masked, steps, strict=True)]
                if net.multi:  # explain's masks, from the arguments or the model's Masking (None: no mask)
                    masks = [np.ones((count, t), bool) for t in steps]
                current = (offset, _Sink(net, arrays, masks))
                parts.append({**arrays, "masks": masks, "masked": current[1].seen})
                bar.total = offset + count
                bar.refresh()
            result = worst.run(run, _gather(block, chunk), chunk, targets, chunk.indices + offset)
            current[1].put(chunk.indices, chunk.start, chunk.stop, result)
            bar.update(len(chunk.indices))
    finally:
        bar.close()
    if not parts:
        raise InputError("the data set holds no samples")
    worst.warn()
    return _concatenate(parts, net)


def _concatenate(parts: list[dict[str, Any]], net: _Net) -> dict[str, Any]:
    """The blocks' results as one set of arrays (shorter blocks fill the leading columns)."""
    time_keys = net.time_keys()

    def widen(array: np.ndarray, steps: int) -> np.ndarray:
        pad = [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, pad)

    keys = [key for key in parts[0] if key not in ("masks", "masked")]
    result: dict[str, Any] = {}
    for key in keys:
        arrays = [p[key] for p in parts]
        if key in time_keys and len(parts) > 1:
            steps = max(a.shape[1] for a in arrays)
            arrays = [widen(a, steps) for a in arrays]
        result[key] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    masks: list[np.ndarray | None] = []
    for k in range(len(net.inputs)):
        pieces = [p["masks"][k] for p in parts]
        if any(m is None for m in pieces):
            masks.append(None)
            continue
        steps = max(m.shape[1] for m in pieces)
        masks.append(pieces[0] if len(pieces) == 1 else np.concatenate([widen(m, steps) for m in pieces]))
    if not net.multi:
        result["mask"] = masks[0]
    else:
        masked = any(p["masked"][0] for p in parts)
        result["mask"] = tuple(masks) if masked else None
    return result


def _allocate(net: _Net, count: int, steps: Sequence[int]) -> dict[str, np.ndarray]:
    """Zeroed result arrays in memory (files go through :mod:`tf_lrp.resumable`)."""
    return {key: np.zeros(shape, dtype=dtype) for key, (shape, dtype) in net.shapes(count, steps).items()}


def _open_output(
    paths: Mapping[str, Path],
    arguments: dict[str, Any],
    shapes: Mapping[str, tuple[tuple[int, ...], str]],
    plan_record: dict[str, Any],
    resume: bool,
) -> tuple[dict[str, Any], resumable.Store]:
    """Under the lock: the recorded run to continue (verified), or a new one (allocated)."""
    sidecar_path = paths["sidecar"]
    plan = resumable.file_plan(paths, shapes)
    if resume and sidecar_path.exists():
        previous = resumable.read_sidecar(sidecar_path)
        resumable.compare_arguments(previous["arguments"], arguments, sidecar_path)
        if previous["completed"] > 0:
            return previous, resumable.Store.reopen(paths, plan, previous["files"])
    elif resume:
        existing = [paths[key] for key in resumable.array_keys(paths) if os.path.lexists(paths[key])]
        if existing:
            raise InputError(
                f"{str(existing[0])!r} exists but has no sidecar {str(sidecar_path)!r}, so it cannot be resumed; "
                "pass resume=False (--overwrite) to replace it"
            )
    sidecar = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "arguments": arguments,
        "plan": plan_record,
        "files": plan,
        "samples": int(shapes["targets"][0][0]),
        "completed": 0,
        "chunks": [],
    }
    needed = resumable.check_space(paths, plan)  # before anything is written
    try:  # the new record first: from here on, no older record claims rows of the files being replaced
        resumable.write_sidecar(sidecar_path, sidecar)
    except OSError as exc:
        if resumable.is_no_space(exc):
            raise resumable.no_space(resumable.out_path(paths), needed) from exc
        raise
    return sidecar, resumable.Store.create(paths, plan)


def _describe_targets(targets: Any) -> Any:
    if targets is None:
        return "predicted"
    if np.ndim(targets) == 0:
        return int(targets)
    array = np.ascontiguousarray(targets)
    return "sha256:" + hashlib.sha256(array.astype(np.int64).tobytes()).hexdigest()[:16]


def _digest(block: Block, count: int, steps: Sequence[int]) -> dict[str, Any]:
    """Recognise the data again: shape, dtype, and a hash of the first and last rows and of the masks.

    ``steps`` and ``dtype`` are lists (one entry per input) for a network with several inputs.
    """
    ends = Block(
        tuple(np.concatenate([x[:_DIGEST_ROWS], x[-_DIGEST_ROWS:]]) for x in block.xs), block.lengths, block.masks
    )
    digest = _rows_digest(ends)[:16]
    if len(block.xs) == 1:
        return {"samples": int(count), "steps": int(steps[0]), "dtype": str(block.x.dtype), "sha256": digest}
    dtypes = [str(x.dtype) for x in block.xs]
    return {"samples": int(count), "steps": [int(t) for t in steps], "dtype": dtypes, "sha256": digest}


__all__ = [
    "MAX_AUTO_BATCH",
    "InputInfo",
    "OutputFiles",
    "available_memory",
    "default_budget",
    "explain_dataset",
    "plan",
    "spans",
]
