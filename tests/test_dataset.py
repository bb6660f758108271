"""explain_dataset: sources, bucketing and order, auto batch size, resumable output (tf_lrp.dataset)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tf_lrp import Explainer, InputError, backend, dataset
from tf_lrp.layout import DenseSpec, EmbeddingSpec, RecurrentSpec, to_manifest

D, H, C, T, N = 3, 5, 2, 9, 40
V, E = 12, 4
TOL = {"rtol": 1e-10, "atol": 1e-12}


def lstm_arrays(rng: np.random.Generator, inputs: int, units: int, directions: int) -> list[np.ndarray]:
    arrays = []
    for _ in range(directions):
        arrays += [
            rng.normal(0, 0.5, (inputs, 4 * units)),
            rng.normal(0, 0.5, (units, 4 * units)),
            rng.normal(0, 0.2, (4 * units,)),
        ]
    return arrays


def feature_weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [*lstm_arrays(rng, D, H, 2), rng.normal(0, 0.5, (2 * H, C)), rng.normal(0, 0.1, (C,))]


@pytest.fixture(scope="module")
def feat() -> Explainer:
    """A float64 bidirectional LSTM on (B, T, 3) features."""
    return Explainer.from_weights(feature_weights(), cell="lstm", bidirectional=True, dtype="float64")


@pytest.fixture(scope="module")
def tokens() -> Explainer:
    """A float64 Embedding(mask_zero) -> bi-LSTM -> Dense token model."""
    rng = np.random.default_rng(1)
    layers = [
        EmbeddingSpec(V, E, mask_zero=True),
        RecurrentSpec("lstm", H, E, direction="bidirectional"),
        DenseSpec(C, 2 * H),
    ]
    weights = [rng.normal(0, 1, (V, E)), *lstm_arrays(rng, E, H, 2), rng.normal(0, 0.5, (2 * H, C)), np.zeros(C)]
    return Explainer.from_manifest(to_manifest(layers), weights, dtype="float64")


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, T + 1, size=N)
    x = rng.normal(size=(N, T, D))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    ids = rng.integers(1, V, size=(N, T))
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return {"x": x, "lengths": lengths, "ids": ids}


def assert_same(result, reference) -> None:
    np.testing.assert_allclose(result.relevance, reference.relevance, **TOL)
    np.testing.assert_allclose(result.scores, reference.scores, **TOL)
    np.testing.assert_array_equal(result.target, reference.target)
    np.testing.assert_allclose(result.initial_state_relevance, reference.initial_state_relevance, **TOL)


# --------------------------------------------------------------------------------------------
# Sources


def test_array_equals_explain(feat, data):
    result = feat.explain_dataset(data["x"], batch_size=7, progress=False)
    assert_same(result, feat.explain(data["x"]))
    assert result.mask is None


def test_lengths_buckets_keep_the_original_order(feat, data):
    result = feat.explain_dataset(data["x"], batch_size=6, lengths=data["lengths"], progress=False)
    reference = feat.explain(data["x"], lengths=data["lengths"])
    assert_same(result, reference)
    np.testing.assert_array_equal(result.mask, reference.mask)
    assert np.all(result.relevance[~reference.mask] == 0)


def test_pre_padding_mask_crops_leading_columns(feat, data):
    lengths = data["lengths"]
    mask = np.arange(T)[None, :] >= (T - lengths)[:, None]  # valid steps at the end
    x = np.where(mask[..., None], data["x"][:, ::-1], 0.0)
    chunks = dataset.plan(N, T, dataset.spans(T, mask=mask), 5, lambda t: 1, 1)
    assert any(chunk.start > 0 and chunk.stop == T for chunk in chunks)
    result = feat.explain_dataset(x, batch_size=5, mask=mask, progress=False)
    assert_same(result, feat.explain(x, mask=mask))


def test_mask_zero_tokens_are_bucketed(tokens, data):
    seen = []
    result = tokens.explain_dataset(data["ids"], batch_size=8, progress=False)
    assert_same(result, tokens.explain(data["ids"]))
    np.testing.assert_array_equal(result.mask, data["ids"] != 0)
    chunks = dataset.plan(N, T, dataset.spans(T, mask=data["ids"] != 0), 8, lambda t: 1, 1)
    seen = [chunk.stop - chunk.start for chunk in chunks]
    assert seen == sorted(seen, reverse=True)
    assert min(seen) < T


def test_memmap_npy_and_npz_paths(feat, data, tmp_path):
    np.save(tmp_path / "x.npy", data["x"])
    np.savez(tmp_path / "x.npz", x=data["x"], lengths=data["lengths"])
    reference = feat.explain(data["x"])
    memmap = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert_same(feat.explain_dataset(memmap, batch_size=16, progress=False), reference)
    assert_same(feat.explain_dataset(tmp_path / "x.npy", progress=False), reference)
    result = feat.explain_dataset(str(tmp_path / "x.npz"), batch_size=16, progress=False)
    assert_same(result, feat.explain(data["x"], lengths=data["lengths"]))


def test_iterable_of_batches_in_every_form(feat, data):
    x, lengths = data["x"], data["lengths"]
    reference = feat.explain(x, lengths=lengths)
    pieces = [slice(0, 15), slice(15, 33), slice(33, N)]
    for batches in (
        [{"x": x[s], "lengths": lengths[s]} for s in pieces],
        [(x[s], lengths[s]) for s in pieces],
        (  # a generator works too (without out=)
            {"x": x[s], "mask": np.arange(T)[None, :] < lengths[s, None]} for s in pieces
        ),
    ):
        assert_same(feat.explain_dataset(batches, batch_size=4, progress=False), reference)
    plain = feat.explain_dataset([x[s] for s in pieces], progress=False)
    assert_same(plain, feat.explain(x))


def test_tf_data_dataset(feat, data):
    tf = pytest.importorskip("tensorflow")
    source = tf.data.Dataset.from_tensor_slices({"x": data["x"], "lengths": data["lengths"]}).batch(16)
    result = feat.explain_dataset(source, progress=False)
    assert_same(result, feat.explain(data["x"], lengths=data["lengths"]))


def test_streams_with_out_and_targets(feat, data, tmp_path):
    x = data["x"]
    files = feat.explain_dataset([x[:20], x[20:]], out=tmp_path / "r.npy", targets=1, progress=False)
    reference = feat.explain(x, target=1)
    loaded = files.load()
    np.testing.assert_allclose(loaded["relevance"], reference.relevance, **TOL)
    np.testing.assert_array_equal(loaded["targets"], np.ones(N))
    with pytest.raises(InputError, match="one-shot iterator"):
        feat.explain_dataset((b for b in [x]), out=tmp_path / "g.npy", progress=False)


def test_per_sample_targets_follow_the_samples(feat, data):
    targets = np.arange(N) % C
    result = feat.explain_dataset(data["x"], batch_size=6, lengths=data["lengths"], targets=targets, progress=False)
    np.testing.assert_array_equal(result.target, targets)
    assert_same(result, feat.explain(data["x"], target=targets, lengths=data["lengths"]))


# --------------------------------------------------------------------------------------------
# Chunk plan and memory budget


def test_auto_batch_size_stays_within_a_small_budget(feat, data, monkeypatch):
    budget = 6 * feat.working_set_bytes(T)
    chunks = dataset.plan(N, T, dataset.spans(T, lengths=data["lengths"]), None, feat.working_set_bytes, budget)
    assert all(len(c.indices) * feat.working_set_bytes(c.stop - c.start) <= budget for c in chunks)
    assert len(chunks[0].indices) == 6  # the largest batch that fits the longest sequences
    assert max(len(c.indices) for c in chunks) > 6  # shorter buckets get larger batches
    assert sorted(np.concatenate([c.indices for c in chunks]).tolist()) == list(range(N))

    sizes = []
    original = dataset._run_chunk

    def spy(run, block, chunk, targets):
        sizes.append(len(chunk.indices) * feat.working_set_bytes(chunk.stop - chunk.start))
        return original(run, block, chunk, targets)

    monkeypatch.setattr(dataset, "_run_chunk", spy)
    result = feat.explain_dataset(data["x"], lengths=data["lengths"], memory_budget=budget, progress=False)
    assert max(sizes) <= budget
    assert len(sizes) > 1
    assert_same(result, feat.explain(data["x"], lengths=data["lengths"]))


def test_auto_budget_defaults_to_a_fraction_of_host_memory(monkeypatch):
    monkeypatch.setattr(dataset, "available_memory", lambda: 8 << 30)
    assert dataset.default_budget() == 2 << 30
    monkeypatch.setattr(dataset, "available_memory", lambda: None)
    assert dataset.default_budget() == dataset.FALLBACK_BUDGET
    assert dataset.plan(5000, 4, None, None, lambda t: 1, 1 << 40)[0].indices.size == dataset.MAX_AUTO_BATCH


def test_on_a_faked_gpu_the_budget_comes_from_its_memory_and_the_cap_is_lifted(feat, tmp_path, monkeypatch):
    gpu = backend.DeviceMemory("gpu:fake", limit=10 << 30, in_use=2 << 30, peak=3 << 30)
    monkeypatch.setattr(dataset, "available_memory", lambda: 1 << 40)  # the host's must not be used
    monkeypatch.setattr(backend, "accelerator_memory", lambda: gpu)
    assert dataset.default_budget() == int((8 << 30) * dataset.DEVICE_MEMORY_FRACTION)
    assert dataset.max_auto_batch() is None
    assert dataset.plan(5000, 4, None, None, lambda t: 1, 1 << 40, max_batch=None)[0].indices.size == 5000
    monkeypatch.setattr(backend, "accelerator_memory", lambda: backend.DeviceMemory("gpu:fake", None, None, None))
    assert dataset.default_budget() == dataset.FALLBACK_BUDGET  # a GPU of unknown size: 1 GiB, never the host's

    x = np.random.default_rng(6).normal(size=(1500, 3, D))
    sizes = []
    original = dataset._run_chunk

    def spy(run, block, chunk, targets):
        sizes.append(len(chunk.indices))
        if len(sizes) == 2 and chunk.indices[0] >= 1200:
            raise KeyboardInterrupt  # a crash after the first chunk (the resume below)
        return original(run, block, chunk, targets)

    monkeypatch.setattr(dataset, "_run_chunk", spy)
    monkeypatch.setattr(backend, "accelerator_memory", lambda: gpu)
    assert feat.explain_dataset(x, progress=False).relevance.shape == x.shape
    assert sizes == [1500]  # one chunk, above the CPU cap of 1024
    sizes.clear()
    budget = 1200 * feat.working_set_bytes(3)
    with pytest.raises(KeyboardInterrupt):
        feat.explain_dataset(x, out=tmp_path / "rel.npy", memory_budget=budget, progress=False)
    assert sizes == [1200, 300]
    assert json.loads((tmp_path / "rel.json").read_text())["plan"]["max_batch"] is None
    sizes.clear()
    monkeypatch.setattr(backend, "accelerator_memory", lambda: None)  # resumed on a CPU: the recorded plan holds
    files = feat.explain_dataset(x, out=tmp_path / "rel.npy", memory_budget=budget, progress=False)
    assert files.resumed_from == 1200
    assert sizes == [300]
    np.testing.assert_allclose(np.load(files.relevance), feat.explain(x).relevance, **TOL)
    sizes.clear()
    feat.explain_dataset(x, memory_budget=budget, progress=False)
    assert sizes == [1024, 476]  # a new run on the CPU: capped


def test_crop_widths_round_up_to_the_quantum_and_stay_exact():
    window = np.array([[0, 3], [2, 5], [6, 9], [0, 9]])
    chunks = dataset.plan(4, 9, window, 1, lambda t: 1, 1, quantum=4)
    assert [(c.start, c.stop) for c in chunks] == [(0, 9), (0, 4), (2, 6), (5, 9)]


def test_spans_for_lengths_and_masks():
    mask = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_array_equal(dataset.spans(4, mask=mask), [[1, 3], [0, 4], [3, 4]])
    np.testing.assert_array_equal(dataset.spans(4, lengths=np.array([2, 4])), [[0, 2], [0, 4]])
    assert dataset.spans(4) is None


# --------------------------------------------------------------------------------------------
# Output files and resume


def test_out_writes_npy_files_and_sidecar(feat, data, tmp_path):
    files = feat.explain_dataset(data["x"], out=tmp_path / "rel.npy", batch_size=16, progress=False)
    reference = feat.explain(data["x"])
    loaded = files.load()
    np.testing.assert_allclose(loaded["relevance"], reference.relevance, **TOL)
    np.testing.assert_allclose(loaded["scores"], reference.scores, **TOL)
    np.testing.assert_array_equal(loaded["targets"], reference.target)
    sidecar = json.loads((tmp_path / "rel.json").read_text())
    assert sidecar["completed"] == N == sidecar["samples"]
    assert sidecar["arguments"]["fingerprint"] == feat.fingerprint
    assert {p.name for p in tmp_path.iterdir()} == {
        "rel.npy", "rel.scores.npy", "rel.targets.npy", "rel.initial_state.npy", "rel.json"
    }  # fmt: skip
    again = feat.explain_dataset(data["x"], out=tmp_path / "rel.npy", batch_size=16, progress=False)
    assert again.resumed_from == N  # complete: nothing recomputed


def test_refuses_to_resume_a_different_run(feat, data, tmp_path):
    out = tmp_path / "rel.npy"
    feat.explain_dataset(data["x"], out=out, batch_size=16, progress=False)
    with pytest.raises(InputError, match=r"other arguments or data \(eps: recorded 0.001, now 0.1\).*resume=False"):
        feat.explain_dataset(data["x"], out=out, batch_size=16, eps=0.1, progress=False)
    other = Explainer.from_weights(feature_weights(seed=9), cell="lstm", bidirectional=True, dtype="float64")
    with pytest.raises(InputError, match="another model"):
        other.explain_dataset(data["x"], out=out, batch_size=16, progress=False)
    with pytest.raises(InputError, match="other arguments or data"):
        feat.explain_dataset(data["x"] + 1.0, out=out, batch_size=16, progress=False)
    with pytest.raises(InputError, match="other arguments or data"):
        feat.explain_dataset(data["x"], out=out, batch_size=8, progress=False)
    restarted = other.explain_dataset(data["x"], out=out, batch_size=16, progress=False, resume=False)
    assert restarted.resumed_from == 0
    np.testing.assert_allclose(np.load(out), other.explain(data["x"]).relevance, **TOL)
    (tmp_path / "rel.json").unlink()
    with pytest.raises(InputError, match="has no sidecar"):
        feat.explain_dataset(data["x"], out=out, progress=False)


def test_resume_checks_every_completed_chunk_against_the_inputs_it_explained(feat, tmp_path, monkeypatch):
    x = np.random.default_rng(5).normal(size=(200, T, D))  # more rows than the data digest's two ends
    out = tmp_path / "rel.npy"
    original = dataset._run_chunk
    done = []

    def crash_after_five_chunks(*args):
        if len(done) == 5:
            raise KeyboardInterrupt  # stands in for a crash
        done.append(1)
        return original(*args)

    monkeypatch.setattr(dataset, "_run_chunk", crash_after_five_chunks)
    with pytest.raises(KeyboardInterrupt):
        feat.explain_dataset(x, out=out, batch_size=16, progress=False)
    monkeypatch.setattr(dataset, "_run_chunk", original)
    sidecar = json.loads((tmp_path / "rel.json").read_text())
    assert sidecar["completed"] == 80
    assert len(sidecar["chunks"]) == 5

    changed = x.copy()
    changed[70, 3, 1] += 1e-9  # completed chunk 4 (rows 64-79), outside the first and last 64 rows
    with pytest.raises(InputError, match=r"data changed since .* chunk 4 \(from sample 64\).*resume=False"):
        feat.explain_dataset(changed, out=out, batch_size=16, progress=False)
    assert json.loads((tmp_path / "rel.json").read_text()) == sidecar  # nothing written

    changed = x.copy()
    changed[100] += 1.0  # chunk 6, not computed yet: the resumed run explains the data as it is now
    resumed = feat.explain_dataset(changed, out=out, batch_size=16, progress=False)
    assert resumed.resumed_from == 80
    np.testing.assert_allclose(np.load(out), feat.explain(changed).relevance, **TOL)
    assert len(json.loads((tmp_path / "rel.json").read_text())["chunks"]) == 200 // 16 + 1

    sidecar = json.loads((tmp_path / "rel.json").read_text())
    (tmp_path / "rel.json").write_text(json.dumps({**sidecar, "version": 1}))
    with pytest.raises(InputError, match=r"version 1 record and this tf_lrp writes version 3.*resume=False"):
        feat.explain_dataset(changed, out=out, batch_size=16, progress=False)


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from tf_lrp import Explainer, dataset, resumable
    resumable.CHECKPOINT_SECONDS = 0.0  # record every chunk, so that the parent sees progress chunk by chunk
    original = dataset._run_chunk
    def slow(*args):
        time.sleep(float(sys.argv[4]))
        return original(*args)
    dataset._run_chunk = slow
    ex = Explainer.load(sys.argv[1])
    ex.explain_dataset(sys.argv[2], out=sys.argv[3], batch_size=4, lengths=None, progress=False)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_is_byte_identical(feat, data, tmp_path):
    net, source = tmp_path / "net.npz", tmp_path / "x.npz"
    feat.save(net)
    np.savez(source, x=data["x"], lengths=data["lengths"])
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir()
    whole.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(net), str(source), str(killed / "rel.npy"), "0.15"], env=env
    )
    sidecar = killed / "rel.json"
    deadline = time.monotonic() + 120
    completed = 0
    while time.monotonic() < deadline and child.poll() is None:
        if sidecar.is_file():
            try:
                completed = json.loads(sidecar.read_text())["completed"]
            except (json.JSONDecodeError, KeyError):  # pragma: no cover - the rename is atomic
                completed = 0
            if completed >= 12:
                break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    partial = json.loads(sidecar.read_text())["completed"]
    assert 0 < partial < N

    loaded = feat  # the same network (same fingerprint) as the child's, already compiled
    assert Explainer.load(net).fingerprint == feat.fingerprint
    resumed = loaded.explain_dataset(source, out=killed / "rel.npy", batch_size=4, progress=False)
    assert resumed.resumed_from == partial
    loaded.explain_dataset(source, out=whole / "rel.npy", batch_size=4, progress=False)
    for name in ("rel.npy", "rel.scores.npy", "rel.targets.npy", "rel.initial_state.npy"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    assert json.loads(sidecar.read_text())["completed"] == N


# --------------------------------------------------------------------------------------------
# Progress and errors


def test_progress_bar_and_its_automatic_silence(feat, data, capsys):
    feat.explain_dataset(data["x"][:8], progress=True)
    assert "sample/s" in capsys.readouterr().err
    feat.explain_dataset(data["x"][:8])  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be 'auto' or a positive int"),
        ({"batch_size": "big"}, "batch_size must be 'auto'"),
        ({"memory_budget": -1}, "memory_budget must be a positive number"),
        ({"out": "relevances.txt"}, r"out must name an \.npy file"),
        ({"out": "/nonexistent-dir/r.npy"}, "does not exist"),
        ({"method": "magic"}, "unknown method 'magic'"),
        ({"eps": -1.0}, "eps must be >= 0"),
        ({"targets": np.zeros(3, dtype=int)}, r"targets must be None, an int or \(40,\)"),
        ({"targets": 7}, "target out of range"),
        ({"lengths": np.zeros(N, dtype=int)}, r"lengths must lie in \[1, 9\]"),
        ({"lengths": np.ones(N, dtype=int), "mask": np.ones((N, T), bool)}, "either lengths or mask"),
    ],
)
def test_argument_errors(feat, data, kwargs, match):
    with pytest.raises(InputError, match=match):
        feat.explain_dataset(data["x"], progress=False, **kwargs)


def test_data_errors(feat, tokens, data, tmp_path):
    with pytest.raises(InputError, match=r"data must be \(batch, time, 3\) features.*got shape \(9, 3\)"):
        feat.explain_dataset(data["x"][0], progress=False)
    with pytest.raises(InputError, match=r"data must be \(batch, time\) token ids"):
        tokens.explain_dataset(data["x"], progress=False)
    with pytest.raises(InputError, match="does not exist"):
        feat.explain_dataset(tmp_path / "missing.npy", progress=False)
    np.savez(tmp_path / "nox.npz", y=data["x"])
    with pytest.raises(InputError, match="has no array 'x'"):
        feat.explain_dataset(tmp_path / "nox.npz", progress=False)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="without unpickling"):
        feat.explain_dataset(tmp_path / "obj.npy", progress=False)
    with pytest.raises(InputError, match="put lengths/mask into each batch"):
        feat.explain_dataset([data["x"]], lengths=data["lengths"], progress=False)
    with pytest.raises(InputError, match="batch 1 of the data is a dict without key 'x'"):
        feat.explain_dataset([{"x": data["x"]}, {"y": 1}], progress=False)


# --------------------------------------------------------------------------------------------
# Several inputs and per-step outputs


@pytest.fixture(scope="module")
def two() -> Explainer:
    """The zoo's version-2 graph: LSTM on input 'a' (2 features), GRU on 'b' (3), concatenated, dense head."""
    from tests.networks import two_inputs

    return two_inputs(np.random.default_rng(11)).explainer


@pytest.fixture(scope="module")
def tagger() -> Explainer:
    """The zoo's per-step network: GRU (sequences) -> Dense per step; scores (B, T, 2)."""
    from tests.networks import per_step_tagger

    return per_step_tagger(np.random.default_rng(12)).explainer


@pytest.fixture(scope="module")
def pair() -> dict[str, np.ndarray]:
    """Two inputs of different lengths (7 and 4 steps), post-padded with their own lengths."""
    rng = np.random.default_rng(13)
    count = 23
    xa, xb = rng.normal(size=(count, 7, 2)), rng.normal(size=(count, 4, 3))
    la, lb = rng.integers(1, 8, size=count), rng.integers(1, 5, size=count)
    return {"a": xa, "b": xb, "la": la, "lb": lb}


def assert_same_inputs(result, reference) -> None:
    assert isinstance(result.relevance, tuple)
    assert len(result.relevance) == len(reference.relevance)
    for got, want in zip(result.relevance, reference.relevance, strict=True):
        np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(result.scores, reference.scores, **TOL)
    np.testing.assert_array_equal(result.target, reference.target)
    np.testing.assert_allclose(result.initial_state_relevance, reference.initial_state_relevance, **TOL)
    np.testing.assert_allclose(result.explained_score, reference.explained_score, **TOL)


def test_two_inputs_in_every_form_equal_explain(two, pair, tmp_path):
    xs, lengths = [pair["a"], pair["b"]], [pair["la"], pair["lb"]]
    reference = two.explain(xs, lengths=lengths)
    result = two.explain_dataset(xs, lengths=lengths, batch_size=5, progress=False)
    assert_same_inputs(result, reference)
    for got, want in zip(result.mask, reference.mask, strict=True):
        np.testing.assert_array_equal(got, want)
    by_name = two.explain_dataset(
        {"b": pair["b"], "a": pair["a"]}, lengths={"a": pair["la"], "b": pair["lb"]}, batch_size=6, progress=False
    )
    assert_same_inputs(by_name, reference)
    batches = [(slice(0, 10)), slice(10, 23)]
    as_lists = [([pair["a"][s], pair["b"][s]], [pair["la"][s], pair["lb"][s]]) for s in batches]
    assert_same_inputs(two.explain_dataset(as_lists, batch_size=4, progress=False), reference)
    as_dicts = [{"x": {"a": pair["a"][s], "b": pair["b"][s]}, "lengths": {"a": pair["la"][s], "b": pair["lb"][s]}}
                for s in batches]  # fmt: skip
    assert_same_inputs(two.explain_dataset(as_dicts, progress=False), reference)
    arrays = {"x/a": pair["a"], "x/b": pair["b"], "lengths/a": pair["la"], "lengths/b": pair["lb"]}
    np.savez(tmp_path / "pair.npz", **arrays)  # type: ignore[arg-type]
    assert_same_inputs(two.explain_dataset(tmp_path / "pair.npz", batch_size=8, progress=False), reference)
    unmasked = two.explain_dataset([pair["a"], pair["b"]], method="gradient_x_input", targets=1, progress=False)
    assert_same_inputs(unmasked, two.explain([pair["a"], pair["b"]], method="gradient_x_input", target=1))


def test_two_inputs_from_tf_data(two, pair, tmp_path):
    tf = pytest.importorskip("tensorflow")
    reference = two.explain([pair["a"], pair["b"]], lengths=[pair["la"], pair["lb"]])
    slices = {"x": {"a": pair["a"], "b": pair["b"]}, "lengths": {"a": pair["la"], "b": pair["lb"]}}
    source = tf.data.Dataset.from_tensor_slices(slices).batch(8)
    assert_same_inputs(two.explain_dataset(source, progress=False), reference)
    files = two.explain_dataset(source, out=tmp_path / "rel.npy", progress=False)
    np.testing.assert_allclose(files.load()["relevance/b"], reference.relevance[1], **TOL)
    unmasked = tf.data.Dataset.from_tensor_slices((pair["a"], pair["b"])).batch(10)  # tuples of arrays
    assert_same_inputs(two.explain_dataset(unmasked, progress=False), two.explain([pair["a"], pair["b"]]))


def test_two_inputs_out_files_resume_byte_identical(two, pair, tmp_path, monkeypatch):
    xs, lengths = {"a": pair["a"], "b": pair["b"]}, {"a": pair["la"], "b": pair["lb"]}
    (tmp_path / "clean").mkdir()
    (tmp_path / "cut").mkdir()
    clean = two.explain_dataset(xs, lengths=lengths, out=tmp_path / "clean/rel.npy", batch_size=4, progress=False)
    reference = two.explain([pair["a"], pair["b"]], lengths=[pair["la"], pair["lb"]])
    assert isinstance(clean.relevance, dict)
    assert set(clean.relevance) == {"a", "b"}
    loaded = clean.load()
    assert sorted(loaded) == ["initial_state_relevance", "relevance/a", "relevance/b", "scores", "targets"]
    assert loaded["relevance/a"].shape == (23, 7, 2)
    assert loaded["relevance/b"].shape == (23, 4, 3)
    for k, name in enumerate("ab"):
        np.testing.assert_allclose(loaded[f"relevance/{name}"], reference.relevance[k], **TOL)
    np.testing.assert_allclose(loaded["scores"], reference.scores, **TOL)
    np.testing.assert_array_equal(loaded["targets"], reference.target)
    names = {p.name for p in (tmp_path / "clean").iterdir()}
    assert names == {"rel.relevance.a.npy", "rel.relevance.b.npy", "rel.scores.npy", "rel.targets.npy",
                     "rel.initial_state.npy", "rel.json"}  # fmt: skip

    original, calls = dataset._run_chunk, []

    def crash_after_three_chunks(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt  # stands in for a crash
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(dataset, "_run_chunk", crash_after_three_chunks)
    with pytest.raises(KeyboardInterrupt):
        two.explain_dataset(xs, lengths=lengths, out=tmp_path / "cut/rel.npy", batch_size=4, progress=False)
    monkeypatch.setattr(dataset, "_run_chunk", original)
    assert json.loads((tmp_path / "cut/rel.json").read_text())["completed"] == 12
    with pytest.raises(InputError, match=r"other arguments or data.*resume=False"):
        two.explain_dataset(xs, out=tmp_path / "cut/rel.npy", batch_size=4, progress=False)  # lengths dropped
    resumed = two.explain_dataset(xs, lengths=lengths, out=tmp_path / "cut/rel.npy", batch_size=4, progress=False)
    assert resumed.resumed_from == 12
    for name in names:
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_per_step_outputs_equal_explain_for_every_step(tagger, data, tmp_path):
    x = data["x"][:, :, :2]
    for step in (None, 3, -1):
        reference = tagger.explain(x, lengths=data["lengths"], step=step)
        result = tagger.explain_dataset(x, lengths=data["lengths"], step=step, batch_size=7, progress=False)
        assert result.scores.shape == (N, T, 2)
        np.testing.assert_allclose(result.relevance, reference.relevance, **TOL)
        np.testing.assert_allclose(result.scores, reference.scores, **TOL)
        np.testing.assert_array_equal(result.target, reference.target)
        np.testing.assert_allclose(result.explained_score, reference.explained_score, **TOL)
        np.testing.assert_array_equal(result.mask, reference.mask)
    files = tagger.explain_dataset(x, lengths=data["lengths"], step=3, out=tmp_path / "rel.npy", progress=False)
    loaded = files.load()
    reference = tagger.explain(x, lengths=data["lengths"], step=3)
    assert sorted(loaded) == ["explained", "initial_state_relevance", "relevance", "scores", "targets"]
    np.testing.assert_allclose(loaded["relevance"], reference.relevance, **TOL)
    np.testing.assert_allclose(loaded["scores"], reference.scores, **TOL)
    np.testing.assert_allclose(loaded["explained"], reference.explained_score, **TOL)
    assert json.loads((tmp_path / "rel.json").read_text())["arguments"]["step"] == 3
    with pytest.raises(InputError, match=r"other arguments or data \(.*step: recorded 3, now 2"):
        tagger.explain_dataset(x, lengths=data["lengths"], step=2, out=tmp_path / "rel.npy", progress=False)


def test_per_step_resume_is_byte_identical(tagger, data, tmp_path, monkeypatch):
    x = data["x"][:, :, :2]
    kwargs = {"lengths": data["lengths"], "step": None, "batch_size": 8, "progress": False}
    tagger.explain_dataset(x, out=tmp_path / "clean.npy", **kwargs)
    original, calls = dataset._run_chunk, []

    def crash_after_two_chunks(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(dataset, "_run_chunk", crash_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        tagger.explain_dataset(x, out=tmp_path / "cut.npy", **kwargs)
    monkeypatch.setattr(dataset, "_run_chunk", original)
    assert tagger.explain_dataset(x, out=tmp_path / "cut.npy", **kwargs).resumed_from == 16
    for suffix in ("npy", "scores.npy", "targets.npy", "initial_state.npy", "explained.npy"):
        assert (tmp_path / f"cut.{suffix}").read_bytes() == (tmp_path / f"clean.{suffix}").read_bytes(), suffix


def test_several_inputs_and_per_step_refusals(two, tagger, feat, pair, data, tmp_path):
    xs = [pair["a"], pair["b"]]
    with pytest.raises(InputError, match=r"this network has 2 inputs \['a', 'b'\]: pass data as a list"):
        two.explain_dataset(pair["a"], progress=False)
    np.save(tmp_path / "a.npy", pair["a"])
    with pytest.raises(InputError, match=r"holds one array; this network has inputs \['a', 'b'\]: pass an \.npz"):
        two.explain_dataset(tmp_path / "a.npy", progress=False)
    np.savez(tmp_path / "one.npz", x=pair["a"])
    with pytest.raises(InputError, match=r"has no array 'x/a'.*x/a, x/b"):
        two.explain_dataset(tmp_path / "one.npz", progress=False)
    with pytest.raises(InputError, match=r"names inputs \['a', 'c'\].*missing \['b'\], unknown \['c'\]"):
        two.explain_dataset([{"x": {"a": pair["a"], "c": pair["b"]}}], progress=False)
    with pytest.raises(InputError, match=r"batch 0 of the data must hold one array per input \['a', 'b'\]"):
        two.explain_dataset([pair["a"]], progress=False)
    with pytest.raises(InputError, match=r"data\['b'\] must be \(batch, time, 3\) features"):
        two.explain_dataset([pair["a"], pair["a"]], progress=False)
    with pytest.raises(InputError, match="different batch sizes"):
        two.explain_dataset([pair["a"], pair["b"][:5]], progress=False)
    with pytest.raises(InputError, match=r"lengths: this network has 2 inputs"):
        two.explain_dataset(xs, lengths=pair["la"], progress=False)
    with pytest.raises(InputError, match=r"input 'b'\): lengths must lie in \[1, 4\]"):
        two.explain_dataset(xs, lengths=[pair["la"], pair["la"]], progress=False)
    with pytest.raises(InputError, match="integrated_gradients takes networks with one input"):
        two.explain_dataset(xs, method="integrated_gradients", progress=False)
    bad = pair["b"].copy()
    bad[3, 1, 0] = np.nan
    with pytest.raises(InputError, match=r"x\['b'\] contains NaN.*index \(3, 1, 0\)"):
        two.explain_dataset([pair["a"], bad], progress=False)
    with pytest.raises(InputError, match="step= is for networks with per-step outputs"):
        feat.explain_dataset(data["x"], step=0, progress=False)
    with pytest.raises(InputError, match=r"step=None or one int.*call explain on batches"):
        tagger.explain_dataset(data["x"][:, :, :2], step=np.zeros(N, int), progress=False)
