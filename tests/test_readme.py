"""Every Python block of README.md runs as written, in order, in one namespace (like a reader's session)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_blocks():
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 8


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # the blocks write model.keras, net.npz, heat.html, ...
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(python_blocks(README.read_text(encoding="utf-8")), start=1):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"README.md python block {number} fails: {exc!r}\n{block}") from exc
    # what the blocks claim about their results
    res, x = namespace["res"], namespace["x"]
    assert res.relevance.shape == x.shape
    assert np.all(namespace["text_res"].token_relevance[0, 3:] == 0)  # padding gets exactly zero
    assert namespace["rel"].shape[:2] == namespace["token_ids"].shape
    for name in ("model.keras", "net.npz", "heat.html", "morf.png", "x_relevances.npy"):
        assert (tmp_path / name).is_file(), name
