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
  relevance, so removing columns that are masked in *every* sample of a chunk changes nothing.
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
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
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

#: ``run(x, target, mask, lengths) -> (relevance, scores, target, initial_state, mask)``.
BatchFunction = Callable[[np.ndarray, Any, "np.ndarray | None", "np.ndarray | None"], tuple[Any, ...]]


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


@dataclass
class Block:
    """A piece of the data set: the whole array, or one batch of a stream."""

    x: np.ndarray
    lengths: np.ndarray | None = None
    mask: np.ndarray | None = None


def _open_path(path: Path) -> Block:
    if not path.is_file():
        raise InputError(f"data file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        arrays = _io.load_npz(path)
        if "x" not in arrays:
            raise InputError(f"{str(path)!r} has no array 'x' (keys: {sorted(arrays)}); store the inputs as x=")
        return Block(arrays["x"], arrays.get("lengths"), arrays.get("mask"))
    with open(path, "rb") as handle:
        if handle.read(4) == b"PK\x03\x04":
            raise InputError(f"{str(path)!r} holds several arrays; pass an .npy file or an .npz with key 'x'")
    return Block(_io.load_npy(path, mmap=True))


def _as_block(item: Any, where: str) -> Block:
    """One element of a stream: an array, ``(x, lengths)`` / ``(x, lengths, mask)`` or a dict."""
    if isinstance(item, Mapping):
        if "x" not in item:
            raise InputError(f"{where} is a dict without key 'x' (keys: {sorted(item)})")
        return Block(np.asarray(item["x"]), _optional(item.get("lengths")), _optional(item.get("mask")))
    if isinstance(item, tuple):
        if not 1 <= len(item) <= 3:
            raise InputError(f"{where} is a tuple of {len(item)}; expected (x,), (x, lengths) or (x, lengths, mask)")
        parts = [*item, None, None][:3]
        return Block(np.asarray(parts[0]), _optional(parts[1]), _optional(parts[2]))
    return Block(np.asarray(item))


def _optional(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def _is_stream(data: Any) -> bool:
    return not isinstance(data, (np.ndarray, str, os.PathLike, Mapping)) and (
        hasattr(data, "as_numpy_iterator") or isinstance(data, Iterable)
    )


def _stream(data: Any) -> Iterator[Block]:
    items = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else iter(data)
    for number, item in enumerate(items):
        yield _as_block(item, f"batch {number} of the data")


# --------------------------------------------------------------------------------------------
# The driver


@dataclass(frozen=True)
class OutputFiles:
    """Where :func:`explain_dataset` wrote its results (``out=`` given)."""

    relevance: Path
    scores: Path
    targets: Path
    initial_state_relevance: Path
    sidecar: Path
    samples: int
    resumed_from: int

    def load(self) -> dict[str, np.ndarray]:
        """The four arrays, memory-mapped read-only.

        Returns:
            ``relevance``, ``scores``, ``targets`` and ``initial_state_relevance`` by name.
        """
        return {
            name: np.load(getattr(self, name), mmap_mode="r", allow_pickle=False)
            for name in ("relevance", "scores", "targets", "initial_state_relevance")
        }


class _Sink:
    """Where chunk results go in memory (files: :class:`tf_lrp.resumable.Store`)."""

    def __init__(self, arrays: dict[str, np.ndarray], mask: np.ndarray | None) -> None:
        self.arrays = arrays
        self.mask = mask

    def put(self, indices: np.ndarray, start: int, stop: int, result: tuple[Any, ...]) -> None:
        relevance, scores, target, initial, mask = result
        self.arrays["relevance"][indices, start:stop] = relevance
        self.arrays["scores"][indices] = scores
        self.arrays["targets"][indices] = target
        self.arrays["initial_state_relevance"][indices] = initial
        if self.mask is not None and mask is not None:
            self.mask[indices, start:stop] = mask


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
) -> dict[str, Any] | OutputFiles:
    """Explain a data set chunk by chunk (see the module docstring).

    Args:
        run: the batch function ``run(x, target, mask, lengths)`` returning
            ``(relevance, scores, target, initial_state_relevance, mask)`` for one chunk.
        data: array, memmap, ``.npy`` / ``.npz`` path, ``tf.data.Dataset`` or iterable of batches.
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
        lengths: (N,) valid lengths of post-padded data (arrays and paths only).
        mask: (N, T) bool mask (arrays and paths only).
        progress: True: a tqdm bar; False: none; None: a bar on a terminal or in a notebook, a plain line every
            30 s otherwise (logs, CI).
        memory_budget: bytes per chunk for ``batch_size="auto"``; None: a fraction of the free
            memory of the accelerator in use, else of the available host memory (:func:`default_budget`).
        resume: continue a run recorded in ``out``'s sidecar; False starts over.

    Returns:
        With ``out=None`` a dict of arrays (``relevance`` (N, T, D), ``scores`` (N, C),
        ``targets`` (N,), ``initial_state_relevance`` (N,), ``mask`` (N, T) or None); else
        the :class:`OutputFiles`.

    Raises:
        InputError: for invalid arguments or data; when ``out`` holds a run of another model,
            other arguments or other data, or files that changed since they were written (pass
            ``resume=False`` to start over); when ``out`` or a companion file is an input file;
            when another process is writing ``out``; when the disk is full.

    Warns:
        TfLrpWarning: once, naming the worst sample, when relevance blows up (see
            :mod:`tf_lrp.conservation`).
    """
    fixed = _check_batch_size(batch_size)
    if memory_budget is not None and (
        isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)) or memory_budget <= 0
    ):
        raise InputError(f"memory_budget must be a positive number of bytes or None; got {memory_budget!r}")
    inputs = _input_files(data, lengths, mask)
    if isinstance(data, (str, os.PathLike)):
        data = _open_path(Path(data))
        lengths = data.lengths if lengths is None else lengths
        mask = data.mask if mask is None else mask
        data = data.x
    rank = 2 + len(feature_shape)
    if _is_stream(data):
        if lengths is not None or mask is not None:
            raise InputError("with a stream of batches, put lengths/mask into each batch (dicts or tuples)")
        if targets is not None and not isinstance(targets, (int, np.integer)):
            raise InputError("with a stream of batches, targets must be None or one int")
        blocks: Callable[[], Iterator[Block]] = lambda: _stream(data)  # noqa: E731
        one_shot = not hasattr(data, "as_numpy_iterator") and iter(data) is data
        if out is not None and one_shot:
            raise InputError(
                "out= needs to know the data set's size first, and a one-shot iterator (a generator) can only "
                "be read once: pass a list of batches, a tf.data.Dataset or an array/.npy file"
            )
        count, steps = _measure(blocks(), rank, feature_shape) if out is not None else (0, 0)
    else:
        array = _check_array(data, rank, feature_shape)
        block = Block(array, _optional(lengths), _optional(mask))
        _check_block_masks(block, "the data")
        blocks = lambda: iter([block])  # noqa: E731
        count, steps = array.shape[0], array.shape[1]
        if targets is not None and np.ndim(targets) == 1 and np.shape(targets)[0] != count:
            raise InputError(f"targets must be None, an int or ({count},) integers; got shape {np.shape(targets)}")
    budget = int(memory_budget) if memory_budget is not None else default_budget()
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
            run, blocks(), fixed, budget, per_sample_bytes, targets, mask_zero, rank, feature_shape,
            features, output_dtype, num_outputs, progress, method, max_batch,
        )  # fmt: skip
    paths = output_paths(out)
    if count == 0:
        raise InputError("the data set holds no samples")
    resumable.check_not_inputs(paths, inputs)
    if not paths["sidecar"].parent.is_dir():
        raise InputError(
            f"cannot write {str(paths['relevance'])!r}: directory {str(paths['sidecar'].parent)!r} does not exist"
        )
    first = next(blocks())
    arguments["data"] = _digest(first, count, steps)
    arguments = json.loads(json.dumps(arguments))  # normalise (tuples -> lists) for comparison
    shapes = _output_shapes(count, steps, features, output_dtype, num_outputs)
    plan_record = {"batch_size": fixed, "memory_budget": budget, "max_batch": max_batch}
    with resumable.Lock(paths["lock"], paths["relevance"]):
        sidecar, store = _open_output(paths, arguments, shapes, plan_record, resume)
        try:
            _run_to_files(
                run, blocks, sidecar, store, paths, targets, per_sample_bytes, rank, feature_shape, mask_zero,
                progress, method, count,
            )  # fmt: skip
        finally:
            store.close()
    return OutputFiles(
        paths["relevance"], paths["scores"], paths["targets"], paths["initial_state_relevance"], paths["sidecar"],
        samples=count, resumed_from=int(sidecar["completed"]),
    )  # fmt: skip


def _run_to_files(
    run: BatchFunction,
    blocks: Callable[[], Iterator[Block]],
    sidecar: dict[str, Any],
    store: resumable.Store,
    paths: Mapping[str, Path],
    targets: Any,
    per_sample_bytes: Callable[[int], int],
    rank: int,
    feature_shape: tuple[int, ...],
    mask_zero: bool,
    progress: bool | None,
    method: str,
    count: int,
) -> None:
    """Verify the completed chunks, then compute and write the others; record them as checkpoints."""
    completed = int(sidecar["completed"])
    recorded: list[dict[str, Any]] = list(sidecar["chunks"])
    plan_record = sidecar["plan"]
    checkpoint = resumable.Checkpoint(store, paths["sidecar"], sidecar)
    worst = _Worst(method)
    done = 0  # samples of the chunks passed so far, in processing order
    bar = _progress(progress, count, completed)
    try:
        for number, (offset, chunk, block) in enumerate(
            _chunks(blocks(), plan_record["batch_size"], plan_record["memory_budget"], per_sample_bytes, rank,
                    feature_shape, mask_zero, plan_record.get("max_batch", MAX_AUTO_BATCH))
        ):  # fmt: skip
            size = len(chunk.indices)
            rows = _gather(block, chunk)
            where = chunk.indices + offset
            if done < completed:
                _check_completed(recorded, number, rows, chunk, where, store, paths)
                done += size
                continue
            result = worst.run(run, rows, chunk, targets, where)
            outputs = store.put(where, chunk.start, chunk.stop, result)
            checkpoint.add(
                number, {"inputs": _rows_digest(rows), "outputs": outputs, "samples": size, "first": int(where[0])}
            )
            done += size
            bar.update(size)
        checkpoint.write()
    except OSError as exc:
        saved = checkpoint.write_quietly()
        if resumable.is_no_space(exc):
            raise resumable.no_space_while_writing(paths["relevance"], saved, count) from exc
        raise
    except BaseException:
        checkpoint.write_quietly()  # an error or an interrupt keeps what is written (a SIGKILL cannot)
        raise
    finally:
        bar.close()
    worst.warn()


class _Worst:
    """Runs chunks with the per-call blow-up warning silenced; warns once for the worst sample."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.sample = -1
        self.error = -1.0

    def run(self, run: BatchFunction, rows: Block, chunk: Chunk, targets: Any, where: np.ndarray) -> tuple[Any, ...]:
        _check_finite(rows, chunk, where)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TfLrpWarning)
            result = _run_chunk(run, rows, chunk, targets)
        relevance, scores, target, initial = (np.asarray(part) for part in result[:4])
        found = conservation.worst_sample(
            self.method, relevance, scores[np.arange(len(target)), target], initial
        )
        if found is not None and not found[1] <= self.error:
            self.sample, self.error = int(where[found[0]]), found[1]
        return result

    def warn(self) -> None:
        if self.sample >= 0:
            conservation.warn(self.method, self.sample, self.error, stacklevel=5)  # the caller of explain_dataset


def _check_finite(rows: Block, chunk: Chunk, where: np.ndarray) -> None:
    """NaN or inf in a chunk's columns, reported at the index of the whole data set."""
    x = rows.x[:, chunk.start : chunk.stop]
    if x.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        row, column, *rest = (int(i) for i in np.argwhere(bad)[0])
        index = (int(where[row]), column + chunk.start, *rest)
        raise InputError(
            f"x contains NaN or infinite values (first at index {index}); clean or impute them before explaining"
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


def _check_array(data: Any, rank: int, feature_shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = data if isinstance(data, np.ndarray) else np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InputError(f"data cannot be read as an array ({exc})") from exc
    what = "(batch, time) token ids" if not feature_shape else f"(batch, time, {feature_shape[0]}) features"
    if array.ndim != rank or tuple(array.shape[2:]) != feature_shape:
        hint = " (one batch of a stream? pass a list of batches)" if array.ndim == rank + 1 else ""
        raise InputError(f"data must be {what} for this network; got shape {array.shape}{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"data is empty: shape {array.shape}")
    return array


def _check_block_masks(block: Block, where: str) -> None:
    count, steps = block.x.shape[:2]
    if block.lengths is not None and block.mask is not None:
        raise InputError(f"{where}: pass either lengths or mask, not both")
    if block.lengths is not None:
        if block.lengths.shape != (count,) or block.lengths.dtype.kind not in "iu":
            raise InputError(
                f"{where}: lengths must be ({count},) integers; got shape {block.lengths.shape}, {block.lengths.dtype}"
            )
        if count and (block.lengths.min() < 1 or block.lengths.max() > steps):
            raise InputError(
                f"{where}: lengths must lie in [1, {steps}]; got min {block.lengths.min()}, max {block.lengths.max()}"
            )
    if block.mask is not None and block.mask.shape != (count, steps):
        raise InputError(f"{where}: mask must have shape (batch, time) = {(count, steps)}; got {block.mask.shape}")


def _block_spans(block: Block, mask_zero: bool) -> np.ndarray | None:
    steps = block.x.shape[1]
    if block.lengths is not None or block.mask is not None:
        return spans(steps, block.lengths, block.mask)
    if not mask_zero:
        return None
    rows = max(1, (1 << 26) // max(block.x.itemsize * steps, 1))  # read memmaps in pieces
    parts = [spans(steps, mask=np.asarray(block.x[i : i + rows]) != 0) for i in range(0, block.x.shape[0], rows)]
    return np.concatenate([p for p in parts if p is not None], axis=0)


def _chunks(
    blocks: Iterator[Block],
    batch_size: int | None,
    budget: int,
    per_sample_bytes: Callable[[int], int],
    rank: int,
    feature_shape: tuple[int, ...],
    mask_zero: bool,
    max_batch: int | None = MAX_AUTO_BATCH,
) -> Iterator[tuple[int, Chunk, Block]]:
    offset = 0
    for number, block in enumerate(blocks):
        _check_array(block.x, rank, feature_shape)
        _check_block_masks(block, f"batch {number}")
        window = _block_spans(block, mask_zero)
        quantum = JAX_WIDTH_QUANTUM if backend.name() == "jax" else 1
        for chunk in plan(block.x.shape[0], block.x.shape[1], window, batch_size, per_sample_bytes, budget, quantum,
                          max_batch):  # fmt: skip
            yield offset, chunk, block
        offset += block.x.shape[0]


def _gather(block: Block, chunk: Chunk) -> Block:
    """The chunk's rows of the block, full width (read once from a memory map)."""
    return Block(
        np.asarray(block.x[chunk.indices]),
        None if block.lengths is None else np.asarray(block.lengths)[chunk.indices],
        None if block.mask is None else np.asarray(block.mask)[chunk.indices],
    )


def _run_chunk(run: BatchFunction, rows: Block, chunk: Chunk, targets: Any) -> tuple[Any, ...]:
    columns = slice(chunk.start, chunk.stop)
    lengths = None if rows.lengths is None else rows.lengths - chunk.start
    mask = None if rows.mask is None else rows.mask[:, columns]
    target = targets[chunk.indices] if targets is not None and np.ndim(targets) == 1 else targets
    return run(rows.x[:, columns], target, mask, lengths)


def _rows_digest(rows: Block) -> str:
    """Hash of a chunk's inputs (values, dtype, shape, lengths and mask)."""
    digest = hashlib.sha256()
    for part in (rows.x, rows.lengths, rows.mask):
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
            f"cannot resume: the output files of {str(paths['relevance'])!r} changed since completed chunk {number} "
            f"(samples from {int(where[0])}) was written: they were edited or damaged. "
            "Pass resume=False (--overwrite) to start over"
        )


def _measure(blocks: Iterator[Block], rank: int, feature_shape: tuple[int, ...]) -> tuple[int, int]:
    count = steps = 0
    for block in blocks:
        _check_array(block.x, rank, feature_shape)
        count += block.x.shape[0]
        steps = max(steps, block.x.shape[1])
    return count, steps


def _progress(progress: bool | None, total: int, initial: int = 0) -> Any:
    return progress_bar(progress, total, initial)  # tqdm.auto bar, or plain lines in logs


def _run_in_memory(
    run: BatchFunction,
    blocks: Iterator[Block],
    batch_size: int | None,
    budget: int,
    per_sample_bytes: Callable[[int], int],
    targets: Any,
    mask_zero: bool,
    rank: int,
    feature_shape: tuple[int, ...],
    features: int,
    output_dtype: str,
    num_outputs: int,
    progress: bool | None,
    method: str,
    max_batch: int | None = MAX_AUTO_BATCH,
) -> dict[str, Any]:
    parts: list[dict[str, np.ndarray]] = []
    worst = _Worst(method)
    bar = _progress(progress, 0)
    try:
        current: tuple[int, dict[str, np.ndarray], _Sink] | None = None
        for offset, chunk, block in _chunks(blocks, batch_size, budget, per_sample_bytes, rank, feature_shape,
                                            mask_zero, max_batch):  # fmt: skip
            if current is None or current[0] != offset:
                count, steps = block.x.shape[:2]
                arrays = _allocate(count, steps, features, output_dtype, num_outputs)
                masked = block.lengths is not None or block.mask is not None or mask_zero
                current = (offset, arrays, _Sink(arrays, np.zeros((count, steps), bool) if masked else None))
                parts.append(arrays)
                if current[2].mask is not None:
                    arrays["mask"] = current[2].mask
                bar.total = offset + count
                bar.refresh()
            result = worst.run(run, _gather(block, chunk), chunk, targets, chunk.indices + offset)
            current[2].put(chunk.indices, chunk.start, chunk.stop, result)
            bar.update(len(chunk.indices))
    finally:
        bar.close()
    if not parts:
        raise InputError("the data set holds no samples")
    worst.warn()
    return _concatenate(parts)


def _concatenate(parts: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    if len(parts) == 1:
        return {"mask": None, **parts[0]}
    steps = max(p["relevance"].shape[1] for p in parts)

    def widen(array: np.ndarray) -> np.ndarray:
        pad = [(0, 0), (0, steps - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, pad)

    result = {
        key: np.concatenate([widen(p[key]) if key == "relevance" else p[key] for p in parts])
        for key in ("relevance", "scores", "targets", "initial_state_relevance")
    }
    if all("mask" in p for p in parts):
        result["mask"] = np.concatenate([widen(p["mask"]) for p in parts])
    else:
        result["mask"] = None  # type: ignore[assignment]
    return result


def _output_shapes(
    count: int, steps: int, features: int, output_dtype: str, num_outputs: int
) -> dict[str, tuple[tuple[int, ...], str]]:
    return {
        "relevance": ((count, steps, features), output_dtype),
        "scores": ((count, num_outputs), output_dtype),
        "targets": ((count,), "int64"),
        "initial_state_relevance": ((count,), output_dtype),
    }


def _allocate(count: int, steps: int, features: int, output_dtype: str, num_outputs: int) -> dict[str, np.ndarray]:
    """Zeroed result arrays in memory (files go through :mod:`tf_lrp.resumable`)."""
    shapes = _output_shapes(count, steps, features, output_dtype, num_outputs)
    return {key: np.zeros(shape, dtype=dtype) for key, (shape, dtype) in shapes.items()}


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
        existing = [paths[key] for key in resumable.OUTPUTS if os.path.lexists(paths[key])]
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
            raise resumable.no_space(paths["relevance"], needed) from exc
        raise
    return sidecar, resumable.Store.create(paths, plan)


def _describe_targets(targets: Any) -> Any:
    if targets is None:
        return "predicted"
    if np.ndim(targets) == 0:
        return int(targets)
    array = np.ascontiguousarray(targets)
    return "sha256:" + hashlib.sha256(array.astype(np.int64).tobytes()).hexdigest()[:16]


def _digest(block: Block, count: int, steps: int) -> dict[str, Any]:
    """Recognise the data again: shape, dtype, and a hash of the first and last rows and of the masks."""
    x = block.x
    ends = Block(np.concatenate([x[:_DIGEST_ROWS], x[-_DIGEST_ROWS:]]), block.lengths, block.mask)
    return {"samples": int(count), "steps": int(steps), "dtype": str(x.dtype), "sha256": _rows_digest(ends)[:16]}


__all__ = ["MAX_AUTO_BATCH", "OutputFiles", "available_memory", "default_budget", "explain_dataset", "plan", "spans"]
