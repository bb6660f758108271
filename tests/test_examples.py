"""The scripts in examples/ run as written and show what they claim (so they never rot).

Each script's ``main(out_dir)`` runs in this process (TensorFlow and PyTorch are imported once
for the whole suite); its printed results are checked against the claim in its docstring, and
the file a person would look at must exist and be a real PNG / HTML page.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(name: str, out_dir: Path) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        load(name).main(out_dir)
    return printed.getvalue()


def percent(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_every_example_is_tested():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


def check_text_classifier(text: str, out: Path) -> None:
    assert percent(r"the sentiment word is the most relevant token in ([\d.]+)%", text) > 90
    page = (out / "text_heatmap.html").read_text(encoding="utf-8")
    assert page.count('class="tok"') > 50
    assert "review 9:" in page


def check_timeseries(text: str, out: Path) -> None:
    assert percent(r"test accuracy ([\d.]+)%", text) > 90
    assert percent(r"lies in the pulse for ([\d.]+)%", text) > 60
    auc = {name: float(value) for name, value in re.findall(r"(\S+): MoRF AUC (-?[\d.]+)", text)}
    assert auc["LRP"] < auc["random"]
    assert auc["Gradient×Input"] < auc["random"]
    assert is_png(out / "timeseries_heatmaps.png")
    assert is_png(out / "timeseries_curves.png")


def check_pytorch_model(text: str, out: Path) -> None:
    assert percent(r"PyTorch logit\|: ([\d.e+-]+)", text) < 1e-4
    assert percent(r"the marked step is the most relevant step in ([\d.]+)%", text) > 80
    assert is_png(out / "pytorch_heatmaps.png")


def check_forecaster(text: str, out: Path) -> None:
    assert percent(r"mean absolute forecast error ([\d.]+)", text) < 0.1
    shares = [float(s) for s in re.findall(r"step \d: (\d+)% of the relevance", text)]
    assert len(shares) == 3
    assert min(shares) > 50
    assert is_png(out / "forecaster_steps.png")


def check_raw_text_pooling(text: str, out: Path) -> None:
    assert percent(r"the sentiment word is the most relevant token in ([\d.]+)%", text) > 90
    page = (out / "raw_text_heatmap.html").read_text(encoding="utf-8")
    assert page.count('class="tok"') > 50
    assert "review 9:" in page


def check_sequence_tagger(text: str, out: Path) -> None:
    assert percent(r"tagging accuracy on real words ([\d.]+)%", text) > 95
    assert percent(r"the title before it is the most relevant token in ([\d.]+)%", text) > 80
    page = (out / "tagger_heatmap.html").read_text(encoding="utf-8")
    assert page.count('class="tok"') > 40
    assert "tagged as a name" in page


def check_cnn_lstm(text: str, out: Path) -> None:
    assert percent(r"test accuracy ([\d.]+)%", text) > 90
    assert percent(r"([\d.]+)% of the positive relevance lies in the pulse", text) > 50  # in 2% of the cells
    page = (out / "cnn_lstm_heatmap.html").read_text(encoding="utf-8")
    assert page.count('class="tok"') == 6 * 48


def check_attention_classifier(text: str, out: Path) -> None:
    assert percent(r"test accuracy ([\d.]+)%", text) > 90
    assert percent(r"cp_lrp: the keyword is the most relevant token in ([\d.]+)%", text) > 90
    assert percent(r"attnlrp: the keyword is the most relevant token in ([\d.]+)%", text) > 80
    assert 'class="tok"' in (out / "attention_heatmap.html").read_text(encoding="utf-8")


def check_keras_seq2seq(text: str, out: Path) -> None:
    assert percent(r"mean absolute copy error ([\d.]+)", text) < 0.1
    assert percent(r"reading t is the most relevant reading in ([\d.]+)%", text) > 40  # chance: 16.7%
    assert (out / "seq2seq_heatmap.html").read_text(encoding="utf-8").count('class="tok"') == 36


CHECKS = {
    "keras_seq2seq": check_keras_seq2seq,
    "cnn_lstm": check_cnn_lstm,
    "attention_classifier": check_attention_classifier,
    "sequence_tagger": check_sequence_tagger,
    "text_classifier": check_text_classifier,
    "raw_text_pooling": check_raw_text_pooling,
    "timeseries": check_timeseries,
    "pytorch_model": check_pytorch_model,
    "forecaster": check_forecaster,
}


@pytest.mark.slow
@pytest.mark.examples
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_shows_what_it_claims(name, tmp_path):
    if name in ("pytorch_model", "forecaster"):
        torch = pytest.importorskip("torch")
        threads = torch.get_num_threads()
        try:
            text = run(name, tmp_path)  # the torch examples train on one thread
        finally:
            torch.set_num_threads(threads)
    else:
        text = run(name, tmp_path)
    CHECKS[name](text, tmp_path)
