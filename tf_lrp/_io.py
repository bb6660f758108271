"""File input/output: strict loading of user files and crash-safe writes.

Files users hand us are data, never code: arrays are loaded with ``allow_pickle=False``, and
every ``.npy`` header (alone, or as a member of an ``.npz``) is read and checked before any
array is: a damaged, truncated or pickled file, or one whose arrays would not fit in memory
(a "zip bomb"), is refused with an :class:`~tf_lrp.errors.InputError` that names it. Every
write goes to a temporary file in the same directory that is flushed, ``fsync``-ed and renamed
into place (and the directory ``fsync``-ed), so a crash or a power loss leaves either the old
file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import InputError

#: Arrays read fully into memory (``.npz`` members) may declare at most this fraction of the
#: host's available memory together.
READ_MEMORY_FRACTION = 0.5
#: The limit where the available memory cannot be read.
FALLBACK_READ_LIMIT = 4 << 30


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``.

    The file is flushed and ``fsync``-ed before the rename, and the directory after it.

    Args:
        path: the final file name.
        mode: ``"wb"`` or ``"w"``.

    Yields:
        The open temporary file.

    Raises:
        InputError: if the directory of ``path`` does not exist.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"cannot write {str(target)!r}: directory {str(directory)!r} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates the file 0600; give the result the permissions a plain open() would
        os.chmod(tmp_name, _default_file_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """``fsync`` a directory, so that files created or renamed in it survive a power loss."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        with contextlib.suppress(OSError):  # some file systems do not support it; nothing more to do
            os.fsync(fd)
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    """``0o666`` less the process umask (what ``open(path, "w")`` would create)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True)
        handle.write("\n")


def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` into one uncompressed ``.npz``, atomically."""
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **dict(arrays))  # type: ignore[arg-type]  # numpy's stub types allow_pickle first


# --------------------------------------------------------------------------------------------
# Reading


def read_limit() -> int:
    """Bytes of arrays a file may declare for reading into memory (see :data:`READ_MEMORY_FRACTION`)."""
    try:
        free = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return FALLBACK_READ_LIMIT
    return FALLBACK_READ_LIMIT if free <= 0 else max(1 << 26, int(free * READ_MEMORY_FRACTION))


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def read_npy_header(handle: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Read and check the header of an ``.npy`` stream positioned at its start.

    Args:
        handle: a binary stream (a file or a zip member).
        name: how to name the file in errors.

    Returns:
        ``(shape, dtype, fortran_order, nbytes)``; the stream is left at the first data byte.

    Raises:
        InputError: not an ``.npy`` (bad magic, damaged or unsupported header) or a dtype that
            needs unpickling.
    """
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise InputError(f"{name} is an .npy of format version {version}, which tf_lrp does not read")
    except (InputError, zipfile.BadZipFile, zlib.error):  # an archive's damage is reported as the archive's
        raise
    except Exception as exc:  # numpy raises ValueError, SyntaxError, EOFError, tokenize errors, ... on damage
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name} is not a valid .npy file (damaged or truncated header: {detail})") from exc
    if dtype.hasobject:
        raise InputError(
            f"{name} holds Python objects ({dtype}), which cannot be read without unpickling; "
            "tf_lrp only reads plain arrays"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    return tuple(int(s) for s in shape), dtype, bool(fortran), int(nbytes)


def load_npy(path: str | os.PathLike[str], mmap: bool = False) -> np.ndarray:
    """Load an ``.npy`` file after checking its header and its exact size; never unpickle.

    Args:
        path: the file.
        mmap: memory-map it read-only instead of reading it.

    Returns:
        The array (an ``np.memmap`` with ``mmap=True``).

    Raises:
        InputError: the file is missing, damaged, truncated, longer than its header says,
            holds objects, or (``mmap=False``) declares more than :func:`read_limit` bytes.
    """
    file = Path(path)
    name = repr(str(file))
    if not file.is_file():
        raise InputError(f"file {name} does not exist")
    with open(file, "rb") as handle:
        shape, dtype, _, nbytes = read_npy_header(handle, name)
        expected = handle.tell() + nbytes
        actual = os.fstat(handle.fileno()).st_size
    if actual != expected:
        state = "truncated" if actual < expected else "longer than its array"
        raise InputError(
            f"{name} is {state}: its header declares {shape} {dtype} ({expected:,} bytes with the header), "
            f"the file holds {actual:,} bytes; the file is damaged, write it again"
        )
    if not mmap and nbytes > (limit := read_limit()):
        raise InputError(
            f"{name} declares {_size(nbytes)} of arrays, more than the {_size(limit)} tf_lrp may read into "
            "memory; free memory, or pass it where it is memory-mapped"
        )
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # checked above; anything left is damage numpy found
        raise InputError(f"{name} is not a readable .npy file ({exc})") from exc


def load_npz(path: str | os.PathLike[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file without ever unpickling.

    Every member's header is read first: a member that is not an ``.npy`` array, holds objects,
    or whose declared size disagrees with the archive is refused, and so are arrays that
    together declare more than ``max_bytes`` (before anything is allocated).

    Args:
        path: the file.
        max_bytes: the most bytes the arrays may declare together; None: :func:`read_limit`.

    Returns:
        A dict from key to array, fully read into memory.

    Raises:
        InputError: if the file is missing, is not an ``.npz``, is damaged (truncated, bad CRC),
            holds pickled objects, or declares more than ``max_bytes``.
    """
    file = Path(path)
    name = repr(str(file))
    if not file.is_file():
        raise InputError(f"file {name} does not exist")
    with open(file, "rb") as handle:
        if handle.read(6) == b"\x93NUMPY":
            raise InputError(f"{name} holds a single array; expected an .npz archive")
    try:
        with zipfile.ZipFile(file) as archive:
            _check_members(archive, name, read_limit() if max_bytes is None else int(max_bytes))
            data = np.load(file, allow_pickle=False)
            with data:
                return {key: data[key] for key in data.files}
    except InputError:
        raise
    except ValueError as exc:  # numpy says "Object arrays cannot be loaded when allow_pickle=False"
        if "pickle" in str(exc):
            raise InputError(
                f"{name} cannot be read without unpickling ({exc}); tf_lrp only reads plain arrays"
            ) from exc
        raise InputError(f"{name} is not a readable .npz file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, RuntimeError, NotImplementedError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name} is not a readable .npz file (damaged or truncated: {detail})") from exc


def _check_members(archive: zipfile.ZipFile, name: str, max_bytes: int) -> None:
    """Read each member's ``.npy`` header; check it against the archive and the total against ``max_bytes``."""
    total, largest, label = 0, -1, ""
    for info in archive.infolist():
        member = f"{name} member {info.filename!r}"
        if not info.filename.endswith(".npy"):
            raise InputError(f"{member} is not an .npy array, so the file cannot be read as an .npz of arrays")
        with archive.open(info) as handle:
            shape, dtype, _, nbytes = read_npy_header(handle, member)
            header = handle.tell()
        if header + nbytes != info.file_size:
            raise InputError(
                f"{member} declares {shape} {dtype} ({header + nbytes:,} bytes) but the archive records "
                f"{info.file_size:,}; the file is damaged"
            )
        total += nbytes
        if nbytes > largest:
            largest, label = nbytes, f"{info.filename[:-4]!r}: {shape} {dtype}"
    if total > max_bytes:
        raise InputError(
            f"{name} declares {_size(total)} of arrays (largest {label}), more than the {_size(max_bytes)} "
            "tf_lrp may read into memory; it is refused before reading (store large data as .npy, which is "
            "memory-mapped)"
        )
