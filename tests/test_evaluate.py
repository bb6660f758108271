"""Perturbation curves: ground truth on hand-built scorers, LRP on an LSTM, modes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tf_lrp import Explainer, InputError
from tf_lrp.evaluate import MODES, PerturbationResult, _interpolate, auc, perturbation_curve


class LinearScorer:
    """``score(x)[:, 0] = Σ_t,d w_td x_td``, ``score[:, 1] = -score[:, 0]``: the exact relevance is x ⊙ w."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.calls = 0

    def score(self, x, mask=None):
        self.calls += 1
        x = np.asarray(x, dtype=np.float64)
        if mask is not None:
            x = x * np.asarray(mask)[..., None]
        total = (x * self.weights).sum(axis=(1, 2))
        return np.stack([total, -total], axis=1)


class TokenScorer:
    """Token model: the score counts tokens equal to 7."""

    def score(self, x, mask=None):
        count = (np.asarray(x) == 7).sum(axis=1).astype(np.float64)
        return np.stack([count, -count], axis=1)


@pytest.fixture
def linear(rng: np.random.Generator) -> tuple[LinearScorer, np.ndarray, np.ndarray]:
    weights = rng.uniform(0.1, 1.0, size=(6, 2))
    x = rng.uniform(0.1, 1.0, size=(5, 6, 2))
    return LinearScorer(weights), x, x * weights


def test_curves_are_monotone_on_a_model_with_known_relevance(linear) -> None:
    scorer, x, truth = linear  # every contribution is positive: removing any unit lowers the score
    for unit in ("step", "feature"):
        morf = perturbation_curve(scorer, x, truth, order="morf", unit=unit, target=0)
        lrf = perturbation_curve(scorer, x, truth, order="lrf", unit=unit, target=0)
        rnd = perturbation_curve(scorer, x, truth, order="random", unit=unit, target=0)
        for result in (morf, lrf, rnd):
            assert np.all(np.diff(result.curve, axis=1) < 0)
            np.testing.assert_allclose(result.curve[:, -1], 0, atol=1e-12)
            np.testing.assert_allclose(result.curve[:, 0], truth.sum(axis=(1, 2)))
        # MoRF removes the biggest contributions first: its drops are sorted, largest first
        assert np.all(np.diff(np.diff(morf.curve, axis=1), axis=1) >= -1e-12)
        assert np.all(np.diff(np.diff(lrf.curve, axis=1), axis=1) <= 1e-12)
        assert np.all(morf.auc < rnd.auc)
        assert np.all(rnd.auc < lrf.auc)


def test_curve_points_and_auc(linear) -> None:
    scorer, x, truth = linear
    result = perturbation_curve(scorer, x, truth, steps=3, target=np.zeros(5, dtype=int))
    assert isinstance(result, PerturbationResult)
    assert result.curve.shape == (5, 4)
    np.testing.assert_allclose(result.fractions, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(result.auc, auc(result.curve))
    np.testing.assert_allclose(result.mean_curve, result.curve.mean(axis=0))
    assert result.mean_auc == pytest.approx(result.auc.mean())
    # step 1 of 3 removes round(6/3) = 2 steps, the two most relevant
    order = np.argsort(-truth.sum(axis=2), axis=1)[:, :2]
    kept = truth.sum(axis=2).copy()
    np.put_along_axis(kept, order, 0, axis=1)
    np.testing.assert_allclose(result.curve[:, 1], kept.sum(axis=1))


def test_auc_is_the_trapezoid_rule() -> None:
    np.testing.assert_allclose(auc([1.0, 0.0]), 0.5)
    np.testing.assert_allclose(auc([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]), [0.5, 1.0])


def test_several_steps_per_call_equal_one_per_call(linear) -> None:
    scorer, x, truth = linear
    many = perturbation_curve(scorer, x, truth, mode="mean")
    calls = scorer.calls
    one = perturbation_curve(scorer, x, truth, mode="mean", max_elements=x.size)
    assert scorer.calls - calls == 1 + 6  # the base score, then one call per removal step
    np.testing.assert_allclose(many.curve, one.curve)


def test_masked_steps_are_never_removed(linear) -> None:
    scorer, x, truth = linear
    mask = np.arange(6)[None, :] < np.array([6, 2, 4, 1, 3])[:, None]
    result = perturbation_curve(scorer, x, truth, mask=mask, steps=6, target=0)
    np.testing.assert_allclose(result.curve[:, -1], 0, atol=1e-12)  # masked steps count 0 in the scorer
    np.testing.assert_allclose(result.curve[:, 0], (truth.sum(axis=2) * mask).sum(axis=1))


@pytest.mark.parametrize("mode", ["zero", "constant", "mean", "random_draw", "interpolate"])
@pytest.mark.parametrize("unit", ["step", "feature"])
def test_every_float_mode_runs(linear, mode: str, unit: str) -> None:
    scorer, x, truth = linear
    result = perturbation_curve(scorer, x, truth, mode=mode, unit=unit, steps=4, value=0.5, data=x[:3])
    assert result.curve.shape == (5, 5)
    assert np.isfinite(result.curve).all()
    assert (result.mode, result.unit, result.order) == (mode, unit, "morf")


def test_constant_mode_replaces_by_the_value(linear) -> None:
    scorer, x, truth = linear
    result = perturbation_curve(scorer, x, truth, mode="constant", value=2.0, steps=1, target=0)
    np.testing.assert_allclose(result.curve[:, 1], 2.0 * scorer.weights.sum())


def test_interpolation_is_linear_between_kept_steps() -> None:
    x = np.arange(6, dtype=np.float64)[None, :, None] ** 2  # 0 1 4 9 16 25
    kept = np.array([True, False, False, True, False, False])[None, :, None]
    np.testing.assert_allclose(_interpolate(x, kept)[0, :, 0], [0, 3, 6, 9, 9, 9])
    np.testing.assert_allclose(_interpolate(x, ~kept)[0, :, 0], [1, 1, 4, 10, 16, 25])
    np.testing.assert_allclose(_interpolate(x, np.zeros_like(kept))[0, :, 0], 0)


def test_token_modes() -> None:
    x = np.array([[7, 1, 7, 2], [3, 7, 4, 4]])
    relevance = (x == 7).astype(float)
    result = perturbation_curve(TokenScorer(), x, relevance, mode="token", token=0, target=0)
    np.testing.assert_allclose(result.curve, [[2, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    drawn = perturbation_curve(TokenScorer(), x, relevance, mode="random_draw", data=np.full((3, 5), 9), target=0)
    np.testing.assert_allclose(drawn.curve[:, -1], 0)


@pytest.mark.slow
def test_lrp_morf_below_random_below_lrf_on_an_lstm() -> None:
    rng = np.random.default_rng(11)
    dims, units = 3, 8
    weights = [
        rng.normal(size=(dims, 4 * units)) * 0.6,
        rng.normal(size=(units, 4 * units)) * 0.6,
        rng.normal(size=4 * units) * 0.1,
        rng.normal(size=(units, 2)),
        rng.normal(size=2) * 0.1,
    ]
    explainer = Explainer.from_weights(weights, dtype="float64")
    x = rng.normal(size=(48, 10, dims))
    relevance = explainer.explain(x).relevance
    areas = {
        order: perturbation_curve(explainer, x, relevance, order=order).mean_auc for order in ("morf", "random", "lrf")
    }
    assert areas["morf"] < areas["random"] < areas["lrf"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"order": "best"}, "order must be one of"),
        ({"mode": "blur"}, "mode must be one of"),
        ({"unit": "token"}, "unit must be one of"),
        ({"steps": 0}, "steps must be a positive int"),
        ({"max_elements": 0}, "max_elements must be a positive int"),
        ({"relevance": np.zeros((5, 3))}, "relevance must be"),
        ({"relevance": np.full((5, 6), np.nan)}, "NaN or infinite"),
        ({"relevance": np.zeros((5, 6)), "unit": "feature"}, "one per feature"),
        ({"mask": np.ones((5, 2), bool)}, "mask must have shape"),
        ({"target": 2}, "target must be None"),
        ({"target": "a"}, "target must be None"),
        ({"mode": "token"}, "for token models"),
        ({"mode": "mean", "data": np.zeros((2, 3, 5))}, "data must have shape"),
        ({"mode": "random_draw", "data": np.zeros((2, 3))}, "data must have shape"),
        ({"mode": "constant", "value": np.zeros(3)}, "value must be a number"),
        ({"x": np.zeros((0, 6, 2))}, "x must be"),
        ({"x": np.zeros((5, 6))}, "integer token ids"),
    ],
)
def test_errors(linear, kwargs: dict, match: str) -> None:
    scorer, x, truth = linear
    arguments = {"x": x, "relevance": truth, **kwargs}
    with pytest.raises(InputError, match=match):
        perturbation_curve(scorer, **arguments)


def test_token_errors() -> None:
    x = np.array([[7, 1, 7, 2]])
    with pytest.raises(InputError, match="interpolate"):
        perturbation_curve(TokenScorer(), x, np.ones((1, 4)), mode="interpolate")
    with pytest.raises(InputError, match="needs float inputs"):
        perturbation_curve(TokenScorer(), x, np.ones((1, 4)), mode="zero")
    with pytest.raises(InputError, match="token must be an int"):
        perturbation_curve(TokenScorer(), x, np.ones((1, 4)), mode="token", token="pad")
    with pytest.raises(InputError, match='unit="feature" needs float inputs'):
        perturbation_curve(TokenScorer(), x, np.ones((1, 4)), mode="token", unit="feature")
    with pytest.raises(InputError, match="at least two points"):
        auc([1.0])
    assert set(MODES) == {"zero", "constant", "mean", "random_draw", "interpolate", "token"}


@pytest.mark.slow
def test_cli_evaluate_writes_curves(tmp_path, rng: np.random.Generator) -> None:
    import json

    from tf_lrp.cli import main

    shapes = [(2, 12), (3, 12), (12,), (3, 2), (2,)]
    weights = [rng.normal(size=shape) for shape in shapes]
    explainer = Explainer.from_weights(weights, dtype="float64")
    explainer.save(tmp_path / "net.npz")
    x = rng.normal(size=(6, 5, 2))
    np.savez(tmp_path / "data.npz", x=x, lengths=np.array([5, 4, 5, 3, 5, 5]))
    relevance = explainer.explain(x, lengths=[5, 4, 5, 3, 5, 5]).relevance
    np.save(tmp_path / "rel.npy", relevance)
    out, png = tmp_path / "curves.json", tmp_path / "curves.png"
    code = main(
        ["evaluate", str(tmp_path / "net.npz"), str(tmp_path / "data.npz"), str(tmp_path / "rel.npy"), "-o", str(out),
         "--steps", "5", "--png", str(png)]
    )  # fmt: skip
    assert code == 0
    payload = json.loads(out.read_text())
    assert set(payload["orders"]) == {"morf", "lrf", "random"}
    assert len(payload["orders"]["morf"]["mean_curve"]) == 6
    assert png.read_bytes().startswith(b"\x89PNG")
    missing = str(tmp_path / "x.npy")
    assert main(["evaluate", str(tmp_path / "net.npz"), str(tmp_path / "data.npz"), missing, "-o", str(out)]) == 2
