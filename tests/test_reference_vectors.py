"""The LSTM and GRU reference vectors (tests/data, from shared/reference) are reproduced.

Tolerances from tests/data/REFERENCE.md: float64 1e-10 relative to the largest value; float32
1e-4 × max|value|.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tf_lrp import Explainer

from .conftest import DATA, load_reference

pytestmark = pytest.mark.core  # backend-agnostic: CI runs these on TensorFlow and on JAX

FILES = sorted(p.name for p in Path(DATA).glob("lstm_*.npz")) + sorted(p.name for p in Path(DATA).glob("gru_*.npz"))
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def _explainer(ref: dict[str, np.ndarray], dtype: str) -> Explainer:
    cell = str(ref.get("cell", "lstm"))
    return Explainer.from_weights(
        [ref[k] for k in ref["keras_weight_order"]],
        cell=cell,
        bidirectional=bool(ref.get("bidirectional", True)),
        reset_after=bool(ref.get("reset_after", True)),
        dtype=dtype,
    )


def _close(actual: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", FILES)
def test_reference(name: str, dtype: str) -> None:
    ref = load_reference(name)
    ex = _explainer(ref, dtype)
    target = ref["target"]
    lrp = ex.explain(ref["x"], target=target, eps=float(ref["eps"]), bias_factor=float(ref["bias_factor"]))
    _close(lrp.scores, ref["scores"], dtype)
    _close(lrp.relevance, ref["lrp"], dtype)
    _close(lrp.token_relevance, ref["lrp_per_step"], dtype)
    np.testing.assert_allclose(
        lrp.initial_state_relevance, ref["lrp_rest"], rtol=0, atol=TOLERANCE[dtype] * np.abs(ref["lrp"]).max()
    )
    gi = ex.explain(ref["x"], target=target, method="gradient_x_input")
    _close(gi.relevance, ref["gi"], dtype)
    sa = ex.explain(ref["x"], target=target, method="sensitivity")
    _close(sa.relevance, ref["sa"], dtype)


@pytest.mark.parametrize("name", FILES)
def test_predicted_target_is_argmax(name: str) -> None:
    ref = load_reference(name)
    res = _explainer(ref, "float64").explain(ref["x"], target=None)
    np.testing.assert_array_equal(res.target, ref["pred"])
