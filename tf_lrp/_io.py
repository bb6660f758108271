"""File input/output: strict loading of user files and crash-safe writes.

Files users hand us are data, never code: arrays are loaded with ``allow_pickle=False`` and
every write goes to a temporary file in the same directory that is renamed into place, so a
crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import InputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``.

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
        np.savez(handle, **arrays)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file without ever unpickling.

    Args:
        path: the file.

    Returns:
        A dict from key to array, fully read into memory.

    Raises:
        InputError: if the file is missing, is not an ``.npz``, or holds pickled objects.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"file {str(file)!r} does not exist")
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, Mapping):  # a .npy file gives one ndarray (no context manager)
            raise InputError(f"{str(file)!r} holds a single array; expected an .npz archive")
        with data:
            return {key: data[key] for key in data.files}
    except InputError:
        raise
    except ValueError as exc:  # numpy says "Object arrays cannot be loaded when allow_pickle=False"
        raise InputError(
            f"{str(file)!r} cannot be read without unpickling ({exc}); tf_lrp only reads plain arrays"
        ) from exc
    except (OSError, EOFError) as exc:
        raise InputError(f"{str(file)!r} is not a readable .npz file ({exc})") from exc
