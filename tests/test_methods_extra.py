"""integrated_gradients, occlusion and random: completeness, agreement with re-scoring, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tf_lrp import Explainer, InputError
from tf_lrp.methods import EXTRA_INPUTS, METHODS

D, H, C, T, B = 3, 5, 2, 7, 4


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    rng = np.random.default_rng(5)
    weights = [
        rng.normal(size=(D, 4 * H)) * 0.5,
        rng.normal(size=(H, 4 * H)) * 0.5,
        rng.normal(size=4 * H) * 0.1,
        rng.normal(size=(H, C)),
        rng.normal(size=C),
    ]
    return Explainer.from_weights(weights, cell="lstm", dtype="float64")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(6).normal(size=(B, T, D))


def test_methods_table_lists_the_new_methods() -> None:
    assert {"integrated_gradients", "occlusion", "random"} <= set(METHODS)
    assert set(EXTRA_INPUTS) <= set(METHODS)


def test_integrated_gradients_completeness_improves_with_steps(explainer: Explainer, x: np.ndarray) -> None:
    baseline = np.full_like(x, 0.3)
    gap = explainer.score(x)[:, 1] - explainer.score(baseline)[:, 1]
    errors = []
    for steps in (4, 16, 64):
        result = explainer.explain(x, method="integrated_gradients", target=1, steps=steps, baseline=0.3)
        errors.append(np.abs(result.relevance.sum(axis=(1, 2)) - gap).max())
    scale = np.abs(gap).max()
    # the trapezoid rule: error O(1/steps²), so x16 steps shrinks it by far more than x10
    assert errors[1] < errors[0] / 10
    assert errors[2] < errors[1] / 10
    assert errors[2] < 1e-3 * scale


def test_integrated_gradients_chunked_equals_one_call_without_retracing(explainer: Explainer, x: np.ndarray) -> None:
    whole = explainer.explain(x, method="integrated_gradients", steps=16)
    traces = explainer.trace_count
    small = Explainer.from_manifest(explainer.manifest, explainer.weights, dtype="float64", memory_budget=3000)
    chunked = small.explain(x, method="integrated_gradients", steps=16)
    chunked_again = small.explain(x[:2], method="integrated_gradients", steps=9)
    np.testing.assert_allclose(chunked.relevance, whole.relevance, rtol=1e-12, atol=1e-14)
    assert small.trace_count == 1
    assert explainer.trace_count == traces
    assert chunked_again.relevance.shape == (2, T, D)


def test_integrated_gradients_of_the_baseline_is_zero(explainer: Explainer, x: np.ndarray) -> None:
    result = explainer.explain(x, method="integrated_gradients", steps=4, baseline=x)
    assert np.abs(result.relevance).max() == 0


def test_occlusion_equals_rescoring_each_step(explainer: Explainer, x: np.ndarray) -> None:
    result = explainer.explain(x, method="occlusion", target=0)
    full = explainer.score(x)[:, 0]
    for t in range(T):
        occluded = x.copy()
        occluded[:, t] = 0
        np.testing.assert_allclose(result.token_relevance[:, t], full - explainer.score(occluded)[:, 0], atol=1e-12)
    # spread evenly over the step's features
    np.testing.assert_allclose(result.relevance, np.repeat(result.token_relevance[..., None] / D, D, axis=-1))


def test_occlusion_baseline_and_mask(explainer: Explainer, x: np.ndarray) -> None:
    lengths = np.array([7, 3, 5, 1])
    result = explainer.explain(x, method="occlusion", lengths=lengths, baseline=np.ones(D))
    padded = np.arange(T)[None, :] >= lengths[:, None]
    assert np.all(result.relevance[padded] == 0)
    occluded = x.copy()
    occluded[1, 2] = 1.0
    drop = explainer.score(x, lengths=lengths)[1] - explainer.score(occluded, lengths=lengths)[1]
    np.testing.assert_allclose(result.token_relevance[1, 2], drop[result.target[1]], atol=1e-12)


def test_occlusion_chunked_equals_one_call(explainer: Explainer, x: np.ndarray) -> None:
    small = Explainer.from_manifest(explainer.manifest, explainer.weights, dtype="float64", memory_budget=3000)
    np.testing.assert_allclose(
        small.explain(x, method="occlusion").relevance, explainer.explain(x, method="occlusion").relevance, atol=1e-13
    )


def test_random_is_seeded_and_zero_on_padding(explainer: Explainer, x: np.ndarray) -> None:
    first = explainer.explain(x, method="random", seed=3, lengths=[7, 2, 7, 7])
    again = explainer.explain(x, method="random", seed=3, lengths=[7, 2, 7, 7])
    other = explainer.explain(x, method="random", seed=4)
    np.testing.assert_array_equal(first.relevance, again.relevance)
    assert not np.allclose(first.relevance, other.relevance)
    assert np.all(first.relevance[1, 2:] == 0)
    assert np.abs(first.relevance).max() <= 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "lrp", "baseline": 0.0}, "baseline= is used by integrated_gradients and occlusion only"),
        ({"method": "integrated_gradients", "steps": 0}, "steps must be a positive int"),
        ({"method": "integrated_gradients", "steps": True}, "steps must be a positive int"),
        ({"method": "integrated_gradients", "steps": 2.5}, "steps must be a positive int"),
        ({"method": "random", "seed": -1}, "seed must be a non-negative int"),
        ({"method": "random", "seed": "a"}, "seed must be a non-negative int"),
        ({"method": "occlusion", "baseline": np.zeros((2, 2))}, "does not broadcast"),
        ({"method": "integrated_gradients", "baseline": np.nan}, "NaN or infinite"),
        ({"method": "integrated_gradients", "baseline": "zero"}, "cannot be read as a float array"),
    ],
)
def test_option_errors(explainer: Explainer, x: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        explainer.explain(x, **kwargs)


@pytest.mark.slow
def test_token_model_occlusion_works_in_embedding_space() -> None:
    from pathlib import Path

    from tf_lrp._io import load_npz

    demo = Path(__file__).parent.parent / "tf_lrp" / "_demo"
    ex = Explainer.load(demo / "model.npz", dtype="float64")
    tokens = load_npz(demo / "data.npz")["x"][:3, :12]
    tokens[:, 0] = np.maximum(tokens[:, 0], 1)  # keep one valid step per sample
    embedding = ex.weights[0]
    occlusion = ex.explain(tokens, method="occlusion", baseline=embedding[5], target=0)
    full = ex.score(tokens)[:, 0]
    for t in (0, 4):
        replaced = tokens.copy()
        replaced[:, t] = np.where(tokens[:, t] != 0, 5, 0)
        np.testing.assert_allclose(occlusion.token_relevance[:, t], full - ex.score(replaced)[:, 0], atol=1e-12)
    ig = ex.explain(tokens, method="integrated_gradients", steps=4, baseline=embedding[tokens])
    assert np.abs(ig.relevance).max() == 0
