"""The invariants harness: every registered node type × every method, generated from the registries.

For each network of ``tests/networks.py`` (together they use every kind in ``tf_lrp.nodes.NODES``;
a kind no network uses fails :func:`test_every_node_kind_is_covered`) and each method of
``tf_lrp.methods.METHODS`` (a new method is covered by registering it):

* the forward pass equals the Keras model's (float64, 1e-9; 1e-6 where Keras itself is float32);
* a batch gives what each sample gives alone (float64, 1e-12);
* masked (padded) steps get exactly zero relevance;
* LRP at bias_factor = 1 conserves (relevance + initial-state share = explained score, 1e-9);
* Gradient×Input equals autodiff (``tf.GradientTape``) of the network's own forward pass;
* for per-step outputs, ``step=None`` is the sum of the single steps' explanations (linearity of
  the seed), for LRP and for the gradient methods.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_lrp import Explainer, backend
from tf_lrp.methods import EXTRA_INPUTS, METHODS
from tf_lrp.nodes import NODES

from .networks import KERAS_TOLERANCE, KINDS, NETWORKS, Case

pytestmark = pytest.mark.core


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def case(request: pytest.FixtureRequest) -> Case:
    return NETWORKS[request.param](np.random.default_rng(7))


def _explain(case: Case, method: str, x=None, lengths=None, explainer=None, **options):
    x = case.x if x is None else x
    lengths = case.lengths if lengths is None else lengths
    explainer = case.explainer if explainer is None else explainer
    several = isinstance(x, tuple)
    if explainer.layout.inputs[0].tokens:
        return explainer.explain(x, method=method, **options)  # mask_zero pads
    if several:
        masks = [
            None if n is None else np.arange(x_k.shape[1])[None, :] < n[:, None]
            for x_k, n in zip(x, lengths, strict=True)
        ]  # None: a vector input (no time axis)
        return explainer.explain(list(x), method=method, mask=masks, **options)
    return explainer.explain(x, method=method, lengths=lengths, **options)


def _methods(case: Case) -> list[str]:
    several = len(case.explainer.layout.inputs) > 1
    return [m for m in sorted(METHODS) if not (several and m in EXTRA_INPUTS)]


def _parts(relevance) -> tuple[np.ndarray, ...]:
    return relevance if isinstance(relevance, tuple) else (relevance,)


def test_every_node_kind_is_covered() -> None:
    used = set().union(*KINDS.values())
    assert set(NODES) <= used, f"no network of tests/networks.py uses {sorted(set(NODES) - used)}"


def test_zoo_declares_its_kinds(case: Case) -> None:
    assert {spec.kind for spec in case.explainer.layout.layers} == case.kinds


def test_forward_equals_keras(case: Case) -> None:
    ours = case.explainer.score(list(case.x) if isinstance(case.x, tuple) else case.x,
                                **_mask_kwargs(case))  # fmt: skip
    theirs = keras.ops.convert_to_numpy(case.keras_model(case.x if not isinstance(case.x, tuple) else list(case.x)))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=KERAS_TOLERANCE * max(1.0, np.abs(theirs).max()))


def _mask_kwargs(case: Case) -> dict:
    if case.explainer.layout.inputs[0].tokens:
        return {}
    if isinstance(case.x, tuple):
        return {"mask": list(case.masks)}
    return {"lengths": case.lengths}


def test_multi_input_refuses_single_input_methods(case: Case) -> None:
    if len(case.explainer.layout.inputs) == 1:
        pytest.skip("single input")
    for method in EXTRA_INPUTS:
        with pytest.raises(Exception, match="takes networks with one input"):
            _explain(case, method)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batched_equals_per_sample(case: Case, method: str) -> None:
    if method not in _methods(case) or method == "random":  # the control's noise is drawn per call
        pytest.skip(f"{method} is not run on this network")
    whole = _explain(case, method, bias_factor=1.0)
    for b in (0, len(case.inputs[0]) - 1):  # the first sample is unpadded, the last padded
        x = tuple(x_k[b : b + 1] for x_k in case.inputs)
        lengths = tuple(
            None if n is None else n[b : b + 1]
            for n in (case.lengths if isinstance(case.lengths, tuple) else (case.lengths,))
        )
        one = _explain(case, method, x if len(x) > 1 else x[0], lengths if len(lengths) > 1 else lengths[0],
                       bias_factor=1.0)  # fmt: skip
        for part_whole, part_one in zip(_parts(whole.relevance), _parts(one.relevance), strict=True):
            scale = max(1.0, np.abs(part_whole[b]).max())
            np.testing.assert_allclose(part_one[0], part_whole[b], rtol=0, atol=1e-12 * scale, err_msg=method)
        np.testing.assert_allclose(one.explained_score[0], whole.explained_score[b], rtol=1e-12)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_masked_steps_get_exactly_zero(case: Case, method: str) -> None:
    if method not in _methods(case):
        pytest.skip(f"{method} is not run on this network")
    result = _explain(case, method, bias_factor=1.0)
    for part, mask in zip(_parts(result.relevance), case.masks, strict=True):
        if mask is None:  # a vector input has no steps
            continue
        assert not mask.all(), "the zoo pads every sequence input"
        assert np.all(part[~mask] == 0.0), method


@pytest.mark.parametrize("eps", [1e-3, 0.3])
def test_lrp_conserves_at_bias_factor_one(case: Case, eps: float) -> None:
    if not all(NODES[spec.kind].conserves for spec in case.explainer.layout.layers):
        pytest.skip("a node of this network does not conserve")
    result = _explain(case, "lrp", eps=eps, bias_factor=1.0)
    total = result.relevance_sum + result.initial_state_relevance
    np.testing.assert_allclose(total, result.explained_score, rtol=1e-9, atol=1e-12)


def test_gradient_x_input_equals_autodiff(case: Case) -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.GradientTape")
    import tensorflow as tf

    from tf_lrp.methods import reduced_scores, step_weights
    from tf_lrp.network import forward

    ex = case.explainer
    result = _explain(case, "gradient_x_input")
    embedded = _parts(_explain(case, "lrp").relevance)  # shapes at the attribution points
    points = [tf.Variable(_at_point(case, k, part)) for k, part in enumerate(embedded)]
    masks = tuple(None if m is None else tf.constant(m) for m in case.masks)
    with tf.GradientTape() as tape:
        fwd = forward(ex.layout, [tf.constant(w) for w in ex.weights], tuple(points), masks, embedded=True)
        scores = reduced_scores(fwd, step_weights(fwd, None))
        picked = tf.reduce_sum(scores * tf.one_hot(result.target, scores.shape[-1], dtype=scores.dtype))
    grads = tape.gradient(picked, points)
    for k, (part, grad) in enumerate(zip(_parts(result.relevance), grads, strict=True)):
        expected = grad.numpy() * points[k].numpy()
        np.testing.assert_allclose(part, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("method", ["lrp", "gradient_x_input"])
def test_fused_loop_steps_equal_the_plain_graph(case: Case, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``jit_compile="auto"`` on a batch large enough (every loop step one XLA function) equals ``False``."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("step fusion is TensorFlow's (JAX compiles whole calls)")
    ex = case.explainer
    if not any(NODES[spec.kind].loop_width(spec) for spec in ex.layout.layers):
        pytest.skip("no time loop")
    expected = _explain(case, method, bias_factor=1.0)  # the zoo's small batch: the plain graph
    monkeypatch.setattr(backend, "FUSED_STEP_NUMBERS", 1)  # fuse whatever the batch
    fused = Explainer(ex.layout, ex.weights, dtype=ex.dtype, rules=ex.rules, jit_compile="auto")
    result = _explain(case, method, explainer=fused, bias_factor=1.0)
    assert [c.fused_from for c in fused._compiled.values()] == [1]
    assert all(c.fused_from is None or c.fused_from > len(case.inputs[0]) for c in ex._compiled.values())
    for part, part_expected in zip(_parts(result.relevance), _parts(expected.relevance), strict=True):
        np.testing.assert_allclose(part, part_expected, rtol=0, atol=1e-12 * max(1.0, np.abs(part_expected).max()))
    np.testing.assert_allclose(result.explained_score, expected.explained_score, rtol=1e-12)


def _at_point(case: Case, k: int, like: np.ndarray) -> np.ndarray:
    """Input ``k`` at its attribution point: the embedded vectors for a token input."""
    layout = case.explainer.layout
    if not layout.inputs[k].tokens:
        return case.inputs[k]
    table = case.explainer.weights[0]
    return table[case.inputs[k]]


@pytest.mark.parametrize("method", ["lrp", "gradient_x_input"])
def test_all_steps_is_the_sum_of_single_steps(case: Case, method: str) -> None:
    if not case.explainer.layout.per_step:
        pytest.skip("one output per sample")
    target = np.zeros(len(case.inputs[0]), dtype=int)
    whole = _explain(case, method, target=target, bias_factor=1.0)
    totals = [np.zeros_like(part) for part in _parts(whole.relevance)]
    explained = np.zeros_like(whole.explained_score)
    timed = case.explainer.layout.output_time_input  # the input whose time axis the output follows
    mask = case.masks[timed]
    for step in range(case.inputs[timed].shape[1]):
        one = _explain(case, method, target=target, step=step, bias_factor=1.0)
        valid = np.ones(len(target), dtype=bool) if mask is None else mask[:, step]
        for total, part in zip(totals, _parts(one.relevance), strict=True):
            total += np.where(valid.reshape((-1,) + (1,) * (part.ndim - 1)), part, 0.0)
        explained += np.where(valid, one.explained_score, 0.0)
    np.testing.assert_allclose(explained, whole.explained_score, rtol=1e-12)
    for total, part in zip(totals, _parts(whole.relevance), strict=True):
        np.testing.assert_allclose(total, part, rtol=0, atol=1e-10 * max(1.0, np.abs(total).max()))
