"""Bad arguments to ``Explainer`` and ``explain`` raise InputError naming the argument and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from tf_lrp import Explainer, InputError, TfLrpError

from .test_layout import lstm_weights


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return Explainer.from_weights(lstm_weights(np.random.default_rng(1)), cell="lstm", bidirectional=True)


@pytest.fixture
def x(rng) -> np.ndarray:
    return rng.normal(size=(4, 5, 3)).astype(np.float32)


def test_errors_are_value_errors_and_tf_lrp_errors() -> None:
    assert issubclass(InputError, ValueError)
    assert issubclass(InputError, TfLrpError)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((5, 3)), r"x must have shape \(batch, time, 3\); got \(5, 3\) \(one sequence\? add a batch axis"),
        (np.zeros((2, 5, 3, 1)), r"x must have shape \(batch, time, 3\); got \(2, 5, 3, 1\)"),
        (np.zeros((2, 5, 4)), r"x has 4 features per step but the network's first layer expects 3"),
        (np.zeros((0, 5, 3)), r"x is empty: the batch has 0 samples"),
        (np.zeros((2, 0, 3)), r"x has 0 time steps"),
        (np.array([[["a", "b", "c"]]]), r"x must hold real numbers; got dtype <U1"),
    ],
)
def test_bad_x(explainer, bad, message) -> None:
    with pytest.raises(InputError, match=message):
        explainer.explain(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x_names_the_first_index(explainer, x, value) -> None:
    x[2, 3, 1] = value
    with pytest.raises(InputError, match=r"x contains 1 NaN or infinite values \(first at index \(2, 3, 1\)\)"):
        explainer.explain(x)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (2, r"target out of range: the network has 2 outputs \(0..1\); got min 2, max 2"),
        (-1, r"target out of range"),
        (np.array([0, 1, 0]), r"target must be None, an int or an array of shape \(4,\); got \(3,\)"),
        (np.array([0.0, 1.0, 0.0, 1.0]), r"target must be None, an int or \(4,\) integers; got dtype float64"),
        (np.array([True, False, True, False]), r"got dtype bool"),
    ],
)
def test_bad_target(explainer, x, target, message) -> None:
    with pytest.raises(InputError, match=message):
        explainer.explain(x, target=target)


def test_unknown_method_lists_the_choices(explainer, x) -> None:
    with pytest.raises(InputError, match=r"unknown method 'deeplift'; choose one of \[.*'gradient_x_input'.*'lrp'"):
        explainer.explain(x, method="deeplift")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eps": -1e-3}, r"eps must be >= 0; got -0.001"),
        ({"eps": float("nan")}, r"eps must be finite"),
        ({"eps": "small"}, r"eps must be a real number; got 'small'"),
        ({"bias_factor": 1.5}, r"bias_factor must lie in \[0, 1\]; got 1.5"),
        ({"bias_factor": True}, r"bias_factor must be a real number"),
        ({"batch_size": 0}, r"batch_size must be a positive int or None; got 0"),
        ({"mask": np.ones((4, 4), bool)}, r"mask must have shape \(batch, time\) = \(4, 5\); got \(4, 4\)"),
        ({"mask": np.full((4, 5), 2)}, r"mask must be boolean"),
        ({"mask": np.zeros((4, 5), bool)}, r"mask marks no valid step in sample 0"),
        ({"lengths": np.array([5, 5, 0, 5])}, r"lengths must lie in \[1, 5\]; got min 0, max 5"),
        ({"lengths": np.array([5, 5])}, r"lengths must be \(4,\) integers"),
        ({"lengths": np.array([5] * 4), "mask": np.ones((4, 5), bool)}, r"pass either mask= or lengths=, not both"),
    ],
)
def test_bad_options(explainer, x, kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        explainer.explain(x, **kwargs)


def test_bad_constructor_arguments(rng) -> None:
    weights = lstm_weights(rng)
    with pytest.raises(InputError, match=r"cell must be one of \['gru', 'lstm', 'simple_rnn'\]; got 'rnn'"):
        Explainer.from_weights(weights, cell="rnn")
    with pytest.raises(InputError, match="dtype"):
        Explainer.from_weights(weights, cell="lstm", bidirectional=True, dtype="float16")
    with pytest.raises(InputError, match="from_manifest"):
        Explainer.from_weights({"0/kernel": weights[0]}, cell="lstm")


def test_target_forms_agree(explainer, x) -> None:
    predicted = explainer.explain(x)
    np.testing.assert_array_equal(predicted.target, predicted.scores.argmax(axis=1))
    one = explainer.explain(x, target=1)
    np.testing.assert_array_equal(one.target, np.ones(4))
    per_sample = explainer.explain(x, target=np.array([1, 1, 1, 1], dtype=np.uint8))
    np.testing.assert_array_equal(per_sample.relevance, one.relevance)
    # the explained score is the target's own score
    np.testing.assert_array_equal(one.explained_score, one.scores[:, 1])


def test_integer_features_are_accepted_and_cast(explainer) -> None:
    x = np.arange(30).reshape(2, 5, 3) % 3
    res = explainer.explain(x)
    assert res.relevance.dtype == np.float32
    assert res.relevance.shape == (2, 5, 3)


def test_chunking_does_not_change_results(explainer, rng) -> None:
    x = rng.normal(size=(7, 5, 3)).astype(np.float32)
    whole = explainer.explain(x, bias_factor=1.0)
    chunked = explainer.explain(x, bias_factor=1.0, batch_size=3)
    np.testing.assert_allclose(chunked.relevance, whole.relevance, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(chunked.target, whole.target)


@pytest.fixture(scope="module")
def with_static():
    """The invariants zoo's network: an LSTM over a sequence (3 features) and a static vector (2)."""
    from tests.networks import sequence_and_static

    return sequence_and_static(np.random.default_rng(5))


def test_a_vector_input_takes_batch_by_features(with_static) -> None:
    explainer, (series, static) = with_static.explainer, with_static.x
    result = explainer.explain({"series": series, "static": static})
    assert result.relevance[1].shape == static.shape
    assert result.mask[1] is None  # the series' Masking gives its steps a mask; the vector has none
    assert result.mask[0].shape == series.shape[:2]
    with pytest.raises(InputError, match=r"x\['static'\] is one vector per sample: it must have shape \(batch, 2\)"):
        explainer.explain([series, static[:, None, :]])
    with pytest.raises(InputError, match=r"input 'static' is one vector per sample and has no time steps to mask"):
        explainer.explain([series, static], mask=[None, np.ones((len(static), 1), bool)])


def test_a_vector_input_refuses_what_needs_time_steps(with_static, tmp_path) -> None:
    explainer, x = with_static.explainer, list(with_static.x)
    with pytest.raises(InputError, match="takes networks with one input"):
        explainer.explain(x, method="occlusion")
    with pytest.raises(InputError, match=r"input\(s\) \['static'\] are one vector per sample: explain_dataset takes"):
        explainer.explain_dataset(iter([x]), out=tmp_path / "rel.npy")  # a stream: no vector inputs


def test_explain_dataset_carries_a_vector_input_as_one_step(with_static, tmp_path) -> None:
    explainer, (series, static) = with_static.explainer, with_static.x
    lengths = with_static.lengths[0]
    direct = explainer.explain([series, static], lengths=[lengths, None], bias_factor=1.0)
    memory = explainer.explain_dataset([series, static], lengths=[lengths, None], batch_size=3, progress=False,
                                       bias_factor=1.0)  # fmt: skip
    assert memory.relevance[1].shape == static.shape
    for got, want in zip(memory.relevance, direct.relevance, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    files = explainer.explain_dataset(
        {"series": series, "static": static}, lengths={"series": lengths, "static": None}, batch_size=3,
        progress=False, bias_factor=1.0, out=tmp_path / "rel.npy",
    )  # fmt: skip
    np.testing.assert_allclose(files.load()["relevance/static"][:, 0, :], direct.relevance[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("value", ["yes", 1, None, "AUTO"])
def test_bad_jit_compile_names_the_choices(value) -> None:
    with pytest.raises(InputError, match=r'jit_compile must be True, False or "auto"; got '):
        Explainer.from_weights(lstm_weights(np.random.default_rng(1)), cell="lstm", bidirectional=True,
                               jit_compile=value)  # fmt: skip
