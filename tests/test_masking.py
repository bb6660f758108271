"""Variable-length sequences: Keras masking semantics (a masked step carries state and output).

The oracle for a padded sequence is the same sequence with its padded steps removed, explained
on its own: with Keras semantics the two must give the same scores, and the same relevance on
the valid steps; the padded steps get exactly 0. Masks come from ``mask=``, ``lengths=``, an
embedding's ``mask_zero`` or a Keras ``Masking`` value recorded in the manifest. (The Keras
models themselves, with pre- and post-padding through ``Bidirectional`` layers, are compared
in test_keras_import.py.)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf_lrp.errors import InputError, LayoutError
from tf_lrp.explainer import Explainer
from tf_lrp.layout import validate_manifest

pytestmark = [
    pytest.mark.core,  # backend-agnostic numerics: CI runs them on JAX and PyTorch too
    pytest.mark.filterwarnings("ignore::tf_lrp.errors.TfLrpWarning"),  # random weights, tiny ε: numbers checked here
]

MASK_VALUE = -7.0
METHODS = ("lrp", "gradient_x_input", "sensitivity")


def _manifest(layers: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"format": "tf_lrp.layout", "version": 1, "layers": layers, **top}


LAYOUTS = {
    "lstm_uni": _manifest(
        [
            {"kind": "lstm", "units": 4, "input_size": 3},
            {"kind": "dense", "units": 2, "input_size": 4},
        ]
    ),
    "gru_bi_masking": _manifest(
        [
            {
                "kind": "gru",
                "units": 4,
                "input_size": 3,
                "direction": "bidirectional",
                "merge_mode": "sum",
                "reset_after": False,
            },
            {"kind": "dense", "units": 3, "input_size": 4, "activation": "relu"},
            {"kind": "dense", "units": 2, "input_size": 3},
        ],
        mask_value=MASK_VALUE,
    ),
    "token_lstm_backward": _manifest(
        [
            {"kind": "embedding", "input_dim": 20, "output_dim": 3, "mask_zero": True},
            {"kind": "lstm", "units": 4, "input_size": 3, "direction": "backward", "return_sequences": True},
            {"kind": "lstm", "units": 3, "input_size": 4},
            {"kind": "dense", "units": 2, "input_size": 3},
        ]
    ),
}


@functools.cache
def _explainer(name: str) -> Explainer:
    """One explainer per layout for the whole module (compiled functions are reused)."""
    layout = validate_manifest(LAYOUTS[name])
    rng = np.random.default_rng(sum(map(ord, name)))
    weights = [rng.normal(0.0, 0.6, spec.shape) for spec in layout.arrays]
    return Explainer(layout, weights, dtype="float64")


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def explainer(request: pytest.FixtureRequest) -> Explainer:
    return _explainer(request.param)


@pytest.fixture(scope="module")
def masking_explainer() -> Explainer:
    return _explainer("gru_bi_masking")


def _batch(explainer: Explainer, rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    if explainer.layout.embedding is not None:
        return rng.integers(1, explainer.layout.embedding.input_dim, size=(batch, steps)).astype("int32")
    return rng.standard_normal((batch, steps, explainer.layout.input_size))


#: one row per sample: post-padding, pre-padding, a hole in the middle, none, both ends
MASK = np.array(
    [
        [1, 1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 1],
        [1, 1, 0, 0, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 0],
    ],
    dtype=bool,
)


def _pad(explainer: Explainer, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Write padding into ``x`` the way each kind of network sees it; return x and explain kwargs."""
    x = x.copy()
    if explainer.layout.embedding is not None:
        x[~mask] = 0  # mask_zero
        return x, {}
    x[~mask] = 99.0  # garbage that must not matter
    return x, {"mask": mask}


@pytest.mark.parametrize("method", METHODS)
def test_a_padded_batch_equals_each_sequence_alone(explainer: Explainer, method: str) -> None:
    rng = np.random.default_rng(1)
    x, options = _pad(explainer, _batch(explainer, rng, *MASK.shape), MASK)
    padded = explainer.explain(x, target=1, method=method, **options)
    assert np.all(padded.relevance[~MASK] == 0.0)
    for b in range(len(x)):
        alone_x = x[b : b + 1, MASK[b]]
        alone = explainer.explain(alone_x, target=1, method=method, lengths=[alone_x.shape[1]])
        np.testing.assert_allclose(padded.scores[b], alone.scores[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(padded.relevance[b, MASK[b]], alone.relevance[0], rtol=1e-9, atol=1e-12)


def test_lengths_is_post_padding(masking_explainer: Explainer) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 3))
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    by_lengths = masking_explainer.explain(x, lengths=lengths, target=0, bias_factor=1.0)
    by_mask = masking_explainer.explain(x, mask=mask, target=0, bias_factor=1.0)
    np.testing.assert_array_equal(by_lengths.relevance, by_mask.relevance)
    np.testing.assert_array_equal(by_lengths.mask, mask)


def test_the_keras_masking_value_masks_steps(masking_explainer: Explainer) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((len(MASK), MASK.shape[1], 3))
    by_mask = masking_explainer.explain(x, mask=MASK, target=0)
    x[~MASK] = MASK_VALUE  # every feature equal to mask_value: Keras Masking masks the step
    x[3, 2, 0] = MASK_VALUE  # one feature equal is not enough
    by_value = masking_explainer.explain(x, target=0)
    np.testing.assert_array_equal(by_value.mask, MASK)
    np.testing.assert_allclose(by_value.relevance[[0, 1, 2, 4]], by_mask.relevance[[0, 1, 2, 4]], rtol=1e-12)
    assert np.all(by_value.relevance[~MASK] == 0.0)
    with pytest.raises(InputError, match="masked steps only"):
        masking_explainer.explain(np.full((1, 4, 3), MASK_VALUE))
    with pytest.raises(InputError, match="either mask= or lengths="):
        masking_explainer.explain(x, mask=MASK, lengths=[1] * len(MASK))


def test_mask_value_is_for_float_inputs_only() -> None:
    manifest = dict(LAYOUTS["token_lstm_backward"], mask_value=0.0)
    with pytest.raises(LayoutError, match="mask_zero instead: remove mask_value"):
        validate_manifest(manifest)


@given(
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 4),
    steps=st.integers(1, 8),
    data=st.data(),
)
def test_lrp_conserves_with_padding(masking_explainer: Explainer, seed: int, batch: int, steps: int, data: Any) -> None:
    rng = np.random.default_rng(seed)
    starts = data.draw(st.lists(st.integers(0, steps - 1), min_size=batch, max_size=batch))
    lengths = [data.draw(st.integers(1, steps - start)) for start in starts]
    index = np.arange(steps)[None, :]
    mask = (index >= np.array(starts)[:, None]) & (index < (np.array(starts) + np.array(lengths))[:, None])
    x = rng.standard_normal((batch, steps, 3))
    explanation = masking_explainer.explain(x, mask=mask, bias_factor=1.0, eps=1e-6)
    assert explanation.conservation_error.max() < 1e-8
    assert np.all(explanation.relevance[~mask] == 0.0)
