"""Perturbation curves: ground truth on hand-built scorers, LRP on an LSTM, modes, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tf_lrp import Explainer, InputError
from tf_lrp.evaluate import (
    MODES,
    Comparison,
    PerturbationResult,
    _interpolate,
    auc,
    compare,
    input_mask,
    perturbation_curve,
)
from tf_lrp.layout import validate_manifest

DEMO = Path(__file__).resolve().parents[1] / "tf_lrp" / "_demo"


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
    np.testing.assert_allclose(_interpolate(x, np.zeros_like(kept), fallback=[2.5])[0, :, 0], 2.5)


def test_token_modes() -> None:
    x = np.array([[7, 1, 7, 2], [3, 7, 4, 4]])
    relevance = (x == 7).astype(float)
    result = perturbation_curve(TokenScorer(), x, relevance, mode="token", token=0, target=0)
    assert perturbation_curve(TokenScorer(), x, relevance, target=0).mode == "token"  # no padding rule: token 0
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


# --------------------------------------------------------------------------------------------
# Padding is the model's (issue 18)


class RecordingScorer(LinearScorer):
    """A LinearScorer that keeps every batch it scored, with the mask it got."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__(weights)
        self.seen: list[tuple[np.ndarray, np.ndarray | None]] = []

    def score(self, x, mask=None):
        self.seen.append((np.array(x), None if mask is None else np.array(mask)))
        return super().score(x, mask)


def _masking_explainer(mask_value: float) -> Explainer:
    """A bidirectional GRU behind a Keras Masking(mask_value) layer, float64."""
    layout = validate_manifest(
        {
            "format": "tf_lrp.layout",
            "version": 1,
            "mask_value": mask_value,
            "layers": [
                {"kind": "gru", "units": 4, "input_size": 3, "direction": "bidirectional", "merge_mode": "sum",
                 "reset_after": True},
                {"kind": "dense", "units": 3, "input_size": 4},
            ],
        }
    )
    rng = np.random.default_rng(5)
    return Explainer(layout, [rng.normal(0.0, 0.6, spec.shape) for spec in layout.arrays], dtype="float64")


@pytest.fixture(scope="module")
def masking() -> tuple[Explainer, np.ndarray, np.ndarray, np.ndarray]:
    """A Masking(0.0) model, padded x (padding = all-zero steps), its mask, LRP relevance."""
    explainer = _masking_explainer(0.0)
    rng = np.random.default_rng(8)
    lengths = np.array([7, 3, 5, 1, 6, 4])
    mask = np.arange(7)[None, :] < lengths[:, None]
    x = rng.normal(size=(6, 7, 3)) * mask[..., None]
    return explainer, x, mask, explainer.explain(x, mask=mask).relevance


@pytest.mark.parametrize("mode", ["mean", "random_draw", "interpolate"])
def test_a_masking_model_gives_the_same_curves_from_x_alone_and_with_its_mask(masking, mode: str) -> None:
    explainer, x, mask, relevance = masking
    for order in ("morf", "random"):
        alone = perturbation_curve(explainer, x, relevance, order=order, mode=mode, seed=3)
        given = perturbation_curve(explainer, x, relevance, order=order, mode=mode, seed=3, mask=mask)
        np.testing.assert_array_equal(alone.curve, given.curve)
        # and the padding is really excluded: treating padding as data changes the curves
        ignored = perturbation_curve(explainer, x, relevance, order=order, mode=mode, seed=3, padding=None)
        assert not np.allclose(ignored.curve, alone.curve)


def test_the_default_mode_never_turns_removed_steps_into_padding(masking) -> None:
    explainer, x, _, relevance = masking
    result = perturbation_curve(explainer, x, relevance)
    assert result.mode == "mean"  # zeros are this model's padding
    assert np.isfinite(result.curve).all()
    with pytest.raises(InputError, match=r"Masking value 0\.0: removed steps would become padding"):
        perturbation_curve(explainer, x, relevance, mode="zero")
    with pytest.raises(InputError, match="would become padding"):
        perturbation_curve(explainer, x, relevance, mode="constant", value=0.0)


def test_padded_steps_are_neither_reference_values_nor_anchors(linear) -> None:
    scorer, x, truth = linear
    scorer = RecordingScorer(scorer.weights)
    padded = x.copy()
    padded[:, 4:] = 50.0  # padding (mask_value 50): must never leak into replacements
    mask = np.arange(6) < 4
    perturbation_curve(scorer, padded, truth, mode="mean", steps=4, padding=50.0, target=0)
    last, seen_mask = (a[-5:] for a in scorer.seen[-1])  # the last point (stacked last): every valid step removed
    np.testing.assert_allclose(last[:, :4], np.broadcast_to(x[:, :4].mean(axis=(0, 1)), last[:, :4].shape))
    np.testing.assert_array_equal(last[:, 4:], 50.0)  # padding stays padding
    np.testing.assert_array_equal(seen_mask, np.broadcast_to(mask, seen_mask.shape))
    scorer.seen.clear()
    perturbation_curve(scorer, padded, truth, mode="interpolate", order="lrf", steps=4, padding=50.0, target=0)
    for batch, _ in scorer.seen[1:]:
        assert np.all(np.abs(batch[:, :4]) <= 1.0)  # interpolated between valid values in [0.1, 1]
    scorer.seen.clear()
    perturbation_curve(scorer, padded, truth, mode="random_draw", steps=4, padding=50.0, target=0, seed=1)
    drawn = scorer.seen[-1][0][-5:]
    assert np.all(drawn[:, :4] <= 1.0)
    assert len(np.unique(drawn[:, :4])) > 4  # really drawn, not a constant


def test_reference_data_is_used_without_its_padding(linear) -> None:
    scorer, x, truth = linear
    scorer = RecordingScorer(scorer.weights)
    reference = np.full((2, 3, 2), 4.0)
    reference[1] = -3.0  # masked by data_mask
    valid = np.array([[1, 1, 1], [0, 0, 0]])
    perturbation_curve(scorer, x, truth, mode="mean", steps=1, data=reference, data_mask=valid)
    np.testing.assert_allclose(scorer.seen[-1][0], 4.0)
    with pytest.raises(InputError, match="no valid"):
        perturbation_curve(scorer, x, truth, mode="mean", data=reference, data_mask=np.zeros((2, 3), bool))


@pytest.fixture(scope="module")
def demo() -> Explainer:
    """The bundled demo model: Embedding(mask_zero=True), so token 0 is padding."""
    return Explainer.load(DEMO / "model.npz")


def test_token_models_default_to_draws_of_real_tokens_and_refuse_the_padding_id(demo) -> None:
    explainer = demo
    with np.load(DEMO / "data.npz") as data:
        x, lengths = data["x"][:24].astype(np.int32), data["lengths"][:24]
    relevance = explainer.explain(x).relevance
    result = perturbation_curve(explainer, x, relevance, steps=8)  # issue 18, bug 1: the defaults work
    assert result.mode == "random_draw"
    assert np.isfinite(result.curve).all()
    with_mask = perturbation_curve(explainer, x, relevance, steps=8, mask=np.arange(32) < lengths[:, None])
    np.testing.assert_array_equal(result.curve, with_mask.curve)
    with pytest.raises(InputError, match="token=0 is the model's padding id"):
        perturbation_curve(explainer, x, relevance, mode="token", token=0)
    with pytest.raises(InputError, match=r"needs token=ID, an out-of-vocabulary/\[UNK\] id"):
        perturbation_curve(explainer, x, relevance, mode="token")
    unknown = perturbation_curve(explainer, x, relevance, mode="token", token=15, steps=4)
    assert np.isfinite(unknown.curve).all()


@pytest.mark.core
def test_an_all_padding_sample_is_scored_as_its_zero_state(demo) -> None:
    """What Keras does: the recurrent layers keep their zero state, so the head sees zeros."""
    explainer = demo
    tokens = np.zeros((3, 32), np.int32)
    tokens[1, :5] = 4
    scores = explainer.score(tokens)
    np.testing.assert_allclose(scores[[0, 2]], np.broadcast_to(explainer.weights[-1], (2, 3)), rtol=1e-6)
    assert not np.allclose(scores[1], explainer.weights[-1])
    masking = _masking_explainer(0.0)
    np.testing.assert_allclose(masking.score(np.zeros((1, 4, 3))), masking.weights[-1][None], rtol=1e-12)
    with pytest.raises(InputError, match="consists of padding"):  # explaining an empty sample is still refused
        explainer.explain(tokens[:1])


def test_input_mask_follows_keras() -> None:
    np.testing.assert_array_equal(input_mask(np.array([[0, 3, 0]]), 0), [[False, True, False]])
    floats = np.array([[[1.0, 1.0], [1.0, 0.0]]])
    np.testing.assert_array_equal(input_mask(floats, 1.0), [[False, True]])  # every feature must equal it
    assert input_mask(floats, None) is None


def test_steps_are_capped_at_the_number_of_units(linear) -> None:
    scorer, x, truth = linear  # issue 14, item 8: no unbounded work
    result = perturbation_curve(scorer, x, truth, steps=1_000_000)
    assert result.curve.shape == (5, 7)
    np.testing.assert_allclose(result.curve, perturbation_curve(scorer, x, truth).curve)
    assert perturbation_curve(scorer, x, truth, steps=10**9, unit="feature").curve.shape == (5, 13)
    for bad in (0, -3, 2.5, True, "5"):
        with pytest.raises(InputError, match="steps must be a positive int"):
            perturbation_curve(scorer, x, truth, steps=bad)


def test_normalised_curves(linear) -> None:
    scorer, x, truth = linear
    relative = perturbation_curve(scorer, x, truth, target=0, normalize="relative")
    raw = perturbation_curve(scorer, x, truth, target=0)
    np.testing.assert_allclose(relative.curve, raw.curve / raw.curve[:, :1])
    assert relative.normalize == "relative"
    probability = perturbation_curve(scorer, x, truth, target=0, normalize="probability")
    np.testing.assert_allclose(probability.curve, 1 / (1 + np.exp(-2 * raw.curve)))  # softmax of (s, -s)
    assert perturbation_curve(scorer, x, truth, normalize="auto").normalize == "probability"
    with pytest.raises(InputError, match="needs positive unperturbed scores; sample 0"):
        perturbation_curve(scorer, x, truth, target=1, normalize="relative")
    with pytest.raises(InputError, match="normalize must be one of"):
        perturbation_curve(scorer, x, truth, normalize="softmax")


def test_standard_errors(linear) -> None:
    scorer, x, truth = linear
    result = perturbation_curve(scorer, x, truth, target=0)
    np.testing.assert_allclose(result.sem_curve, result.curve.std(axis=0, ddof=1) / np.sqrt(5))
    assert result.sem_auc == pytest.approx(result.auc.std(ddof=1) / np.sqrt(5))
    single = perturbation_curve(scorer, x[:1], truth[:1], target=0)
    assert single.sem_auc == 0.0


# --------------------------------------------------------------------------------------------
# Comparisons


class LinearAttributor(LinearScorer):
    """Explains the linear scorer: exact relevance (x ⊙ w), its sign flipped, or noise."""

    def __init__(self, weights: np.ndarray) -> None:
        super().__init__(weights)
        self.explained: list[tuple[str, int]] = []

    def explain(self, x, method="exact", target=None, mask=None, seed=0):
        self.explained.append((method, len(x)))
        x = np.asarray(x, dtype=np.float64)
        relevance = {
            "exact": lambda: x * self.weights,
            "inverted": lambda: -x * self.weights,
            "random": lambda: np.random.default_rng(seed).normal(size=x.shape),
        }[method]()
        return type("Explained", (), {"relevance": relevance})()


def test_compare_ranks_methods_by_their_curves(linear) -> None:
    _, x, truth = linear
    attributor = LinearAttributor(linear[0].weights)
    result = compare(attributor, x, ["exact", "inverted", "random"], target=0, normalize="relative", steps=6)
    assert isinstance(result, Comparison)
    assert [name for name, _ in attributor.explained] == ["exact", "exact", "inverted", "inverted", "random", "random"]
    exact, inverted = result.methods["exact"], result.methods["inverted"]
    alone = perturbation_curve(attributor, x, truth, target=0, normalize="relative", steps=6)
    np.testing.assert_allclose(exact.morf.curve, alone.curve)
    np.testing.assert_allclose(exact.abpc, exact.lrf.auc - exact.morf.auc)
    assert exact.morf.mean_auc < result.random_order.mean_auc < exact.lrf.mean_auc
    np.testing.assert_allclose(inverted.morf.curve, exact.lrf.curve)  # the inverted ranking swaps the orders
    assert exact.samples_per_second > 0
    rows = {row["method"]: row for row in result.rows()}
    assert rows["exact"]["abpc"] > 0 > rows["inverted"]["abpc"]
    table = result.markdown()
    assert "| exact | " in table
    assert "the explained score divided by its unperturbed value" in table
    payload = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert (payload["normalize"], payload["samples"], payload["steps"]) == ("relative", 5, 6)
    assert [m["method"] for m in payload["methods"]] == ["exact", "inverted", "random"]


def test_compare_uses_given_relevances_and_checks_methods(linear) -> None:
    scorer, x, truth = linear
    attributor = LinearAttributor(scorer.weights)
    result = compare(attributor, x, ["exact"], relevances={"exact": truth}, target=0)
    assert attributor.explained == []
    assert math.isnan(result.methods["exact"].samples_per_second)
    assert "| given |" in result.markdown()
    assert json.loads(json.dumps(result.to_json(), allow_nan=False))["methods"][0]["samples_per_second"] is None
    with pytest.raises(InputError, match="non-empty list"):
        compare(attributor, x, [])
    with pytest.raises(InputError, match="twice"):
        compare(attributor, x, ["exact", "exact"])


# --------------------------------------------------------------------------------------------
# The command line


def _cli(argv: list) -> tuple[int, str, str]:
    import io

    from tf_lrp.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def masking_files(tmp_path_factory, masking) -> dict[str, Path]:
    explainer, x, mask, relevance = masking
    root = tmp_path_factory.mktemp("evaluate")
    explainer.save(root / "net.npz")
    np.save(root / "x.npy", x)
    np.savez(root / "x.npz", x=x, lengths=mask.sum(axis=1))
    np.save(root / "rel.npy", relevance)
    names = {"net": "net.npz", "npy": "x.npy", "npz": "x.npz", "rel": "rel.npy"}
    return {"root": root, **{key: root / name for key, name in names.items()}}


def test_cli_evaluate_of_a_masking_model_is_the_same_from_npy_and_npz(masking_files) -> None:
    files = masking_files
    payloads = []
    for data in ("npy", "npz"):
        out = files["root"] / f"{data}.json"
        code, stdout, stderr = _cli(["evaluate", files["net"], files[data], files["rel"], "-o", out, "--seed", "2"])
        assert (code, stderr) == (0, "")
        assert "(probability)" in stdout
        payloads.append(json.loads(out.read_text()))
    assert payloads[0]["mode"] == "mean"
    assert payloads[0]["orders"] == payloads[1]["orders"]


def test_cli_evaluate_steps_reference_data_and_figure_formats(masking_files) -> None:
    files = masking_files
    out, svg = files["root"] / "c.json", files["root"] / "c.svg"
    argv = ["evaluate", files["net"], files["npy"], files["rel"], "-o", out]
    options = ["--steps", "1000000", "--order", "morf", "--png", svg, "--reference-data", files["npz"]]
    code, _, stderr = _cli([*argv, *options])
    assert (code, stderr) == (0, "")
    assert json.loads(out.read_text())["steps"] == 7  # capped at the longest sample's steps
    assert svg.read_bytes().startswith(b"<?xml")
    for extra, message in [
        (["--steps", "0"], "--steps must be a positive integer; got 0"),
        (["--png", files["root"] / "c.jpg"], "--png must name a .png, .svg or .pdf file"),
        (["--samples", "0"], "--samples must be a positive integer"),
        (["--mode", "zero"], "would become padding"),
        (["--methods", "lrp,best"], "--methods takes names from"),
    ]:
        code, _, stderr = _cli([*argv, *extra])
        assert code == 2
        assert message in stderr
        assert stderr.count("\n") == 1


def test_cli_evaluate_refuses_a_damaged_or_mismatched_relevance_file(masking_files) -> None:
    files = masking_files
    empty, short = files["root"] / "empty.npy", files["root"] / "short.npy"
    empty.write_bytes(b"")
    np.save(short, np.load(files["rel"])[:2])
    for relevance, message in [(empty, "is not a readable .npy file"), (short, "has 2 samples but DATA has 6")]:
        code, _, stderr = _cli(["evaluate", files["net"], files["npy"], relevance, "-o", files["root"] / "bad.json"])
        assert code == 2
        assert message in stderr
        assert stderr.count("\n") == 1
    assert not (files["root"] / "bad.json").exists()


def test_cli_evaluate_png_without_matplotlib_fails_before_any_work(masking_files, monkeypatch) -> None:
    import importlib.util

    files = masking_files
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    out = files["root"] / "never.json"
    argv = ["evaluate", files["net"], files["npy"], files["rel"], "-o", out, "--png", out.with_suffix(".png")]
    code, _, stderr = _cli(argv)
    assert code == 2
    assert stderr.strip() == "tf-lrp evaluate: error: --png needs matplotlib: pip install 'tf_lrp[viz]'"
    assert not out.exists()


def test_cli_compares_methods_into_a_report(masking_files) -> None:
    files = masking_files
    report = files["root"] / "report"
    methods = ["--methods", "lrp,gradient_x_input,random"]
    code, stdout, stderr = _cli(["evaluate", files["net"], files["npz"], *methods, "-o", report, "--steps", "4"])
    assert (code, stderr) == (0, "")
    assert "| lrp | " in stdout
    table = (report / "comparison.md").read_text()
    assert table.count("\n| ") == 4  # header and three methods
    payload = json.loads((report / "comparison.json").read_text())
    assert [m["method"] for m in payload["methods"]] == ["lrp", "gradient_x_input", "random"]
    assert payload["normalize"] == "probability"
    assert all(m["samples_per_second"] > 0 for m in payload["methods"])
    assert (report / "comparison.png").read_bytes().startswith(b"\x89PNG")
    assert np.load(report / "relevance.lrp.npy").shape == (6, 7, 3)
    # a second run reuses the relevances of the same model, data, target and seed
    np.save(report / "relevance.random.npy", np.load(files["rel"]))  # marks the cache: now it is LRP's relevance
    code, stdout, _ = _cli(["evaluate", files["net"], files["npz"], *methods, "-o", report, "--steps", "4"])
    assert code == 0
    assert "reused cached relevances of lrp, gradient_x_input, random" in stdout
    again = {m["method"]: m for m in json.loads((report / "comparison.json").read_text())["methods"]}
    assert again["random"]["morf"] == again["lrp"]["morf"]  # the cached (planted) relevance was used
    assert again["random"]["samples_per_second"] == payload["methods"][2]["samples_per_second"]
    argv = ["evaluate", files["net"], files["npz"], *methods, "-o", report, "--steps", "4"]
    code, stdout, _ = _cli([*argv, "--seed", "1"])
    assert code == 0
    assert "reused" not in stdout
    code, _, stderr = _cli(["evaluate", files["net"], files["npz"], files["rel"], "--methods", "lrp", "-o", report])
    assert code == 2
    assert "drop RELEVANCE" in stderr


def test_cli_evaluate_of_the_demo_works_with_its_defaults(tmp_path) -> None:
    explainer = Explainer.load(DEMO / "model.npz")  # issue 18, bug 1: token 0 is padding
    with np.load(DEMO / "data.npz") as data:
        np.savez(tmp_path / "data.npz", x=data["x"][:40], lengths=data["lengths"][:40])
        np.save(tmp_path / "rel.npy", explainer.explain(data["x"][:40].astype(np.int32)).relevance)
    code, _, stderr = _cli(["evaluate", DEMO / "model.npz", tmp_path / "data.npz", tmp_path / "rel.npy",
                            "-o", tmp_path / "c.json", "--steps", "8"])  # fmt: skip
    assert (code, stderr) == (0, "")
    assert json.loads((tmp_path / "c.json").read_text())["mode"] == "random_draw"
    argv = ["evaluate", DEMO / "model.npz", tmp_path / "data.npz", tmp_path / "rel.npy", "-o", tmp_path / "t.json"]
    code, _, stderr = _cli([*argv, "--mode", "token", "--token", "0"])
    assert code == 2
    assert stderr.startswith("tf-lrp evaluate: error: --token 0 is the model's padding id")
    assert "use --mode random_draw" in stderr


def test_a_scorer_error_names_the_users_sample_not_the_stacked_row(linear) -> None:
    scorer, x, truth = linear

    class Picky(LinearScorer):
        def score(self, x, mask=None):
            rows = np.flatnonzero(np.asarray(x)[:, 0, 0] == 0.0)  # refuses a sample whose first value is 0
            if len(rows):
                raise InputError(f"sample {rows[-1]} is refused")
            return super().score(x, mask)

    with pytest.raises(InputError, match=r"removal point 1-6\) failed: sample [0-4] is refused$"):
        perturbation_curve(Picky(scorer.weights), x, truth, order="lrf")
    tokens = np.array([[4, 5, 6, 0]])
    explainer = Explainer.load(DEMO / "model.npz")  # the token check needs no compiled function
    with pytest.raises(InputError, match=r"token=16 is outside the model's vocabulary \[0, 16\)"):
        perturbation_curve(explainer, tokens, np.ones((1, 4)), mode="token", token=16)
