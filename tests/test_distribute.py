"""explain / explain_dataset with a tf.distribute.Strategy: the batch split over replicas, gathered in order.

Logical devices must be configured before TensorFlow initialises its devices, which the rest of
the suite has long done, so the two-device runs happen in a subprocess: it loads a saved
explainer, configures two logical CPUs, runs with ``MirroredStrategy`` over both and writes the
results; this process compares them with its own single-device run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from tf_lrp import Explainer, InputError
from tf_lrp.layout import DenseSpec, EmbeddingSpec, RecurrentSpec, to_manifest

from .test_dataset import lstm_arrays

D, H, C, T, N = 3, 5, 2, 9, 101  # N odd: the last chunk splits unevenly over two replicas
V, E = 12, 4
TOL = {"rtol": 0, "atol": 1e-12}
FIELDS = ("relevance", "scores", "target", "initial_state_relevance")

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute needs TensorFlow")


@pytest.fixture(scope="module")
def feat() -> Explainer:
    """A float64 bidirectional LSTM on (B, T, 3) features."""
    rng = np.random.default_rng(0)
    weights = [*lstm_arrays(rng, D, H, 2), rng.normal(0, 0.5, (2 * H, C)), rng.normal(0, 0.1, (C,))]
    return Explainer.from_weights(weights, cell="lstm", bidirectional=True, dtype="float64")


@pytest.fixture(scope="module")
def tokens() -> Explainer:
    """A float64 Embedding(mask_zero) -> GRU -> Dense token model."""
    rng = np.random.default_rng(1)
    layers = [EmbeddingSpec(V, E, mask_zero=True), RecurrentSpec("gru", H, E), DenseSpec(C, H)]
    weights = [
        rng.normal(0, 1, (V, E)),
        rng.normal(0, 0.5, (E, 3 * H)),
        rng.normal(0, 0.5, (H, 3 * H)),
        rng.normal(0, 0.2, (2, 3 * H)),
        rng.normal(0, 0.5, (H, C)),
        np.zeros(C),
    ]
    return Explainer.from_manifest(to_manifest(layers), weights, dtype="float64")


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    ids = rng.integers(1, V, (N, T))
    ids[np.arange(T)[None, :] >= rng.integers(1, T + 1, N)[:, None]] = 0  # post-padding, ragged
    return {"x": rng.normal(size=(N, T, D)), "lengths": rng.integers(1, T + 1, N), "ids": ids.astype(np.int32)}


SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from tf_lrp import Explainer

    folder = sys.argv[1]
    arrays = dict(np.load(folder + "/data.npz", allow_pickle=False))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    runs = {
        "feat": (Explainer.load(folder + "/feat.npz"), arrays["x"], {"lengths": arrays["lengths"]}),
        "tokens": (Explainer.load(folder + "/tokens.npz"), arrays["ids"], {}),
    }
    results = {}
    for name, (explainer, x, extra) in runs.items():
        result = explainer.explain_dataset(x, batch_size=16, progress=False, strategy=strategy, **extra)
        for field in ("relevance", "scores", "target", "initial_state_relevance"):
            results[f"{name}.{field}"] = getattr(result, field)
    # IG: its shared per-call arguments (path points) are broadcast, not split
    explainer = runs["feat"][0]
    ig = explainer.explain(arrays["x"][:7], method="integrated_gradients", steps=4, strategy=strategy)
    results["ig.relevance"] = ig.relevance
    out = folder + "/stream.npy"
    explainer.explain_dataset(arrays["x"], lengths=arrays["lengths"], batch_size=16, out=out, progress=False,
                              strategy=strategy)
    np.savez(folder + "/results.npz", **results)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "devices": list(strategy.extended.worker_devices)}))
    """
)


@pytest.mark.slow
def test_two_logical_cpus_match_the_single_device_run(feat, tokens, data, tmp_path: Path) -> None:
    feat.save(tmp_path / "feat.npz")
    tokens.save(tmp_path / "tokens.npz")
    np.savez(tmp_path / "data.npz", **data)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert len(report["devices"]) == 2
    with np.load(tmp_path / "results.npz", allow_pickle=False) as stored:
        results = {key: stored[key] for key in stored.files}
    references = {
        "feat": feat.explain_dataset(data["x"], lengths=data["lengths"], batch_size=16, progress=False),
        "tokens": tokens.explain_dataset(data["ids"], batch_size=16, progress=False),
    }
    for name, reference in references.items():
        for field in FIELDS:
            expected = getattr(reference, field)
            mirrored = results[f"{name}.{field}"]
            assert mirrored.shape == expected.shape, (name, field)
            np.testing.assert_allclose(mirrored, expected, **TOL, err_msg=f"{name}.{field} (2 replicas)")
    np.testing.assert_array_equal(results["feat.target"], references["feat"].target)
    ig = feat.explain(data["x"][:7], method="integrated_gradients", steps=4)
    np.testing.assert_allclose(results["ig.relevance"], ig.relevance, **TOL)
    streamed = np.load(tmp_path / "stream.npy", allow_pickle=False)
    np.testing.assert_allclose(streamed, references["feat"].relevance, **TOL)


def test_one_device_strategy_in_process(feat, data) -> None:
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    reference = feat.explain_dataset(data["x"][:21], lengths=data["lengths"][:21], batch_size=8, progress=False)
    result = feat.explain_dataset(
        data["x"][:21], lengths=data["lengths"][:21], batch_size=8, progress=False, strategy=strategy
    )
    for field in FIELDS:
        np.testing.assert_allclose(getattr(result, field), getattr(reference, field), **TOL)
    one = feat.explain(data["x"][:1], lengths=data["lengths"][:1], strategy=strategy)  # a batch of one
    np.testing.assert_allclose(one.relevance, reference.relevance[:1], **TOL)


def test_default_strategy_in_process(feat, data) -> None:
    import tensorflow as tf

    result = feat.explain(data["x"][:5], strategy=tf.distribute.get_strategy())
    np.testing.assert_allclose(result.relevance, feat.explain(data["x"][:5]).relevance, **TOL)


@pytest.mark.parametrize("strategy", ["mirrored", object(), 2])
def test_not_a_strategy(feat, data, strategy) -> None:
    with pytest.raises(InputError, match=r"strategy must be a tf\.distribute\.Strategy"):
        feat.explain_dataset(data["x"][:4], progress=False, strategy=strategy)
    with pytest.raises(InputError, match=r"strategy must be a tf\.distribute\.Strategy"):
        feat.explain(data["x"][:4], strategy=strategy)


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from tf_lrp import Explainer, InputError

    explainer = Explainer.load(__import__("sys").argv[1])
    try:
        explainer.explain_dataset(np.zeros((2, 3, 3)), progress=False, strategy=object())
    except InputError as exc:
        print("InputError:", exc)
    """
)


@pytest.mark.slow
def test_strategy_is_refused_on_jax(feat, tmp_path: Path) -> None:
    pytest.importorskip("jax")
    feat.save(tmp_path / "feat.npz")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax"}
    completed = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "feat.npz")], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "InputError: strategy= needs the TensorFlow backend; the active Keras backend is 'jax'" in completed.stdout
