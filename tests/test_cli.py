"""The tf-lrp command line: every subcommand, its error paths, and one real console-script call."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tf_lrp import Explainer, cli
from tf_lrp.explainer import MANIFEST_KEY

D, H, C, T, N = 3, 4, 2, 6, 24


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def weights(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0, 0.5, (D, 4 * H)),
        rng.normal(0, 0.5, (H, 4 * H)),
        rng.normal(0, 0.2, (4 * H,)),
        rng.normal(0, 0.5, (H, C)),
        rng.normal(0, 0.1, (C,)),
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    explainer = Explainer.from_weights(weights(), cell="lstm", dtype="float64")
    explainer.save(root / "net.npz")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, T, D))
    lengths = rng.integers(1, T + 1, size=N)
    np.save(root / "x.npy", x)
    np.savez(root / "x.npz", x=x, lengths=lengths)
    np.save(root / "wrong.npy", x[:, :, :2])
    demo_model, demo_data, _ = cli.demo_files()
    with np.load(demo_data, allow_pickle=False) as data:
        np.savez(root / "tokens.npz", x=data["x"][:12], lengths=data["lengths"][:12])
    names = {"net": "net.npz", "x": "x.npy", "xz": "x.npz", "wrong": "wrong.npy", "tokens": "tokens.npz"}
    names["demo"] = str(demo_model)
    return {"root": root, **{key: root / name for key, name in names.items()}}


@pytest.fixture(scope="module")
def explainer(files) -> Explainer:
    return Explainer.load(files["net"])


class _Spans(HTMLParser):
    """(text, title) of every token span of an HTML heatmap; checks that the tags are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tokens: list[tuple[str, str]] = []
        self._title: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag != "meta":
            self.stack.append(tag)
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") == "tok":
            self._title, self._text = attributes["title"], ""

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag, f"unbalanced </{tag}>"
        if tag == "span" and self._title is not None:
            self.tokens.append((self._text, self._title))
            self._title = None

    def handle_data(self, data):
        if self._title is not None:
            self._text += data

    @classmethod
    def parse(cls, document: str) -> _Spans:
        parser = cls()
        parser.feed(document)
        parser.close()
        assert parser.stack == []
        return parser


# --------------------------------------------------------------------------------------------
# explain


@pytest.mark.slow
def test_explain_writes_resumable_output(files, explainer, tmp_path):
    out = tmp_path / "rel.npy"
    code, stdout, stderr = run(["explain", files["net"], files["x"], "-o", out, "--no-progress"])
    assert (code, stderr) == (0, "")
    assert f"explained {N} samples" in stdout
    x = np.load(files["x"])
    reference = explainer.explain(x)
    np.testing.assert_allclose(np.load(out), reference.relevance, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(np.load(tmp_path / "rel.targets.npy"), reference.target)
    assert json.loads((tmp_path / "rel.json").read_text())["completed"] == N

    code, _, stderr = run(["explain", files["net"], files["x"], "-o", out, "--no-progress"])
    assert code == 2
    assert "exists: pass --resume to continue that run or --overwrite" in stderr
    code, stdout, _ = run(["explain", files["net"], files["x"], "-o", out, "--resume", "--no-progress"])
    assert code == 0
    assert f"explained 0 samples (resumed after {N})" in stdout
    code, _, stderr = run(["explain", files["net"], files["x"], "-o", out, "--resume", "--eps", "0.5"])
    assert code == 2
    assert "cannot resume" in stderr
    assert "eps: recorded 0.001, now 0.5" in stderr
    code, stdout, _ = run(["explain", files["net"], files["x"], "-o", out, "--overwrite", "--eps", "0.5"])
    assert code == 0


@pytest.mark.slow
def test_explain_options_and_npz_data(files, explainer, tmp_path):
    out = tmp_path / "g.npy"
    argv = ["explain", files["net"], files["xz"], "-o", out, "--method", "gradient_x_input", "--target", "1"]
    code, _, stderr = run([*argv, "--batch-size", "5", "--memory-budget", "64M", "--dtype", "float64"])
    assert (code, stderr) == (0, "")
    with np.load(files["xz"]) as data:
        reference = explainer.explain(data["x"], target=1, method="gradient_x_input", lengths=data["lengths"])
    np.testing.assert_allclose(np.load(out), reference.relevance, rtol=1e-10, atol=1e-12)
    assert set(np.load(tmp_path / "g.targets.npy").tolist()) == {1}


@pytest.mark.slow
def test_explain_html_heatmap_of_a_token_model(files, tmp_path):
    vocabulary = ["<pad>", "KEY & A", "KEY-B", "KEY-C", *(f"w{i}" for i in range(4, 16))]
    (tmp_path / "vocab.txt").write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    out, page = tmp_path / "r.npy", tmp_path / "heat.html"
    argv = ["explain", files["demo"], files["tokens"], "-o", out, "--html", page, "--no-progress"]
    code, stdout, stderr = run([*argv, "--heatmap-samples", "3", "--vocab", tmp_path / "vocab.txt"])
    assert (code, stderr) == (0, "")
    assert f"wrote {page}" in stdout
    with np.load(files["tokens"]) as data:
        x, lengths = data["x"], data["lengths"]
    token_relevance = np.load(out).sum(axis=-1)
    expected = [(vocabulary[t], token_relevance[i, j]) for i in range(3) for j, t in enumerate(x[i, : lengths[i]])]
    document = page.read_text(encoding="utf-8")
    shown = _Spans.parse(document).tokens
    assert [text for text, _ in shown] == [name for name, _ in expected]
    np.testing.assert_allclose([float(title) for _, title in shown], [v for _, v in expected], rtol=1e-5, atol=1e-7)
    assert document.count('<span class="label">sample') == 3

    code, _, stderr = run([*argv, "--overwrite"])  # default: 8 samples, tokens shown as their ids
    assert (code, stderr) == (0, "")
    shown = _Spans.parse(page.read_text(encoding="utf-8")).tokens
    assert [text for text, _ in shown] == [str(t) for i in range(8) for t in x[i, : lengths[i]]]

    (tmp_path / "short.txt").write_text("<pad>\nKEY-A\n", encoding="utf-8")
    before = out.stat().st_mtime_ns
    code, _, stderr = run([*argv, "--overwrite", "--vocab", tmp_path / "short.txt"])
    assert code == 2
    assert re.search(r"token id \d+ has no line in the --vocab file \(2 lines\)", stderr)
    assert out.stat().st_mtime_ns == before  # refused before explaining


@pytest.mark.slow
def test_explain_png_heatmap_of_a_time_series_model(files, tmp_path):
    picture = tmp_path / "heat.png"
    argv = ["explain", files["net"], files["xz"], "-o", tmp_path / "r.npy", "--no-progress"]
    code, stdout, stderr = run([*argv, "--png", picture, "--heatmap-samples", "2"])
    assert (code, stderr) == (0, "")
    assert f"wrote {picture}" in stdout
    data = picture.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_explain_png_without_matplotlib_names_the_viz_extra(files, tmp_path, monkeypatch):
    find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "matplotlib" else find_spec(name))
    code, _, stderr = run(["explain", files["net"], files["x"], "-o", tmp_path / "r.npy", "--png", tmp_path / "h.png"])
    assert code == 2
    assert stderr.strip() == "tf-lrp explain: error: --png needs matplotlib: pip install 'tf_lrp[viz]'"
    assert not (tmp_path / "r.npy").exists()  # refused before explaining


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "{root}/missing.npz", "{x}", "-o", "{tmp}/r.npy"], "model file '.*missing.npz' does not exist"),
        (["explain", "{net}", "{root}/missing.npy", "-o", "{tmp}/r.npy"], "data file '.*missing.npy' does not exist"),
        (["explain", "{net}", "{wrong}", "-o", "{tmp}/r.npy"], r"data must be \(batch, time, 3\) features"),
        (["explain", "{x}", "{x}", "-o", "{tmp}/r.npy"], "unsupported model file"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--target", "two"], "--target must be an integer or"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--target", "5"], "target out of range"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--batch-size", "0"], "--batch-size must be a positive"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--memory-budget", "lots"], "--memory-budget must be"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--bias-factor", "2"], r"bias_factor must lie in \[0, 1\]"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.csv"], r"out must name an \.npy file"),
        (["explain", "{net}", "{root}/x.csv", "-o", "{tmp}/r.npy"], "does not exist"),
        (["info", "{x}"], "info reads tf_lrp network .npz files"),
        (["info", "{xz}"], "is not a tf_lrp network file"),
        (["convert", "{root}/missing.keras", "-o", "{tmp}/n.npz"], "does not exist"),
        (["convert", "{x}", "-o", "{tmp}/n.npz"], "unsupported model file"),
        (["convert", "{net}", "-o", "{tmp}/n.txt"], r"-o must name an \.npz file"),
        (["convert", "{xz}", "-o", "{tmp}/n.npz"], "no 'weight_ih_l0' entry"),
        (["demo", "-o", "{tmp}/demo", "--samples", "0"], r"--samples must lie in \[1, 4000\]"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--html", "{tmp}/h.html"], "--html draws token models"),
        (["explain", "{demo}", "{tokens}", "-o", "{tmp}/r.npy", "--png", "{tmp}/h.png"], "--png draws time-series"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--png", "{tmp}/h.jpg"],
         r"--png must name a \.png, \.svg or \.pdf file"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--png", "{tmp}/h.png", "--heatmap-samples", "0"],
         "--heatmap-samples must be a positive"),
        (["explain", "{net}", "{x}", "-o", "{tmp}/r.npy", "--vocab", "{x}"], "--vocab names the tokens"),
        (["explain", "{demo}", "{tokens}", "-o", "{tmp}/r.npy", "--html", "{tmp}/h.html", "--vocab", "{tmp}/v.txt"],
         "--vocab file '.*v.txt' does not exist"),
        (["explain", "{demo}", "{tokens}", "-o", "{tmp}/r.npy", "--html", "{tmp}/h.html", "--vocab", "{short}"],
         r"token id \d+ has no line in the --vocab file \(3 lines\): it must name every id of the first 8 samples"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(files, tmp_path, argv, message):
    (tmp_path / "short.txt").write_text("<pad>\nKEY-A\nKEY-B\n")  # the demo tokens go up to 15
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path), "short": str(tmp_path / "short.txt")}
    code, _stdout, stderr = run([a.format(**names) for a in argv])
    assert code == 2
    assert not (tmp_path / "r.npy").exists()  # refused before explaining
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"tf-lrp {argv[0]}: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in stderr


def test_debug_shows_the_traceback(files, tmp_path):
    code, _, stderr = run(["--debug", "explain", tmp_path / "none.npz", files["x"], "-o", tmp_path / "r.npy"])
    assert code == 2
    assert "Traceback" in stderr
    assert stderr.strip().splitlines()[-1].startswith("tf-lrp explain: error: model file")


def test_argparse_errors_exit_2(capsys):
    assert cli.main(["explain"]) == 2
    assert cli.main(["explain", "a.npz", "b.npy", "-o", "c.npy", "--method", "magic"]) == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 2


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args([command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"tf-lrp {command}" in text


def test_method_choices_come_from_the_methods_table(capsys):
    from tf_lrp.explainer import DTYPES, MANIFEST_KEY
    from tf_lrp.methods import METHODS

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["explain", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in METHODS)
    # the parser's copies (parsing imports no framework) agree with the library's tables
    assert sorted(cli.METHOD_NAMES) == sorted(METHODS)
    assert cli.DTYPES == DTYPES
    assert cli.MANIFEST_KEY == MANIFEST_KEY


def test_parsing_and_usage_errors_import_no_framework(files, tmp_path):
    """--help, argparse errors and file checks answer before Keras / TensorFlow are imported."""
    script = f"""
import contextlib, io, sys
import tf_lrp, tf_lrp.cli as cli
from tf_lrp import InputError, TfLrpError, __version__
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    assert cli.main(["--help"]) == 0
    assert cli.main(["explain", "--help"]) == 0
    assert cli.main(["explain"]) == 2
    assert cli.main(["explain", "{files['net']}", "{tmp_path}/missing.npy", "-o", "{tmp_path}/r.npy"]) == 2
    assert cli.main(["explain", "{tmp_path}/missing.npz", "{files['x']}", "-o", "{tmp_path}/r.npy"]) == 2
    assert cli.main(["info", "{files['x']}"]) == 2
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch", "matplotlib") if m in sys.modules)
assert not heavy, heavy
assert "Explainer" in dir(tf_lrp)  # listed, imported on first use (test_every_public_name_imports)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_every_public_name_imports():
    import tf_lrp

    namespace: dict[str, object] = {}
    exec("from tf_lrp import *", namespace)
    assert set(tf_lrp.__all__) <= set(namespace)
    assert namespace["Explainer"] is Explainer
    with pytest.raises(AttributeError, match="no attribute 'Explainr'"):
        _ = tf_lrp.Explainr


@pytest.mark.slow
def test_framework_start_up_lines_are_hidden(files, tmp_path):
    """In the CLI process TensorFlow's C++ start-up lines (absl, cuInit, CPU features) do not reach stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "tf_lrp.cli", "info", str(files["net"])]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "fingerprint:" in done.stdout


# --------------------------------------------------------------------------------------------
# convert, validate, info


def test_convert_network_and_torch_state_dict(files, explainer, tmp_path):
    code, stdout, _ = run(["convert", files["net"], "-o", tmp_path / "copy.npz", "--dtype", "float64"])
    assert code == 0
    assert "LSTM(units=4" in stdout
    assert Explainer.load(tmp_path / "copy.npz").fingerprint == explainer.fingerprint

    rng = np.random.default_rng(4)
    state = {
        "lstm.weight_ih_l0": rng.normal(size=(4 * H, D)),
        "lstm.weight_hh_l0": rng.normal(size=(4 * H, H)),
        "lstm.bias_ih_l0": rng.normal(size=(4 * H,)),
        "lstm.bias_hh_l0": rng.normal(size=(4 * H,)),
        "fc.weight": rng.normal(size=(C, H)),
        "fc.bias": rng.normal(size=(C,)),
    }
    np.savez(tmp_path / "state.npz", **state)
    code, stdout, stderr = run(["convert", tmp_path / "state.npz", "-o", tmp_path / "torch.npz", "--cell", "lstm"])
    assert (code, stderr) == (0, "")
    converted = Explainer.load(tmp_path / "torch.npz")
    assert converted.layout.num_outputs == C
    code, _, _ = run(["validate", tmp_path / "torch.npz"])
    assert code == 0


@pytest.mark.slow
def test_convert_keras_file(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(H), keras.layers.Dense(C)])
    model.save(tmp_path / "m.keras")
    code, _stdout, stderr = run(["convert", tmp_path / "m.keras", "-o", tmp_path / "k.npz"])
    assert (code, stderr) == (0, "")
    x = np.random.default_rng(5).normal(size=(4, T, D)).astype("float32")
    ours = Explainer.load(tmp_path / "k.npz").score(x)
    np.testing.assert_allclose(ours, model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    code, _, stderr = run(["convert", tmp_path / "m.keras", "-o", tmp_path / "k2.npz", "--cell", "gru"])
    assert code == 2
    assert "--cell and --bidirectional are for PyTorch" in stderr


def test_convert_an_rnn_state_dict_needs_its_nonlinearity(tmp_path):
    torch = pytest.importorskip("torch")
    rnn, fc = torch.nn.RNN(3, 4, nonlinearity="relu"), torch.nn.Linear(4, 2)
    state = {f"rnn.{k}": v.detach().numpy() for k, v in rnn.state_dict().items()}
    state |= {f"fc.{k}": v.detach().numpy() for k, v in fc.state_dict().items()}
    np.savez(tmp_path / "rnn.npz", **state)
    code, _, stderr = run(["convert", tmp_path / "rnn.npz", "-o", tmp_path / "net.npz"])
    assert code == 2
    assert "pass nonlinearity='tanh' or 'relu'" in stderr
    code, _, stderr = run(["convert", tmp_path / "rnn.npz", "-o", tmp_path / "net.npz", "--nonlinearity", "relu"])
    assert (code, stderr) == (0, "")
    code, stdout, _ = run(["info", tmp_path / "net.npz"])
    assert code == 0
    assert "0: SimpleRNN(units=4, return_sequences=False) forward: 3 -> 4" in stdout
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    with torch.no_grad():
        out, _ = rnn(torch.tensor(x).transpose(0, 1))
        expected = fc(out[-1]).numpy()
    np.testing.assert_allclose(Explainer.load(tmp_path / "net.npz").score(x), expected, rtol=1e-5, atol=1e-5)


def test_validate_reports_layout_and_problems(files, tmp_path):
    code, stdout, _ = run(["validate", files["net"]])
    assert code == 0
    assert "0: LSTM(units=4" in stdout
    assert stdout.strip().endswith(": OK")

    with np.load(files["net"]) as data:
        arrays = {k: data[k] for k in data.files}
    key = next(k for k in arrays if k.endswith("recurrent_kernel"))
    arrays[key] = arrays[key][:, :-1]
    np.savez(tmp_path / "broken.npz", **arrays)
    code, stdout, _ = run(["validate", tmp_path / "broken.npz"])
    assert code == 1
    assert "problem: weights:" in stdout
    assert "recurrent_kernel" in stdout

    manifest = json.loads(str(arrays[MANIFEST_KEY]))
    manifest["layers"][0]["units"] = 0
    arrays[MANIFEST_KEY] = np.asarray(json.dumps(manifest))
    np.savez(tmp_path / "badmanifest.npz", **arrays)
    code, stdout, _ = run(["validate", tmp_path / "badmanifest.npz"])
    assert code == 1
    assert "problem: manifest:" in stdout

    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    code, stdout, _ = run(["validate", tmp_path / "plain.npz"])
    assert code == 1
    assert "not a tf_lrp network file" in stdout
    code, _, stderr = run(["validate", tmp_path / "missing.npz"])
    assert code == 2
    assert "does not exist" in stderr


def test_info(files, explainer):
    code, stdout, _ = run(["info", files["net"]])
    assert code == 0
    assert f"fingerprint: {explainer.fingerprint}" in stdout
    assert f"outputs: {C}" in stdout
    assert "(batch, time, 3) features" in stdout


# --------------------------------------------------------------------------------------------
# demo


def test_demo_explains_the_bundled_data(tmp_path):
    code, stdout, stderr = run(["demo", "-o", tmp_path / "demo", "--samples", "300", "--no-progress"])
    assert (code, stderr) == (0, "")
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["samples"] == 300
    assert summary["model_accuracy"] > 0.95
    assert summary["top_relevance_on_keyword"] > 0.95  # the planted keyword carries the decision
    assert summary["max_conservation_error_bias_factor_1"] < 1e-4  # float32
    assert "samples/s" in stdout
    assert "ground truth" in stdout
    page = (tmp_path / "demo" / "heatmap.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<div class="seq"><div class="caption"><span class="label">sample') == cli.DEMO_HEATMAP_SAMPLES
    assert len(_Spans.parse(page).tokens) > cli.DEMO_HEATMAP_SAMPLES * 8  # 8 to 32 tokens per sample
    assert np.load(tmp_path / "demo" / "relevances.npy").shape == (300, 32, 8)


def test_bundled_demo_is_small_and_readable():
    model, data, about = cli.demo_files()
    assert model.stat().st_size + data.stat().st_size < 1 << 20
    with np.load(data, allow_pickle=False) as arrays:
        assert arrays["x"].shape[0] >= 1000
        x, where = arrays["x"], arrays["keyword_position"]
        assert np.isin(x[np.arange(len(x)), where], (1, 2, 3)).all()
    assert about["ground_truth"] == "keyword_position"


@pytest.mark.slow
def test_console_script_runs_as_a_program(files, tmp_path):
    script = Path(sys.executable).parent / "tf-lrp"
    if not script.exists():
        pytest.skip("the tf-lrp console script is not installed in this environment")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [str(script), "explain", str(tmp_path / "no.npz"), str(files["x"]), "-o", str(tmp_path / "r.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "tf-lrp explain: error: model file" in done.stderr


def test_explain_runs_a_per_step_network_and_refuses_its_heatmap(tmp_path):
    from tests.networks import per_step_tagger

    case = per_step_tagger(np.random.default_rng(3))
    case.explainer.save(tmp_path / "tagger.npz")
    np.save(tmp_path / "x.npy", case.x)
    argv = ["explain", tmp_path / "tagger.npz", tmp_path / "x.npy", "-o", tmp_path / "r.npy", "--no-progress"]
    code, _, stderr = run([*argv, "--png", tmp_path / "heat.png"])
    assert code == 2
    assert "--html / --png caption one score vector per sample; this network scores every step" in stderr
    assert not (tmp_path / "r.npy").exists()
    code, _, stderr = run(argv)
    assert (code, stderr) == (0, "")
    reference = case.explainer.explain(case.x)
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), reference.relevance, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.load(tmp_path / "r.explained.npy"), reference.explained_score, rtol=1e-10)


def test_explain_a_text_file_with_a_text_model(files, tmp_path):
    import keras

    corpus = ["the cat sat on the mat", "a dog and a cat", "birds fly over the sea"]
    vectorize = keras.layers.TextVectorization(max_tokens=20)
    vectorize.adapt(corpus)
    texts = keras.Input(shape=(1,), dtype="string")
    h = keras.layers.LSTM(3)(keras.layers.Embedding(20, 4, mask_zero=True)(vectorize(texts)))
    keras.Model(texts, keras.layers.Dense(2)(h)).save(tmp_path / "text.keras")
    (tmp_path / "texts.txt").write_text("The cat sat!\n\nA zebra and a dog on the mat\n", encoding="utf-8")
    out, page = tmp_path / "r.npy", tmp_path / "heat.html"
    argv = ["explain", tmp_path / "text.keras", tmp_path / "texts.txt", "-o", out, "--html", page, "--no-progress"]
    code, stdout, stderr = run(argv)
    assert (code, stderr) == (0, "")
    assert "tokenized" in stdout
    ids = np.load(tmp_path / "r.ids.npy")
    assert ids.shape == (2, 8)  # the empty line is skipped; padded to the longest text
    assert np.load(out).shape == (2, 8, 4)
    shown = [text for text, _ in _Spans.parse(page.read_text(encoding="utf-8")).tokens]
    assert shown == ["the", "cat", "sat", "a", "[UNK]", "and", "a", "dog", "on", "the", "mat"]  # no --vocab needed
    code, _, stderr = run(["explain", files["demo"], tmp_path / "texts.txt", "-o", tmp_path / "x.npy"])
    assert code == 2
    assert "has no TextVectorization input" in stderr
