"""tf_lrp._io: atomic writes and strict (pickle-free) loading."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tf_lrp import InputError
from tf_lrp._io import atomic_write, load_npz, write_json


def test_atomic_write_gives_ordinary_permissions(tmp_path) -> None:
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_write(tmp_path / "b.bin") as handle:
            handle.write(b"1")
    finally:
        os.umask(umask)
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]  # no temporary file left



def test_load_npz_refuses_pickles_and_missing_files(tmp_path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="cannot be read without unpickling"):
        load_npz(tmp_path / "objects.npz")
    with pytest.raises(InputError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"old": True})

    def crash() -> None:
        with atomic_write(target, "w") as handle:
            handle.write("{half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        crash()
    assert target.read_text().strip().startswith('{\n  "old": true')
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    with pytest.raises(InputError, match=r"directory .* does not exist"):
        write_json(tmp_path / "nowhere" / "x.json", {})
