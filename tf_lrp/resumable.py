"""The resumable output of ``explain_dataset``: one writer, preallocated files, a verified record.

For ``out="rel.npy"`` a run writes ``rel.npy`` (relevance), ``rel.scores.npy``,
``rel.targets.npy``, ``rel.initial_state.npy``, the sidecar ``rel.json`` and, while it runs, the
lock file ``rel.lock``. A network with several inputs writes ``rel.relevance.<input>.npy`` per
input instead of ``rel.npy``; one with per-step outputs adds ``rel.explained.npy``. The
guarantees (``docs/dataset.md`` states them for users):

* **Nothing is written over an input.** Every file the run will write is compared with the
  data's file (``os.path.samefile``, so links are seen through) before anything is written,
  with or without ``resume=False``.
* **One writer.** A run holds an exclusive ``fcntl.flock`` on the lock file for its whole life;
  a second run on the same output is refused ("OUT is being written by process N"), also with
  ``resume=False``. The lock file is removed when the run ends; one left by a killed run is
  taken over.
* **Space first.** The files are allocated in full (``os.posix_fallocate``) before the first
  chunk, so a full disk is an error before any work, never a crash halfway (rows are written
  with ``os.pwrite``, not through a memory map, so no write can raise SIGBUS).
* **Durable before recorded.** The files are ``fsync``-ed, and only then is the sidecar, which
  records chunks as complete, replaced atomically (and its directory ``fsync``-ed). That
  happens at most every :data:`CHECKPOINT_SECONDS`, at the end, and when the run fails: a crash
  that kills the process or a power loss costs at most that much work plus the chunk being
  computed, never a recorded chunk.
* **Verified on resume.** The sidecar must match its JSON schema and its checksum (so a hand
  edit is caught, not mistaken for changed data); each file's header, dtype, shape and exact
  size must match the recorded plan; and each completed chunk's rows must still hash to the
  digests recorded when the chunk was written (its inputs and its outputs).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from . import _io
from .errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None  # type: ignore[assignment]

#: The four array files of a one-input network, in the order their bytes enter a chunk's output digest.
#: A network with several inputs writes ``relevance/<input name>`` per input instead of ``relevance``;
#: one with per-step outputs adds ``explained`` (see :func:`output_paths`).
OUTPUTS = ("relevance", "scores", "targets", "initial_state_relevance")
#: Keys of :func:`output_paths` that are not array files.
_NOT_ARRAYS = ("sidecar", "lock")
SIDECAR_FORMAT = "tf_lrp.explain_dataset"
SIDECAR_VERSION = 3
#: The first line of a lock file (a file there without it is not ours and is never touched).
LOCK_MAGIC = "tf_lrp explain_dataset lock"
#: Completed chunks are recorded (files synced, sidecar replaced) at most this often, and at the end
#: and on errors: a crash that kills the process (SIGKILL, power loss) costs at most this much work
#: plus the chunk being computed.
CHECKPOINT_SECONDS = 1.0
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_OVERWRITE = "pass resume=False (--overwrite) to start over"

_DIGEST = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_COUNT = {"type": "integer", "minimum": 0}
_FILE_SCHEMA = {
    "type": "object",
    "required": ["name", "descr", "shape", "offset", "bytes"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "descr": {"type": "string"},
        "shape": {"type": "array", "items": _COUNT},
        "offset": _COUNT,
        "bytes": _COUNT,
    },
}
#: The JSON schema of the sidecar; a record that fails it is refused (never half-trusted).
SIDECAR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "version", "arguments", "plan", "files", "samples", "completed", "chunks", "checksum"],
    "additionalProperties": False,
    "properties": {
        "format": {"const": SIDECAR_FORMAT},
        "version": {"const": SIDECAR_VERSION},
        "arguments": {"type": "object"},
        "plan": {
            "type": "object",
            "required": ["batch_size", "memory_budget"],
            "additionalProperties": False,
            "properties": {
                "batch_size": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
                # None: a fixed batch size without a budget (none is needed)
                "memory_budget": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
                # the cap of an auto-sized chunk (None: none, on an accelerator); older records: 1024
                "max_batch": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
            },
        },
        "files": {
            "type": "object",
            "required": list(OUTPUTS[1:]),
            "propertyNames": {
                "pattern": "^(relevance(/[A-Za-z0-9_.-]+)?|scores|targets|initial_state_relevance|explained)$"
            },
            "additionalProperties": _FILE_SCHEMA,
        },
        "samples": {"type": "integer", "minimum": 1},
        "completed": _COUNT,
        "chunks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["inputs", "outputs", "samples", "first"],
                "additionalProperties": False,
                "properties": {"inputs": _DIGEST, "outputs": _DIGEST, "samples": _COUNT, "first": _COUNT},
            },
        },
        "checksum": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}


# --------------------------------------------------------------------------------------------
# Paths


def output_paths(
    out: str | os.PathLike[str], inputs: Sequence[str] | None = None, explained: bool = False
) -> dict[str, Path]:
    """The files written for ``out="relevances.npy"`` (relevance, scores, ..., sidecar, lock).

    Args:
        out: the ``.npy`` path that names the run.
        inputs: None for a network with one input (its relevance goes to ``out``); else the
            input names, and input ``a``'s relevance goes to ``<stem>.relevance.a.npy`` under the
            key ``relevance/a`` (``out`` itself is then not written).
        explained: add ``<stem>.explained.npy`` (per-step outputs: the explained score per sample).

    Returns:
        Array keys in the order their bytes enter a chunk's digest, then ``sidecar`` and ``lock``.
    """
    path = Path(out)
    if path.suffix != ".npy":
        raise InputError(f"out must name an .npy file (e.g. 'relevances.npy'); got {str(path)!r}")
    stem = path.with_suffix("")
    relevance = (
        {"relevance": path} if inputs is None else {f"relevance/{n}": Path(f"{stem}.relevance.{n}.npy") for n in inputs}
    )
    return {
        **relevance,
        "scores": Path(f"{stem}.scores.npy"),
        "targets": Path(f"{stem}.targets.npy"),
        "initial_state_relevance": Path(f"{stem}.initial_state.npy"),
        **({"explained": Path(f"{stem}.explained.npy")} if explained else {}),
        "sidecar": Path(f"{stem}.json"),
        "lock": Path(f"{stem}.lock"),
    }


def array_keys(paths: Mapping[str, Path]) -> list[str]:
    """The keys of :func:`output_paths` that are array files, in digest order."""
    return [key for key in paths if key not in _NOT_ARRAYS]


def out_path(paths: Mapping[str, Path]) -> Path:
    """The ``out`` path that names the run (its ``.npy`` name; not written for several inputs)."""
    return paths["sidecar"].with_suffix(".npy")


def check_not_inputs(paths: Mapping[str, Path], inputs: Sequence[Path]) -> None:
    """Refuse a run any of whose files is one of its input files (links seen through).

    Raises:
        InputError: naming the output file and the input it would destroy.
    """
    for path in paths.values():
        for source in inputs:
            with contextlib.suppress(OSError):  # a missing file is nobody's input
                if os.path.samefile(path, source):
                    raise InputError(
                        f"the output file {str(path)!r} is the input data {str(source)!r}: writing it would destroy "
                        "the data; choose another output name (-o / out=). This is refused even with --overwrite"
                    )


# --------------------------------------------------------------------------------------------
# The lock


class Lock:
    """An exclusive ``fcntl.flock`` on ``path`` for a ``with`` block; the file names its holder.

    Args:
        path: the lock file (``OUT.lock``).
        out: the output it protects (named in errors).
    """

    def __init__(self, path: Path, out: Path) -> None:
        self.path = path
        self.out = out
        self._fd: int | None = None

    def __enter__(self) -> Lock:
        if fcntl is not None:
            self._fd = self._acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still holding it: a waiting writer sees an unlinked file and retries
            os.close(self._fd)
            self._fd = None

    def _acquire(self) -> int:
        for _ in range(100):
            self._refuse_foreign()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder, stale = _holder(fd), _unlinked(fd, self.path)
                os.close(fd)
                if stale:  # the holder finished and removed it between our open and our flock
                    continue
                raise InputError(
                    f"{str(self.out)!r} is being written by {holder}: wait for that run to finish or stop it "
                    "(a second writer is refused, even with --overwrite)"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            if _unlinked(fd, self.path):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{LOCK_MAGIC}\npid {os.getpid()}\n".encode(), 0)
            return fd
        raise InputError(f"could not lock {str(self.path)!r}: other runs keep replacing it")  # pragma: no cover

    def _refuse_foreign(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(len(LOCK_MAGIC))
        except FileNotFoundError:
            return
        if head and head != LOCK_MAGIC.encode():
            raise InputError(
                f"{str(self.path)!r} exists and is not a tf_lrp lock file; a run on {str(self.out)!r} locks that "
                "name while it writes: move the file away or choose another output name"
            )


def _holder(fd: int) -> str:
    text = os.pread(fd, 256, 0).decode("ascii", "replace")
    for line in text.splitlines():
        if line.startswith("pid ") and line[4:].strip().isdigit():
            return f"process {int(line[4:])}"
    return "another process"


def _unlinked(fd: int, path: Path) -> bool:
    """Whether ``path`` no longer names the file open as ``fd``."""
    held = os.fstat(fd)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return True
    return (held.st_dev, held.st_ino) != (current.st_dev, current.st_ino)


# --------------------------------------------------------------------------------------------
# Space


def _device(path: Path) -> str:
    """The mount point that holds ``path``."""
    current = path.resolve()
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


def _free_bytes(directory: Path) -> int | None:
    try:
        stats = os.statvfs(directory)
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        return None
    return int(stats.f_bavail) * int(stats.f_frsize)


def no_space(out: Path, needed: int) -> InputError:
    """The one-line error for a full disk before a run starts."""
    free = _free_bytes(out.parent)
    available = "" if free is None else f", {free:,} available"
    return InputError(
        f"no space left on {_device(out.parent)} for {str(out)!r}: {needed:,} bytes needed{available}; "
        "free space or write elsewhere (-o / out=)"
    )


def no_space_while_writing(out: Path, done: int, count: int) -> InputError:
    """The one-line error for a disk that filled up during a run (what is complete is kept)."""
    return InputError(
        f"no space left on {_device(out.parent)} while writing {str(out)!r}: {done} of {count} samples are "
        "complete and kept; free space and resume (resume=True, tf-lrp explain --resume)"
    )


def is_no_space(exc: OSError) -> bool:
    """Whether an ``OSError`` means the disk (or the quota) is full."""
    return exc.errno in _NO_SPACE


# --------------------------------------------------------------------------------------------
# The sidecar


def _checksum(payload: Mapping[str, Any]) -> str:
    body = {key: value for key, value in payload.items() if key != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_sidecar(path: Path, payload: Mapping[str, Any]) -> None:
    """Write the sidecar atomically, with its checksum: one line per key (fast: numpy-free C JSON encoder)."""
    record = {**payload, "checksum": _checksum(payload)}
    lines = [f"  {json.dumps(key)}: {json.dumps(record[key], sort_keys=True)}" for key in sorted(record)]
    with _io.atomic_write(path, "w") as handle:
        handle.write("{\n" + ",\n".join(lines) + "\n}\n")


class Checkpoint:
    """Records completed chunks in the sidecar: after syncing the files, at most every :data:`CHECKPOINT_SECONDS`.

    Args:
        store: the open files.
        path: the sidecar.
        sidecar: the record so far (``completed`` and ``chunks`` are replaced on each write).
    """

    def __init__(self, store: Store, path: Path, sidecar: Mapping[str, Any]) -> None:
        self.store = store
        self.path = path
        self.sidecar = dict(sidecar)
        self.saved = int(sidecar["completed"])
        self.done = self.saved
        self.chunks: list[dict[str, Any]] = list(sidecar["chunks"])
        self._last = time.monotonic()

    def add(self, number: int, entry: dict[str, Any]) -> None:
        """Chunk ``number`` (in processing order) is written; record it when the interval has passed."""
        self.chunks[number:] = [entry]
        self.done += entry["samples"]
        if time.monotonic() - self._last >= CHECKPOINT_SECONDS:
            self.write()

    def write(self) -> None:
        """Sync the files, then record everything written so far."""
        if self.done == self.saved:
            return
        self.store.sync()
        write_sidecar(self.path, {**self.sidecar, "completed": self.done, "chunks": self.chunks})
        self.saved = self.done
        self._last = time.monotonic()

    def write_quietly(self) -> int:
        """On the way out of a failed run: record what is written if the disk lets us; return what is recorded."""
        with contextlib.suppress(OSError):
            self.write()
        return self.saved


def read_sidecar(path: Path) -> dict[str, Any]:
    """Read, schema-check and checksum-check a sidecar.

    Raises:
        InputError: unreadable, not JSON, another format or version, against the schema, or
            edited (checksum); each names the file and the fix.
    """
    where = f"cannot resume {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
        record = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{where}: it is not readable JSON ({exc}); it is damaged: {_OVERWRITE}") from exc
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        raise InputError(f"{where}: it is not a tf_lrp explain_dataset record; {_OVERWRITE}")
    if record.get("version") != SIDECAR_VERSION:
        raise InputError(
            f"cannot resume: {str(path)!r} is a version {record.get('version')!r} record and this tf_lrp writes "
            f"version {SIDECAR_VERSION}; {_OVERWRITE}"
        )
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SIDECAR_SCHEMA).iter_errors(record))
    if error is not None:
        at = "/".join(str(part) for part in error.absolute_path) or "the record"
        raise InputError(f"{where}: it was edited or damaged ({at}: {error.message}); {_OVERWRITE}")
    if record["checksum"] != _checksum(record):
        raise InputError(f"{where}: it was edited or damaged (its checksum does not match its contents); {_OVERWRITE}")
    if not text.endswith("}\n"):  # write_sidecar ends every record so: anything shorter is cut off
        raise InputError(f"{where}: it is truncated (it does not end as written); it is damaged: {_OVERWRITE}")
    recorded = sum(chunk["samples"] for chunk in record["chunks"])
    if recorded != record["completed"] or record["completed"] > record["samples"]:
        raise InputError(
            f"{where}: it records {record['completed']} completed samples but chunks of {recorded} "
            f"(of {record['samples']}); {_OVERWRITE}"
        )
    return record


def compare_arguments(previous: Mapping[str, Any], current: Mapping[str, Any], where: Path) -> None:
    """Refuse to resume a run recorded with another model, other arguments or other data."""
    differences = [
        f"{key}: recorded {previous.get(key)!r}, now {current.get(key)!r}"
        for key in sorted(set(previous) | set(current))
        if previous.get(key) != current.get(key)
    ]
    if differences:
        what = "another model" if any(d.startswith("fingerprint") for d in differences) else "other arguments or data"
        raise InputError(
            f"cannot resume {str(where)!r}: it records a run with {what} ({'; '.join(differences[:3])}); {_OVERWRITE}"
        )


# --------------------------------------------------------------------------------------------
# The files


def file_plan(paths: Mapping[str, Path], shapes: Mapping[str, tuple[tuple[int, ...], str]]) -> dict[str, Any]:
    """Per output: file name, dtype descr, shape, header length and exact size."""
    plan = {}
    for key in shapes:  # the digest order: relevance first, as output_paths lists them
        shape, dtype = shapes[key]
        header = _header(shape, dtype)
        nbytes = len(header) + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
        plan[key] = {"name": paths[key].name, "descr": descr, "shape": list(shape), "offset": len(header),
                     "bytes": nbytes}  # fmt: skip
    return plan


def _header(shape: Sequence[int], dtype: str) -> bytes:
    import io

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def check_space(paths: Mapping[str, Path], plan: Mapping[str, Any]) -> int:
    """The bytes the files need; refuses (before anything is written) when the disk cannot hold them."""
    out = out_path(paths)
    needed = sum(plan[key]["bytes"] for key in plan)
    reusable = sum(paths[key].stat().st_size for key in plan if paths[key].is_file())
    free = _free_bytes(out.parent)
    if free is not None and needed - reusable > free:
        raise no_space(out, needed)
    return needed


class Store:
    """The array files (four for a one-input network), open for ``pwrite``; chunks go in, digests come out.

    Args:
        paths: from :func:`output_paths`.
        plan: from :func:`file_plan`.
        fds: an open descriptor per output.
    """

    def __init__(self, paths: Mapping[str, Path], plan: Mapping[str, Any], fds: dict[str, int]) -> None:
        self.paths = paths
        self.plan = plan
        self.fds = fds

    @classmethod
    def create(cls, paths: Mapping[str, Path], plan: Mapping[str, Any]) -> Store:
        """Create (or truncate) the files and allocate them in full.

        Raises:
            InputError: when the disk cannot hold them (checked before any file is touched).
        """
        out = out_path(paths)
        needed = check_space(paths, plan)
        fds: dict[str, int] = {}
        try:
            for key in plan:
                fds[key] = fd = os.open(paths[key], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
                header = _header(plan[key]["shape"], plan[key]["descr"])
                _allocate(fd, plan[key]["bytes"])
                _pwrite_all(fd, header, 0)
            for fd in fds.values():
                os.fsync(fd)
            _io.fsync_directory(out.parent if str(out.parent) else ".")
        except OSError as exc:
            for fd in fds.values():
                os.close(fd)
            if is_no_space(exc):
                raise no_space(out, needed) from exc
            raise
        return cls(paths, plan, fds)

    @classmethod
    def reopen(cls, paths: Mapping[str, Path], plan: Mapping[str, Any], recorded: Mapping[str, Any]) -> Store:
        """Open the files of a recorded run after checking each against the plan.

        Raises:
            InputError: a file is missing, or its header, dtype, shape or size differ from the plan.
        """
        if set(recorded) != set(plan):
            raise InputError(
                f"cannot resume: the sidecar records the files {sorted(recorded)}, this run writes {sorted(plan)}; "
                f"{_OVERWRITE}"
            )
        fds: dict[str, int] = {}
        try:
            for key in plan:
                fds[key] = _reopen(paths[key], plan[key], recorded[key])
        except BaseException:
            for fd in fds.values():
                os.close(fd)
            raise
        return cls(paths, plan, fds)

    def close(self) -> None:
        """Close the files."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def sync(self) -> None:
        """``fsync`` every file (before the sidecar may record their rows as complete)."""
        for fd in self.fds.values():
            os.fsync(fd)

    def put(self, rows: np.ndarray, parts: Mapping[str, Any], columns: Mapping[str, int]) -> str:
        """Write one chunk's results at its (ascending) sample indices ``rows``; return their digest.

        Args:
            rows: (b,) ascending indices into the output.
            parts: per array key, the chunk's rows (``relevance`` (b, width, D), ``scores``
                (b, C), ``targets`` (b,), ``initial_state_relevance`` (b,), ...).
            columns: per key whose array may be narrower in time than its file (a cropped chunk,
                a shorter batch of a stream): the first column it goes to; the rest stays 0.

        Returns:
            The output digest of these rows (what :meth:`digest` reads back).
        """
        digest = hashlib.sha256()
        for key, spec in self.plan.items():
            dtype = np.dtype(spec["descr"])
            array = np.asarray(parts[key], dtype=dtype)
            if key in columns:
                full = np.zeros((len(rows), *spec["shape"][1:]), dtype=dtype)
                full[:, columns[key] : columns[key] + array.shape[1]] = array
                array = full
            array = np.ascontiguousarray(array).reshape(len(rows), *spec["shape"][1:])
            data = array.reshape(len(rows), -1).view(np.uint8)
            for first, last in _runs(rows):
                _pwrite_all(self.fds[key], data[first:last].tobytes(), spec["offset"] + int(rows[first]) * _row(spec))
            digest.update(data.tobytes())
        return digest.hexdigest()[:32]

    def digest(self, rows: np.ndarray) -> str:
        """The output digest of the rows ``rows`` as they are in the files now."""
        digest = hashlib.sha256()
        for key, spec in self.plan.items():
            size = _row(spec)
            for first, last in _runs(rows):
                length = (last - first) * size
                data = os.pread(self.fds[key], length, spec["offset"] + int(rows[first]) * size)
                if len(data) != length:  # pragma: no cover - sizes are checked on reopen
                    return ""
                digest.update(data)
        return digest.hexdigest()[:32]


def _row(spec: Mapping[str, Any]) -> int:
    return int(np.prod(spec["shape"][1:], dtype=np.int64)) * np.dtype(spec["descr"]).itemsize


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """``[first, last)`` positions of the runs of consecutive values in ascending ``rows``."""
    breaks = [0, *(np.flatnonzero(np.diff(rows) != 1) + 1).tolist(), len(rows)]
    return list(itertools.pairwise(breaks))


def _allocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes for ``fd`` (zero-filled); ENOSPC surfaces here, not later."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if is_no_space(exc):
            raise
        os.ftruncate(fd, size)  # a file system without fallocate: pwrite still reports a full disk
    except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
        os.ftruncate(fd, size)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _reopen(path: Path, spec: Mapping[str, Any], recorded: Mapping[str, Any]) -> int:
    damaged = f"it was changed or damaged since the run wrote it; {_OVERWRITE}"
    if dict(recorded) != dict(spec):
        raise InputError(
            f"cannot resume: the sidecar records {str(path)!r} as {recorded['shape']} {recorded['descr']}, this run "
            f"writes {spec['shape']} {spec['descr']}; {_OVERWRITE}"
        )
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        raise InputError(f"cannot resume: {str(path)!r} cannot be opened ({exc.strerror}); {_OVERWRITE}") from exc
    try:
        size = os.fstat(fd).st_size
        if size != spec["bytes"]:
            raise InputError(
                f"cannot resume: {str(path)!r} holds {size:,} bytes, the run allocated {spec['bytes']:,}; {damaged}"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            try:
                shape, dtype, fortran, _ = _io.read_npy_header(handle, repr(str(path)))
            except InputError as exc:
                raise InputError(f"cannot resume: {exc}; {damaged}") from exc
            offset = handle.tell()
            handle.seek(0)
            header = handle.read(offset)
        if (list(shape), np.lib.format.dtype_to_descr(dtype), fortran, offset) != (
            spec["shape"], spec["descr"], False, spec["offset"]
        ) or header != _header(spec["shape"], spec["descr"]):
            raise InputError(
                f"cannot resume: {str(path)!r} has a header for {shape} {dtype}, the run wrote {tuple(spec['shape'])} "
                f"{spec['descr']}; {damaged}"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


__all__ = [
    "CHECKPOINT_SECONDS",
    "OUTPUTS",
    "SIDECAR_SCHEMA",
    "Checkpoint",
    "Lock",
    "Store",
    "array_keys",
    "check_not_inputs",
    "check_space",
    "file_plan",
    "out_path",
    "output_paths",
    "read_sidecar",
    "write_sidecar",
]
