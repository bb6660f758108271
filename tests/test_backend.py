"""The compiled core on TensorFlow and JAX: identical float64 results, bounded tracing.

The JAX side runs in a subprocess (``KERAS_BACKEND`` is fixed per process) in which
``import tensorflow`` is blocked, so it also proves that tf_lrp's numeric core needs no
TensorFlow under the JAX backend. It writes its results to an ``.npz`` that this
(TensorFlow) process compares with its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tf_lrp import Explainer, backend
from tf_lrp._fusion import fused_step

ROOT = Path(__file__).resolve().parents[1]

# (name, cell, bidirectional, layer sizes): input D, recurrent H per layer, classes C
MODELS = {
    "lstm_bidi": ("lstm", True, 5, (6,), 3),
    "gru_stack": ("gru", False, 4, (5, 3), 2),
}
BATCHES = (2, 5, 6)  # several batch sizes (5 and 6 share a JAX bucket) ...
LENGTHS = (4, 9)  # ... and lengths through one explainer


def _weights(cell: str, bidirectional: bool, inputs: int, units: tuple[int, ...], classes: int) -> list[np.ndarray]:
    """Random weights in Keras order for ``Sequential([RNN(H) ..., Dense(C)])``."""
    rng = np.random.default_rng(7)
    gates = 4 if cell == "lstm" else 3
    arrays: list[np.ndarray] = []
    size = inputs
    for h in units:
        for _ in range(2 if bidirectional else 1):
            bias_shape = (gates * h,) if cell == "lstm" else (2, gates * h)
            arrays += [
                rng.normal(0, 0.5, (size, gates * h)),
                rng.normal(0, 0.5, (h, gates * h)),
                rng.normal(0, 0.2, bias_shape),
            ]
        size = h * (2 if bidirectional else 1)
    arrays += [rng.normal(0, 0.5, (size, classes)), rng.normal(0, 0.1, (classes,))]
    return arrays


def _inputs(inputs: int, batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch * 100 + steps)
    lengths = rng.integers(1, steps + 1, size=batch)
    return rng.normal(size=(batch, steps, inputs)), lengths


def _run_all(explainers: dict[str, Explainer]) -> dict[str, np.ndarray]:
    """Every (model, method, batch, length) result as flat named arrays, plus trace counts."""
    out: dict[str, np.ndarray] = {}
    for name, ex in explainers.items():
        inputs = MODELS[name][2]
        for steps in LENGTHS:
            for batch in BATCHES:
                x, lengths = _inputs(inputs, batch, steps)
                # LRP at every shape; the gradient (a second compiled function) at one shape
                for method in ("lrp", "gradient_x_input") if (batch, steps) == (BATCHES[0], LENGTHS[0]) else ("lrp",):
                    res = ex.explain(x, method=method, lengths=lengths, eps=1e-3, bias_factor=1.0)
                    key = f"{name}/{method}/{batch}/{steps}"
                    out[key + "/relevance"] = res.relevance
                    out[key + "/scores"] = res.scores
                    out[key + "/initial"] = res.initial_state_relevance
        out[f"{name}/traces"] = np.asarray(ex.trace_count)
    return out


def _explainers(dtype: str = "float64") -> dict[str, Explainer]:
    return {
        name: Explainer.from_weights(_weights(cell, bidi, d, units, c), cell=cell, bidirectional=bidi, dtype=dtype)
        for name, (cell, bidi, d, units, c) in MODELS.items()
    }


JAX_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["tensorflow"] = None  # importing TensorFlow now fails: the JAX path must not need it
    import numpy as np
    import tests.test_backend as t
    from tf_lrp import backend
    assert backend.name() == "jax", backend.name()
    np.savez(sys.argv[1], **t._run_all(t._explainers()))
    # the 64-bit mode was scoped to tf_lrp's calls: JAX's and Keras's defaults are back
    import jax
    from keras.src.backend.common import dtypes
    assert not jax.config.jax_enable_x64
    assert dtypes.BIT64_TO_BIT32_DTYPE["float64"] == "float32"
    assert jax.numpy.ones(2).dtype == np.float32
    """
)


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    pytest.importorskip("jax")
    path = tmp_path_factory.mktemp("jax") / "results.npz"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def tf_results() -> dict[str, np.ndarray]:
    if backend.name() != "tensorflow":
        pytest.skip("compares the TensorFlow backend (this process) with JAX (a subprocess)")
    return _run_all(_explainers())


@pytest.mark.slow
@pytest.mark.jax
def test_jax_matches_tensorflow_float64(tf_results: dict[str, np.ndarray], jax_results: dict[str, np.ndarray]) -> None:
    compared = [k for k in tf_results if not k.endswith("/traces")]
    assert sorted(compared) == sorted(k for k in jax_results if not k.endswith("/traces"))
    assert len(compared) == len(MODELS) * (len(BATCHES) * len(LENGTHS) + 1) * 3
    worst = 0.0
    for key in compared:
        expected, actual = tf_results[key], jax_results[key]
        assert actual.dtype == np.float64, key
        scale = max(np.abs(expected).max(), np.finfo(np.float64).tiny)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-10 * scale, err_msg=key)
        worst = max(worst, float(np.abs(actual - expected).max() / scale))
    assert worst < 1e-10


@pytest.mark.slow
def test_tensorflow_traces_once_per_method(tf_results: dict[str, np.ndarray]) -> None:
    # two methods (lrp, gradient_x_input), each traced once for 3 batch sizes x 2 lengths
    for name in MODELS:
        assert int(tf_results[f"{name}/traces"]) == 2, name


@pytest.mark.slow
@pytest.mark.jax
def test_jax_compiles_once_per_bucket_and_length(jax_results: dict[str, np.ndarray]) -> None:
    # JAX specialises on shapes; the batch is padded to backend.bucket, so the compilations
    # are bounded by (buckets hit) x (lengths) per method, not by the batch sizes seen
    buckets = {backend.bucket(b) for b in BATCHES}
    assert len(buckets) < len(BATCHES)  # the test exercises the padding
    for name in MODELS:
        assert int(jax_results[f"{name}/traces"]) == len(buckets) * len(LENGTHS) + 1, name


def test_bucket_values() -> None:
    assert [backend.bucket(n) for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 256, 257, 4096)] == [
        1, 2, 3, 4, 6, 6, 8, 8, 12, 16, 256, 384, 4096,
    ]  # fmt: skip
    sizes = range(1, 5000)
    assert all(n <= backend.bucket(n) < max(n * 3 // 2, 2) for n in sizes)  # less than half more work
    assert len({backend.bucket(n) for n in sizes}) <= 2 * 13
    with pytest.raises(ValueError, match="size must be positive"):
        backend.bucket(0)


def test_bucket_below_values() -> None:
    assert [backend.bucket_below(n) for n in (1, 2, 3, 5, 7, 8, 2080, 3100)] == [1, 2, 3, 4, 6, 8, 2048, 3072]
    for n in range(1, 3000):
        below = backend.bucket_below(n)
        assert backend.bucket(below) == below <= n  # a bucket, not above n ...
        assert backend.bucket(below + 1) > n  # ... and the next bucket is above n
    with pytest.raises(ValueError, match="size must be positive"):
        backend.bucket_below(0)


def test_budget_limited_chunks_are_buckets() -> None:
    ex = _explainers("float32")["lstm_bidi"]
    per_sample = ex.working_set_bytes(9)
    ex.memory_budget = per_sample * 100  # 100 samples fit
    assert ex._chunk_size(1000, 9, None) == 96
    assert ex._chunk_size(80, 9, None) == 80  # fits: one chunk, no rounding


def test_x64_only_for_float64_signatures() -> None:
    spec = backend.TensorSpec
    assert backend.needs_x64([[spec((3, 4), "float64")], spec((None,), "int32")])
    assert not backend.needs_x64([[spec((3, 4), "float32")], spec((None,), "int32")])


def test_padding_does_not_change_results() -> None:
    """Batch padding (JAX, XLA) feeds bucket(B) rows, cuts outputs back to B, keeps 0-d outputs."""
    from keras import ops

    def function(x: object, scale: object) -> tuple[object, object]:
        return x * scale, ops.sum(ops.ones_like(x[:, 0]))

    signature = [backend.TensorSpec((None, 2), "float64"), backend.TensorSpec((), "float64")]
    padded = backend.Compiled(function, signature, jit_compile=backend.name() == "tensorflow", batch_args=[0])
    plain = backend.Compiled(function, signature)
    x = np.arange(10.0).reshape(5, 2)
    scaled, rows = padded(x, np.asarray(2.0))
    np.testing.assert_array_equal(scaled, x * 2)
    assert float(rows) == backend.bucket(5) == 6
    scaled, rows = plain(x, np.asarray(2.0))
    np.testing.assert_array_equal(scaled, x * 2)
    assert float(rows) == 5


def _full_float32_active() -> bool:
    """Whether float32 products are full float32 right now, on the active backend."""
    if backend.name() == "tensorflow":
        import tensorflow as tf

        return not tf.config.experimental.tensor_float_32_execution_enabled()
    if backend.name() == "jax":
        import jax

        return jax.config.jax_default_matmul_precision == "highest"
    import torch

    return torch.get_float32_matmul_precision() == "highest"


@pytest.fixture
def tf32_allowed() -> Iterator[None]:
    """The backend's default outside tf_lrp's calls allows TensorFloat-32 (PyTorch: as a user may set)."""
    if backend.name() != "torch":  # TensorFlow's and JAX's defaults allow it already
        yield
        return
    import torch

    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


@pytest.mark.core
@pytest.mark.usefixtures("tf32_allowed")
def test_float32_products_are_computed_in_full_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TensorFloat-32: TensorFlow's and PyTorch's switches are off while tf_lrp runs; JAX traces HIGHEST."""
    weights = _weights("lstm", True, 3, (4,), 2)
    x = np.random.default_rng(0).normal(size=(5, 6, 3))
    ex = Explainer.from_weights(weights, cell="lstm", bidirectional=True, dtype="float32")
    assert not _full_float32_active()
    if backend.name() == "tensorflow":
        import tensorflow as tf

        ex.explain(x)  # builds the compiled LRP function
        (compiled,) = ex._compiled.values()
        run, seen = compiled._call, []

        def spy(*args: object) -> object:
            seen.append(_full_float32_active())
            return run(*args)

        monkeypatch.setattr(compiled, "_call", spy)
        ex.explain(x)
        assert seen == [True]
        assert not _full_float32_active()  # restored
        tf.config.experimental.enable_tensor_float_32_execution(False)  # a user's own choice stays
        try:
            ex.explain(x)
            assert _full_float32_active()
        finally:
            tf.config.experimental.enable_tensor_float_32_execution(True)
    elif backend.name() == "jax":
        import jax

        jit, lowered = jax.jit, []

        def recording_jit(function: object) -> object:
            jitted = jit(function)

            def call(*args: object) -> object:
                lowered.append(jitted.lower(*args).as_text())
                return jitted(*args)

            return call

        monkeypatch.setattr(jax, "jit", recording_jit)  # before the first call compiles
        ex.explain(x)
        ex.explain(x, method="gradient_x_input")
        products = [line for text in lowered for line in text.splitlines() if "dot_general" in line]
        assert len(lowered) == 2
        assert len(products) >= 8  # input projections, recurrences, dense head, relevance maps
        assert all("precision = [HIGHEST, HIGHEST]" in line for line in products), products
    elif backend.name() == "torch":
        import torch

        matmul, seen = torch.matmul, []

        def spy(*args: object, **kwargs: object) -> object:
            seen.append(_full_float32_active())
            return matmul(*args, **kwargs)

        monkeypatch.setattr(torch, "matmul", spy)
        ex.explain(x)
        assert torch.get_float32_matmul_precision() == "high"  # restored
        assert len(seen) >= 8
        assert set(seen) == {True}
    else:
        pytest.skip("TensorFlow, JAX and PyTorch only")


@pytest.mark.core
@pytest.mark.usefixtures("tf32_allowed")
def test_keras_probe_check_runs_the_keras_model_in_full_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """from_keras compares with Keras's forward at tf_lrp's precision, not at TensorFloat-32."""
    import keras

    from tf_lrp.convert import keras as keras_convert

    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4), keras.layers.Dense(2)])
    original, states = keras_convert.keras_scores, []

    def spy(*args: object) -> object:
        states.append(_full_float32_active())
        return original(*args)

    monkeypatch.setattr(keras_convert, "keras_scores", spy)
    assert not _full_float32_active()  # the backend's default outside tf_lrp's calls
    Explainer.from_keras(model)
    assert states == [True]
    assert not _full_float32_active()


@pytest.mark.core
def test_shared_switch_holds_while_any_thread_needs_it() -> None:
    """The first block applies the setting, the last one to leave undoes it, across threads."""
    import threading

    state = {"on": False, "applied": 0, "undone": 0}

    def change() -> object:
        state["on"] = True
        state["applied"] += 1

        def undo() -> None:
            state["on"] = False
            state["undone"] += 1

        return undo

    switch = backend.SharedSwitch(change)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with switch():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with switch():
            second_in.set()
            first_out.wait(10)
            seen.append(state["on"])  # the first block has ended: the setting must still hold

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == [True]
    assert state == {"on": False, "applied": 1, "undone": 1}
    assert not switch.active

    # an error inside still undoes it; nested on one thread, the setting is applied once
    with pytest.raises(RuntimeError), switch(), switch():
        raise RuntimeError("boom")
    assert state == {"on": False, "applied": 2, "undone": 2}


def test_one_trace_per_compiled_function_prints_no_retracing_warning() -> None:
    """Many compiled functions (one per method), each traced once, must not trip TensorFlow's retrace warning.

    TensorFlow counts traces per code object; all ``Compiled`` share one, so without a per-instance key
    a session that explains with several methods logs "triggered tf.function retracing".
    """
    if backend.name() != "tensorflow":
        pytest.skip("the retracing warning is TensorFlow's")
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        signature = [backend.TensorSpec((None, 2), "float32")]
        for scale in range(1, 9):  # more than TensorFlow's threshold of 5 traces
            compiled = backend.Compiled(lambda x, s=float(scale): x * s, signature)
            np.testing.assert_array_equal(compiled(np.ones((3, 2), "float32")), np.full((3, 2), float(scale)))
            assert compiled.traces == 1
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]


# --------------------------------------------------------------------------------------------
# Accelerator memory (faked devices: no GPU is needed to test the parsing)


class _FakeJaxDevice:
    def __init__(self, platform: str, stats: dict[str, int] | Exception | None) -> None:
        self.platform = platform
        self.device_kind = "NVIDIA H200" if platform == "gpu" else "cpu"
        self._stats = stats

    def memory_stats(self) -> dict[str, int] | None:
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


@pytest.mark.jax
def test_jax_memory_reads_the_default_devices_memory_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    jax = pytest.importorskip("jax")
    stats = {"bytes_limit": 100 << 30, "bytes_in_use": 30 << 30, "peak_bytes_in_use": 40 << 30, "num_allocs": 7}
    monkeypatch.setattr(jax, "devices", lambda: [_FakeJaxDevice("gpu", stats), _FakeJaxDevice("gpu", {})])
    memory = backend._jax_memory()
    assert memory == backend.DeviceMemory("gpu:NVIDIA H200", 100 << 30, 30 << 30, 40 << 30)
    assert memory.free == 70 << 30
    monkeypatch.setattr(jax, "devices", lambda: [_FakeJaxDevice("gpu", RuntimeError("no stats"))])
    unknown = backend._jax_memory()
    assert unknown == backend.DeviceMemory("gpu:NVIDIA H200", None, None, None)  # the device, no numbers
    assert unknown.free is None
    monkeypatch.setattr(jax, "devices", lambda: [_FakeJaxDevice("cpu", None)])
    assert backend._jax_memory() is None


def test_tensorflow_memory_reads_gpu_0_and_its_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.client import device_lib

    class Logical:
        name = "/device:GPU:0"

    class Attributes:
        def __init__(self, device_type: str, memory_limit: int) -> None:
            self.device_type, self.memory_limit = device_type, memory_limit

    queried = []
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: [Logical()] if kind == "GPU" else [])
    monkeypatch.setattr(
        tf.config.experimental, "get_memory_info", lambda d: queried.append(d) or {"current": 5 << 30, "peak": 9 << 30}
    )
    monkeypatch.setattr(
        device_lib, "list_local_devices", lambda: [Attributes("CPU", 1 << 28), Attributes("GPU", 80 << 30)]
    )
    memory = backend._tensorflow_memory()
    assert memory == backend.DeviceMemory("gpu:/device:GPU:0", 80 << 30, 5 << 30, 9 << 30)
    assert memory.free == 75 << 30
    assert queried == ["GPU:0"]

    def broken() -> list:
        raise RuntimeError("private API changed")

    monkeypatch.setattr(device_lib, "list_local_devices", broken)
    assert backend._tensorflow_memory().limit is None  # reported, size unknown, no exception
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: [])
    assert backend._tensorflow_memory() is None


@pytest.mark.torch
def test_torch_memory_reads_cuda_mem_get_info(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (60 << 30, 80 << 30))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 12 << 30)
    assert backend._torch_memory() == backend.DeviceMemory("gpu:NVIDIA H100", 80 << 30, 20 << 30, 12 << 30)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backend._torch_memory() is None


def test_accelerator_memory_asks_the_active_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = backend.DeviceMemory("gpu:fake", 8 << 30, 0, 0)
    for active in ("jax", "tensorflow", "torch"):
        monkeypatch.setattr(backend, "name", lambda active=active: active)
        for probe in ("_jax_memory", "_tensorflow_memory", "_torch_memory"):
            monkeypatch.setattr(backend, probe, lambda probe=probe, active=active: fake if active in probe else None)
        assert backend.accelerator_memory() is fake
    monkeypatch.setattr(backend, "name", lambda: "numpy")
    assert backend.accelerator_memory() is None


def _doubling_function(record: list[bool]) -> object:
    """A core function whose one "loop step" goes through fused_step; records whether it was compiled."""

    def step(a):
        return a * 2.0 + 1.0

    def function(x):
        fused = fused_step(step, ("test_backend", "doubling"))
        record.append(fused is not step)
        return fused(x)

    return function


def test_auto_fuses_loop_steps_only_for_calls_with_enough_rows() -> None:
    record: list[bool] = []
    signature = [backend.TensorSpec((None, 4), "float64")]
    compiled = backend.Compiled(_doubling_function(record), signature, jit_compile="auto", batch_args=[0], loop_width=4)
    tensorflow = backend.name() == "tensorflow"
    assert compiled.fused_from == (backend.FUSED_STEP_NUMBERS // 4 if tensorflow else None)
    np.testing.assert_array_equal(compiled(np.ones((3, 4))), np.full((3, 4), 3.0))
    assert record == [False]  # a small call runs the plain graph
    if tensorflow:
        rows = compiled.fused_from
        for batch in (rows, rows + 5, rows - 1, 2):
            np.testing.assert_array_equal(compiled(np.ones((batch, 4))), np.full((batch, 4), 3.0))
        assert record == [False, True]  # one trace per variant, whatever the batch
        assert compiled.traces == 2
    assert fused_step(_doubling_function, "outside") is _doubling_function  # outside a trace: the step itself


@pytest.mark.parametrize("jit_compile", [False, True])
def test_only_auto_fuses_loop_steps(jit_compile: bool) -> None:
    compiled = backend.Compiled(_doubling_function([]), [backend.TensorSpec((None, 4), "float64")],
                                jit_compile=jit_compile, batch_args=[0], loop_width=4)  # fmt: skip
    assert compiled.fused_from is None
    no_loop = backend.Compiled(_doubling_function([]), [backend.TensorSpec((None, 4), "float64")],
                               jit_compile="auto", batch_args=[0], loop_width=0)  # fmt: skip
    assert no_loop.fused_from is None


@pytest.mark.skipif(backend.name() != "tensorflow", reason="step fusion is TensorFlow's (JAX compiles whole calls)")
def test_fused_trace_runs_its_loop_steps_as_xla_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "FUSED_STEP_NUMBERS", 1)  # fuse whatever the batch
    from .test_layout import lstm_weights

    ex = Explainer.from_weights(lstm_weights(np.random.default_rng(1)), cell="lstm", bidirectional=True)
    plain = Explainer.from_weights(lstm_weights(np.random.default_rng(1)), cell="lstm", bidirectional=True,
                                   jit_compile=False)  # fmt: skip
    x = np.random.default_rng(2).normal(size=(4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(ex.explain(x).relevance, plain.explain(x).relevance, rtol=0, atol=1e-6)  # float32
    (compiled,) = ex._compiled.values()
    (plain_compiled,) = plain._compiled.values()

    def xla_functions(function) -> int:
        library = function.get_concrete_function().graph.as_graph_def().library.function
        return sum(f.attr["_XlaMustCompile"].b for f in library)

    assert xla_functions(compiled._fused) == 1  # the backward step, one function for both directions (equal keys)
    assert xla_functions(plain_compiled._call) == 0


@pytest.mark.skipif(backend.name() != "tensorflow", reason="XLA steps are TensorFlow's")
def test_xla_steps_are_kept_by_key_and_bounded() -> None:
    steps = backend.XlaSteps(size=2)
    first = steps(lambda a: a + 1.0, "a")
    assert steps(lambda a: a + 2.0, "a") is first  # an equal key: the same compiled function
    steps(lambda a: a, "b")
    steps(lambda a: a, "c")  # evicts "a", the least recently used
    assert steps(lambda a: a + 1.0, "a") is not first
    unhashable = steps(lambda a: a, ["a list"])
    assert unhashable is not steps(lambda a: a, ["a list"])  # no key: compiled alone
