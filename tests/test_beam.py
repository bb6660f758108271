"""tf_lrp.beam and scripts/beam_pipeline.py: Beam's DirectRunner gives explain_dataset's results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from apache_beam.io.localfilesystem import LocalFileSystem

from tf_lrp import Explainer, InputError
from tf_lrp.beam import ExplainerModelHandler, load_explainer, to_record

D, H, C, T = 3, 5, 2, 8
TOL = {"rtol": 0, "atol": 1e-12}
ROOT = Path(__file__).resolve().parents[1]


def weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(2):
        arrays += [rng.normal(0, 0.5, (D, 4 * H)), rng.normal(0, 0.5, (H, 4 * H)), rng.normal(0, 0.2, (4 * H,))]
    return [*arrays, rng.normal(0, 0.5, (2 * H, C)), rng.normal(0, 0.1, (C,))]


class PrefixedLocalFileSystem(LocalFileSystem):
    """Local files under a ``tflrptest://`` scheme: a stand-in for gs:// that needs no network."""

    @classmethod
    def scheme(cls) -> str:
        return "tflrptest"

    def open(self, path, *args, **kwargs):
        return super().open(path.removeprefix("tflrptest://"), *args, **kwargs)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Explainer, Path]:
    explainer = Explainer.from_weights(weights(), cell="lstm", bidirectional=True, dtype="float64")
    path = tmp_path_factory.mktemp("beam") / "net.npz"
    explainer.save(path)
    return explainer, path


def pipeline_module():
    spec = importlib.util.spec_from_file_location("beam_pipeline", ROOT / "scripts" / "beam_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_direct_runner_matches_explain_dataset(saved, tmp_path: Path) -> None:
    explainer, model = saved
    rng = np.random.default_rng(3)
    shards = [rng.normal(size=(n, T, D)) for n in (120, 97, 83)]  # 300 sequences
    for number, shard in enumerate(shards):
        np.save(tmp_path / f"part-{number}.npy", shard)
    out = tmp_path / "out"
    out.mkdir()
    pipeline_module().main(
        ["--model", str(model), "--input", str(tmp_path / "part-*.npy"), "--output", str(out),
         "--max-batch-size", "64", "--runner", "DirectRunner"]
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [f"part-{n}.explained.npz" for n in range(3)]  # no temp left
    reference = explainer.explain_dataset(np.concatenate(shards), batch_size=50, progress=False)
    start = 0
    for number, shard in enumerate(shards):
        with np.load(out / f"part-{number}.explained.npz", allow_pickle=False) as stored:
            result = {key: stored[key] for key in stored.files}
        rows = slice(start, start + len(shard))
        np.testing.assert_array_equal(result["index"], np.arange(len(shard)))
        np.testing.assert_allclose(result["relevance"], reference.relevance[rows], **TOL)
        np.testing.assert_allclose(result["scores"], reference.scores[rows], **TOL)
        np.testing.assert_array_equal(result["target"], reference.target[rows])
        np.testing.assert_allclose(result["initial_state_relevance"], reference.initial_state_relevance[rows], **TOL)
        start += len(shard)


@pytest.mark.slow
def test_tfrecord_shard_matches_explain_dataset(saved, tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    explainer, model = saved
    rng = np.random.default_rng(5)
    n = 70
    x = rng.normal(size=(n, T, D)).astype(np.float32)  # float_list holds float32
    steps = np.full(n, T)
    steps[[3, 40]] = T - 3  # two shorter records: zero-padded relevance in the results
    lengths = steps.copy()
    lengths[::4] = rng.integers(1, T - 3, size=len(lengths[::4]))
    x[np.arange(T)[None, :] >= steps[:, None]] = 0.0  # what post-padding the short ones gives
    with tf.io.TFRecordWriter(str(tmp_path / "part-7.tfrecord")) as writer:
        for i in range(n):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[i, : steps[i]].ravel())),
                "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[steps[i], D])),
            }
            if i % 4 == 0:
                feature["length"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[lengths[i]]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    out = tmp_path / "out"
    out.mkdir()
    pipeline_module().main(
        ["--model", "tflrptest://" + str(model), "--input", str(tmp_path / "part-*.tfrecord"), "--output", str(out),
         "--max-batch-size", "32", "--runner", "DirectRunner"]
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["part-7.explained.npz"]
    with np.load(out / "part-7.explained.npz", allow_pickle=False) as stored:
        result = {key: stored[key] for key in stored.files}
    reference = explainer.explain_dataset(x.astype(np.float64), batch_size=50, lengths=lengths, progress=False)
    np.testing.assert_array_equal(result["index"], np.arange(n))
    assert result["relevance"].shape == (n, T, D)
    np.testing.assert_allclose(result["relevance"], reference.relevance, **TOL)
    np.testing.assert_allclose(result["scores"], reference.scores, **TOL)
    np.testing.assert_array_equal(result["target"], reference.target)
    np.testing.assert_allclose(result["initial_state_relevance"], reference.initial_state_relevance, **TOL)


def test_tfrecord_example_errors() -> None:
    tf = pytest.importorskip("tensorflow")
    module = pipeline_module()

    def example(**features) -> bytes:
        feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in features.items()}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    element = module.parse_example(example(x=[1, 2, 3, 4, 5, 6], shape=[3, 2], target=[1]), "r")
    np.testing.assert_array_equal(element["x"], [[1, 2], [3, 4], [5, 6]])
    assert element["x"].dtype == np.int64
    assert element["target"] == 1
    assert "length" not in element
    plain = module.parse_example(example(x=[1, 2, 3], shape=[3]), "r")
    np.testing.assert_array_equal(plain, [1, 2, 3])  # no length/target: the bare sequence
    with pytest.raises(ValueError, match=r"shard.tfrecord record 4: a tf.train.Example needs .* missing \['shape'\]"):
        module.parse_example(example(x=[1]), "shard.tfrecord record 4")
    with pytest.raises(ValueError, match=r"'x' has 5 values, which does not fit 'shape' \[3, 2\]"):
        module.parse_example(example(x=[1, 2, 3, 4, 5], shape=[3, 2]), "r")
    assert module.shard_name("gs://b/data/part-3.tfrecord.gz") == "part-3"
    assert module.shard_name("/d/part-3.npy") == "part-3"


def test_load_model_through_beam_filesystems(saved) -> None:
    explainer, model = saved
    handler = ExplainerModelHandler("tflrptest://" + str(model), dtype="float64")
    loaded = handler.load_model()
    x = np.random.default_rng(6).normal(size=(4, T, D))
    np.testing.assert_array_equal(loaded.explain(x).relevance, explainer.explain(x).relevance)
    with pytest.raises(InputError, match=r"cannot read the network 'tflrptest:///no/such/net\.npz' through Beam"):
        load_explainer("tflrptest:///no/such/net.npz")
    with pytest.raises(InputError, match=r"cannot read the network 'nosuchfs://b/net\.npz' .* extra installed"):
        load_explainer("nosuchfs://b/net.npz")
    np.save(model.parent / "weights.npy", np.zeros(3))
    with pytest.raises(InputError, match=r"'tflrptest://.*weights\.npy' \(copied to a local temporary file\)"):
        load_explainer("tflrptest://" + str(model.parent / "weights.npy"))


def test_ragged_batch_is_explained_per_sequence(saved) -> None:
    explainer, model = saved
    handler = ExplainerModelHandler(model, target=1)
    loaded = handler.load_model()
    rng = np.random.default_rng(4)
    sequences = [rng.normal(size=(t, D)) for t in (3, 8, 5)]
    batch = [sequences[0], {"x": sequences[1], "length": 6}, {"x": sequences[2], "target": 0}]
    results = list(handler.run_inference(batch, loaded))
    assert [r.example is e for r, e in zip(results, batch, strict=True)] == [True] * 3
    expected = [
        explainer.explain(sequences[0][None], target=1),
        explainer.explain(sequences[1][None], target=1, lengths=[6]),
        explainer.explain(sequences[2][None], target=0),
    ]
    for result, reference in zip(results, expected, strict=True):
        assert result.inference.relevance.shape == reference.relevance[0].shape
        np.testing.assert_allclose(result.inference.relevance, reference.relevance[0], **TOL)
        np.testing.assert_allclose(result.inference.scores, reference.scores[0], **TOL)
        assert result.inference.target == reference.target[0]
    key, scores, relevance = to_record(("k", results[2]))
    assert key == "k"
    np.testing.assert_array_equal(scores, results[2].inference.scores)
    np.testing.assert_array_equal(relevance, results[2].inference.relevance)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 256}


def test_element_errors(saved) -> None:
    _, model = saved
    handler = ExplainerModelHandler(model)
    loaded = handler.load_model()
    with pytest.raises(InputError, match=r"element 1 of the batch must be one sequence of \(T, 3\) features"):
        handler.run_inference([np.zeros((4, D)), np.zeros((2, 4, D))], loaded)
    with pytest.raises(InputError, match="needs the sequence under 'x'"):
        handler.run_inference([{"ids": np.zeros((4, D))}], loaded)
    with pytest.raises(InputError, match="give every element a 'target' or none"):
        handler.run_inference([{"x": np.zeros((4, D)), "target": 1}, np.zeros((4, D))], loaded)
    with pytest.raises(InputError, match="only scalar options"):
        handler.validate_inference_args({"baseline": np.zeros(3)})


def test_import_tf_lrp_does_not_import_beam() -> None:
    import subprocess
    import sys

    code = "import sys, tf_lrp; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
