"""The GRU encoder-decoder forecaster: reference vectors, invariants, errors, ground truth.

Reference: tests/data/seq2seq_gru_*.npz (REFERENCE.md, encoder-decoder section), float64 to
1e-10 relative to the largest value of each array; float32 to 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf_lrp import Explainer, InputError, LayoutError, Seq2SeqExplainer
from tf_lrp.layout import validate_manifest
from tf_lrp.seq2seq import Seq2SeqSpec, validate_seq2seq_manifest

from .conftest import load_reference

REFERENCE = "seq2seq_gru_L2_H6_Tin5_Tout3_S1.npz"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_reference(REFERENCE)


@pytest.fixture(scope="module")
def ex64(ref) -> Seq2SeqExplainer:
    weights = [ref[k] for k in ref["keras_weight_order"]]
    return Seq2SeqExplainer.from_weights(weights, num_layers=2, outputs=1, dtype="float64")


def _close(actual: np.ndarray, expected: np.ndarray, dtype: str = "float64", scale: float | None = None) -> None:
    assert actual.shape == expected.shape
    scale = np.abs(expected).max() if scale is None else scale
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


def _explain(ex: Seq2SeqExplainer, ref: dict[str, np.ndarray], **kwargs):
    options = {"step": int(ref["target_step"]), "output": int(ref["target_output"])}
    options.update(eps=float(ref["eps"]), bias_factor=float(ref["bias_factor"]))
    options.update(kwargs)
    return ex.explain(ref["x"], ref["x_future"], ref["static"], **options)


@pytest.mark.core
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_reference(ref, ex64, dtype: str) -> None:
    ex = ex64 if dtype == "float64" else Seq2SeqExplainer.from_weights(
        [ref[k] for k in ref["keras_weight_order"]], num_layers=2, outputs=1, dtype=dtype
    )
    res = _explain(ex, ref)
    scale = np.abs(ref["lrp_history"]).max()
    _close(res.forecasts, ref["forecasts"], dtype)
    _close(res.history, ref["lrp_history"], dtype)
    _close(res.history_without_seed, ref["lrp_history_without_seed"], dtype)
    _close(res.seed, ref["lrp_seed"], dtype, scale)
    _close(res.future, ref["lrp_future"], dtype, scale)
    _close(res.static, ref["lrp_static"], dtype, scale)
    _close(res.static_per_step, ref["lrp_static_per_step"], dtype, scale)
    _close(res.feedback, ref["lrp_feedback"], dtype, scale)
    _close(res.initial_state_relevance, ref["lrp_initial_state"], dtype, scale)
    if dtype == "float32":
        return
    every = _explain(ex, ref, step=None)
    all_scale = np.abs(ref["lrp_all_steps_history"]).max()
    _close(every.history, ref["lrp_all_steps_history"], dtype)
    _close(every.seed, ref["lrp_all_steps_seed"], dtype, all_scale)
    _close(every.future, ref["lrp_all_steps_future"], dtype, all_scale)
    _close(every.static, ref["lrp_all_steps_static"], dtype, all_scale)
    _close(every.initial_state_relevance, ref["lrp_all_steps_initial_state"], dtype, all_scale)
    gi = _explain(ex, ref, method="gradient_x_input")
    gi_scale = np.abs(ref["gi_history"]).max()
    _close(gi.history, ref["gi_history"], dtype)
    _close(gi.future, ref["gi_future"], dtype, gi_scale)
    _close(gi.static, ref["gi_static"], dtype, gi_scale)
    np.testing.assert_array_equal(gi.initial_state_relevance, 0)
    grad = _explain(ex, ref, method="gradient")
    grad_scale = np.abs(ref["grad_history"]).max()
    _close(grad.history, ref["grad_history"], dtype)
    _close(grad.future, ref["grad_future"], dtype, grad_scale)
    _close(grad.static, ref["grad_static"], dtype, grad_scale)


@pytest.mark.core
def test_reference_conserves_and_merges_the_seed(ref, ex64) -> None:
    res = _explain(ex64, ref)  # the file's bias_factor is 1
    assert float(ref["bias_factor"]) == 1.0
    np.testing.assert_allclose(res.total, res.explained, rtol=1e-12, atol=1e-13)
    merged = res.history_without_seed.copy()
    merged[:, -1, :1] += res.seed
    np.testing.assert_array_equal(res.history, merged)


@pytest.mark.core
def test_all_steps_is_the_sum_of_the_steps(ref, ex64) -> None:
    every = _explain(ex64, ref, step=None, bias_factor=0.0)
    steps = [_explain(ex64, ref, step=k, bias_factor=0.0) for k in range(ref["x_future"].shape[1])]
    for name in ("history", "seed", "future", "static", "initial_state_relevance"):
        np.testing.assert_allclose(getattr(every, name), sum(getattr(s, name) for s in steps), rtol=0, atol=1e-13)
    np.testing.assert_allclose(every.explained, ref["forecasts"][:, :, 0].sum(axis=1), rtol=1e-14)


@pytest.mark.core
def test_later_steps_get_no_relevance(ref, ex64) -> None:
    res = _explain(ex64, ref, step=0)
    np.testing.assert_array_equal(res.future[:, 1:], 0)
    np.testing.assert_array_equal(res.static_per_step[:, 1:], 0)
    negative = _explain(ex64, ref, step=-3)
    np.testing.assert_array_equal(negative.future, res.future)
    assert negative.step == 0


def test_no_retrace_for_new_batch_and_lengths(ref, ex64) -> None:
    _explain(ex64, ref)
    before = ex64.trace_count
    rng = np.random.default_rng(0)
    for batch, t_in, t_out in ((1, 5, 3), (4, 9, 2), (2, 1, 6)):
        ex64.explain(
            rng.normal(size=(batch, t_in, 3)), rng.normal(size=(batch, t_out, 2)), rng.normal(size=(batch, 1)), step=0
        )
    assert ex64.trace_count == before


def test_forecast_matches_explain(ref, ex64) -> None:
    np.testing.assert_allclose(ex64.forecast(ref["x"], ref["x_future"], ref["static"]), ref["forecasts"], atol=1e-14)
    chunked = ex64.forecast(ref["x"], ref["x_future"], ref["static"], batch_size=2)
    np.testing.assert_allclose(chunked, ref["forecasts"], atol=1e-14)


def test_chunks_equal_one_call(ref, ex64) -> None:
    whole = _explain(ex64, ref)
    chunked = _explain(ex64, ref, batch_size=1)
    for name in ("forecasts", "history", "seed", "future", "static_per_step", "feedback", "initial_state_relevance"):
        expected = getattr(whole, name)  # equal up to batch-size-dependent matmul round-off
        np.testing.assert_allclose(getattr(chunked, name), expected, rtol=0, atol=1e-12 * np.abs(expected).max())


# --------------------------------------------------------------------------------------------
# Conservation for random shapes


CONFIGS = [
    Seq2SeqSpec(num_layers=1, units=3, input_size=2, outputs=1, future_size=0, static_size=0, head_units=4),
    Seq2SeqSpec(num_layers=2, units=4, input_size=3, outputs=2, future_size=2, static_size=1, head_units=3),
    Seq2SeqSpec(num_layers=3, units=2, input_size=1, outputs=1, future_size=1, static_size=2, head_units=2),
]


def random_weights(spec: Seq2SeqSpec, rng: np.random.Generator, scale: float = 1.0) -> list[np.ndarray]:
    return [rng.uniform(-scale, scale, size=a.shape) for a in spec.arrays]


@pytest.fixture(scope="module")
def explainers() -> list[Seq2SeqExplainer]:
    rng = np.random.default_rng(7)
    return [Seq2SeqExplainer(spec, random_weights(spec, rng), dtype="float64") for spec in CONFIGS]


@pytest.mark.slow
@given(
    config=st.integers(0, len(CONFIGS) - 1),
    batch=st.integers(1, 3),
    t_in=st.integers(1, 4),
    t_out=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    step=st.one_of(st.none(), st.integers(0, 2)),
    eps=st.sampled_from([1e-6, 1e-3, 0.1]),
)
def test_conservation_random_shapes(explainers, config, batch, t_in, t_out, seed, step, eps) -> None:
    ex = explainers[config]
    spec = ex.spec
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, t_in, spec.input_size))
    future = rng.normal(size=(batch, t_out, spec.future_size))
    static = rng.normal(size=(batch, spec.static_size)) if spec.static_size else None
    step = None if step is None else min(step, t_out - 1)
    output = int(rng.integers(spec.outputs))
    res = ex.explain(x, future, static, step=step, output=output, eps=eps, bias_factor=1.0)
    np.testing.assert_allclose(res.total, res.explained, rtol=0, atol=1e-10 * max(1.0, np.abs(res.explained).max()))
    if step is not None:
        np.testing.assert_array_equal(res.future[:, step + 1 :], 0)


# --------------------------------------------------------------------------------------------
# Construction, schema, files


def test_manifest_validates_and_names_arrays(ex64) -> None:
    spec = validate_seq2seq_manifest(ex64.manifest)
    assert spec == ex64.spec
    names = [a.name for a in spec.arrays]
    assert names[:3] == ["enc_l0_kernel", "enc_l0_recurrent_kernel", "enc_l0_bias"]
    assert names[6:9] == ["dec_l0_kernel", "dec_l0_recurrent_kernel", "dec_l0_bias"]
    assert names[-3:] == ["head1_kernel", "head1_bias", "head2_kernel"]
    assert [a.shape for a in spec.arrays][-3:] == [(7, 6), (6,), (6, 1)]


def test_weights_by_name(ref, ex64) -> None:
    named = {k: ref[k] for k in ref["keras_weight_order"]}
    ex = Seq2SeqExplainer.from_weights(named, num_layers=2, outputs=1, dtype="float64")
    assert ex.fingerprint == ex64.fingerprint


def test_save_load_roundtrip(ref, ex64, tmp_path) -> None:
    path = tmp_path / "forecaster.npz"
    ex64.save(path)
    loaded = Seq2SeqExplainer.load(path)
    assert loaded.dtype == "float64"
    assert loaded.fingerprint == ex64.fingerprint
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(InputError, match="not a tf_lrp network file"):
        Seq2SeqExplainer.load(tmp_path / "other.npz")


def test_the_forecaster_is_a_network_of_one_node(ex64) -> None:
    """Its own manifest reads as a graph: inputs history, future, static; one seq2seq node, per-step scores."""
    layout = validate_manifest(ex64.manifest)
    assert [(spec.name, spec.features, spec.sequence) for spec in layout.inputs] == [
        ("history", 3, True), ("future", 2, True), ("static", 1, False)
    ]
    assert [spec.kind for spec in layout.layers] == ["seq2seq"]
    assert layout.per_step
    assert layout.output_time_input == 1  # the horizon is the future's time axis
    assert layout.manifest["version"] == 2
    assert validate_manifest(layout.manifest) == layout


@pytest.mark.core
def test_explainer_serves_the_forecaster_to_the_reference(ref, ex64, tmp_path) -> None:
    """Explainer (from the forecaster's file) gives the reference's relevance per input, and per step."""
    path = tmp_path / "forecaster.npz"
    ex64.save(path)
    explainer = Explainer.load(path)
    xs = [ref["x"], ref["x_future"], ref["static"]]
    _close(explainer.score(xs), ref["forecasts"])
    numbers = {"eps": float(ref["eps"]), "bias_factor": float(ref["bias_factor"])}
    one = explainer.explain(xs, target=int(ref["target_output"]), step=int(ref["target_step"]), **numbers)
    every = explainer.explain(xs, target=int(ref["target_output"]), **numbers)
    for result, prefix in ((one, "lrp_"), (every, "lrp_all_steps_")):
        history, future, static = result.relevance
        _close(history, ref[prefix + "history"])
        scale = np.abs(ref[prefix + "history"]).max()
        _close(future, ref[prefix + "future"], scale=scale)
        _close(static, ref[prefix + "static"], scale=scale)
        _close(result.initial_state_relevance, ref[prefix + "initial_state"], scale=scale)
    assert ex64.explainer.fingerprint == explainer.fingerprint


def test_explain_dataset_of_the_forecaster_resumes_and_equals_explain(ref, ex64, tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 11
    x, future, static = rng.normal(size=(n, 5, 3)), rng.normal(size=(n, 3, 2)), rng.normal(size=(n, 1))
    direct = ex64.explain(x, future, static, step=1, output=0, bias_factor=1.0)
    memory = ex64.explain_dataset(x, future, static, step=1, output=0, bias_factor=1.0, batch_size=4, progress=False)
    for got, want in zip(memory.relevance, (direct.history, direct.future, direct.static), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(direct.history).max())
    files = ex64.explain_dataset(x, future, static, step=1, bias_factor=1.0, batch_size=4, progress=False,
                                 out=tmp_path / "rel.npy")  # fmt: skip
    loaded = files.load()
    np.testing.assert_allclose(loaded["relevance/history"], direct.history, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loaded["relevance/static"][:, 0, :], direct.static, rtol=0, atol=1e-12)
    # run again: it resumes (every recorded chunk verified against its inputs, none recomputed)
    again = ex64.explain_dataset(x, future, static, step=1, bias_factor=1.0, batch_size=4, progress=False,
                                 out=tmp_path / "rel.npy")  # fmt: skip
    np.testing.assert_array_equal(again.load()["relevance/history"], loaded["relevance/history"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"units": 0}, "units"),
        ({"cell": "lstm"}, "cell"),
        ({"reset_after": False}, "reset_after"),
        ({"outputs": 4}, "exceeds input_size"),
        ({"surprise": 1}, "Additional properties"),
    ],
)
def test_manifest_errors(ex64, change, match) -> None:
    manifest = ex64.manifest
    manifest["layers"][0].update(change)
    with pytest.raises(LayoutError, match=match):
        validate_seq2seq_manifest(manifest)


def test_manifest_with_other_layers(ex64) -> None:
    manifest = ex64.manifest
    manifest["layers"].append({"kind": "dense", "units": 1, "input_size": 1})
    with pytest.raises(LayoutError, match="exactly one layer"):
        validate_seq2seq_manifest(manifest)


def test_weight_errors(ref) -> None:
    weights = [ref[k] for k in ref["keras_weight_order"]]
    with pytest.raises(LayoutError, match="has 15 weight arrays"):
        Seq2SeqExplainer.from_weights(weights[:-1], num_layers=2, outputs=1)
    with pytest.raises(LayoutError, match="has 9 weight arrays"):
        Seq2SeqExplainer.from_weights(weights, num_layers=1, outputs=1)
    with pytest.raises(LayoutError, match=r"head2_kernel .* expected \(head_units, outputs=2\)"):
        Seq2SeqExplainer.from_weights(weights, num_layers=2, outputs=2)
    transposed = list(weights)
    transposed[4] = weights[4].T
    with pytest.raises(LayoutError, match=r"enc_l1_recurrent_kernel.*transposed"):
        Seq2SeqExplainer.from_weights(transposed, num_layers=2, outputs=1)
    bad = list(weights)
    bad[13] = np.full_like(weights[13], np.nan)
    with pytest.raises(LayoutError, match=r"head1_bias.*NaN"):
        Seq2SeqExplainer.from_weights(bad, num_layers=2, outputs=1)
    with pytest.raises(InputError, match="num_layers must be a positive int"):
        Seq2SeqExplainer.from_weights(weights, num_layers=0, outputs=1)
    with pytest.raises(InputError, match="dtype must be one of"):
        Seq2SeqExplainer.from_weights(weights, num_layers=2, outputs=1, dtype="float16")
    named = {k: ref[k] for k in ref["keras_weight_order"][:-1]}
    with pytest.raises(LayoutError, match="lacks"):
        Seq2SeqExplainer.from_weights(named, num_layers=2, outputs=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": np.zeros((3, 5))}, r"x must have shape \(batch, T_in, 3\)"),
        ({"x": np.zeros((3, 5, 4))}, "x has 4 features per step"),
        ({"x": np.zeros((0, 5, 3))}, "x is empty"),
        ({"x": np.full((3, 5, 3), np.nan)}, "x contains 45 NaN"),
        ({"x": np.full((3, 5, 3), "a")}, "must hold real numbers"),
        ({"x_future": None}, "x_future is required"),
        ({"x_future": np.zeros((2, 3, 2))}, r"x_future must be \(batch=3"),
        ({"x_future": np.zeros((3, 3, 1))}, r"x_future must be \(batch=3"),
        ({"x_future": np.zeros((3, 0, 2))}, "0 time steps"),
        ({"static": None}, "static is required"),
        ({"static": np.zeros((3, 2))}, r"static must be \(batch=3, 1\)"),
        ({"static": np.array([[1.0], [np.inf], [0.0]])}, "static contains 1 NaN or infinite"),
        ({"step": 3}, "step=3 is out of range"),
        ({"step": 1.0}, "step must be None"),
        ({"output": 1}, "output=1 is out of range"),
        ({"output": None}, "output must be an int"),
        ({"method": "occlusion"}, "unknown method"),
        ({"eps": -1.0}, "eps must be >= 0"),
        ({"eps": float("nan")}, "eps must be finite"),
        ({"bias_factor": 2.0}, r"bias_factor must lie in \[0, 1\]"),
        ({"bias_factor": "1"}, "bias_factor must be a real number"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
    ],
)
def test_explain_errors(ref, ex64, kwargs, match) -> None:
    arguments = {"x": ref["x"], "x_future": ref["x_future"], "static": ref["static"], **kwargs}
    with pytest.raises(InputError, match=match):
        ex64.explain(**arguments)


def test_static_refused_when_absent(explainers) -> None:
    ex = explainers[0]
    with pytest.raises(InputError, match="has no static features"):
        ex.explain(np.zeros((1, 2, 2)), np.zeros((1, 1, 0)), static=np.ones((1, 1)))


# --------------------------------------------------------------------------------------------
# Ground truth: a forecaster trained on a task whose correct explanation is known


LAG, T_IN, T_OUT = 2, 6, 2


def _copy_task(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y_0 = x[:, LAG, 1] (a driver copied from a known lag), y_1 = x_future[:, 1, 0]; all else is noise."""
    x = rng.uniform(-1, 1, size=(n, T_IN, 2))
    future = rng.uniform(-1, 1, size=(n, T_OUT, 1))
    y = np.stack([x[:, LAG, 1], future[:, 1, 0]], axis=1)[..., None]
    return x, future, y


def _train(spec: Seq2SeqSpec, steps: int) -> list[np.ndarray]:
    """Adam on the forecaster's own forward (keras.ops, differentiated by tf.GradientTape)."""
    import tensorflow as tf

    from tf_lrp.seq2seq import forward

    rng = np.random.default_rng(0)
    variables = [tf.Variable(rng.uniform(-0.5, 0.5, size=a.shape)) for a in spec.arrays]
    first = [tf.Variable(tf.zeros_like(v)) for v in variables]
    second = [tf.Variable(tf.zeros_like(v)) for v in variables]
    x, future, y = _copy_task(rng, 2048)
    static = np.zeros((len(x), 0))

    @tf.function
    def train_step(x, future, static, y, t, rate):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((forward(spec, variables, x, future, static).forecasts - y) ** 2)
        for v, g, m, s in zip(variables, tape.gradient(loss, variables), first, second, strict=True):
            m.assign(0.9 * m + 0.1 * g)
            s.assign(0.999 * s + 0.001 * g * g)
            v.assign_sub(rate * (m / (1 - 0.9**t)) / (tf.sqrt(s / (1 - 0.999**t)) + 1e-8))
        return loss

    batch = 128
    for i in range(1, steps + 1):
        window = slice((i * batch) % len(x), (i * batch) % len(x) + batch)
        rate = 0.02 if i < 0.75 * steps else 0.005
        train_step(x[window], future[window], static[window], y[window], tf.constant(float(i), tf.float64),
                   tf.constant(rate, tf.float64))
    return [v.numpy() for v in variables]


@pytest.mark.slow
def test_ground_truth_copy_task() -> None:
    spec = Seq2SeqSpec(num_layers=1, units=8, input_size=2, outputs=1, future_size=1, head_units=8)
    ex = Seq2SeqExplainer(spec, _train(spec, steps=400), dtype="float64")
    x, future, y = _copy_task(np.random.default_rng(1), 200)
    step0 = ex.explain(x, future, step=0, eps=1e-3)
    step1 = ex.explain(x, future, step=1, eps=1e-3)
    assert np.abs(step0.forecasts - y).mean() < 0.05, "the forecaster did not learn the task"
    # the correct explanation of y_0 is x[:, LAG, 1] at (LAG, 1) and nothing elsewhere; of y_1 it is future[:, 1, 0]
    assert np.corrcoef(step0.history[:, LAG, 1], x[:, LAG, 1])[0, 1] > 0.98
    assert np.corrcoef(step1.future[:, 1, 0], future[:, 1, 0])[0, 1] > 0.98
    # flat position of the copied input in [history (T_IN x 2) ; future (T_OUT x 1)]
    for res, expected, copied in ((step0, LAG * 2 + 1, x[:, LAG, 1]), (step1, T_IN * 2 + 1, future[:, 1, 0])):
        maps = np.concatenate([np.abs(res.history).reshape(200, -1), np.abs(res.future).reshape(200, -1)], axis=1)
        assert np.argmax(maps.mean(axis=0)) == expected
        clear = np.abs(copied) > 0.3  # where the copied value is near 0 its relevance is small, as it should be
        assert np.mean(np.argmax(maps[clear], axis=1) == expected) > 0.95
    np.testing.assert_array_equal(step0.future[:, 1], 0)
