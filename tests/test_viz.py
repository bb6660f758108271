"""HTML heatmaps parse and contain every token; PNGs are written and are PNGs; errors."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tf_lrp import InputError, viz
from tf_lrp.evaluate import perturbation_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Tokens(HTMLParser):
    """Collects (text, title, style) of every token span and checks tags are balanced."""

    VOID = frozenset({"meta", "br", "img", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tokens: list[tuple[str, str, str]] = []
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") == "tok":
            self._current = {"title": attributes["title"], "style": attributes["style"], "text": ""}

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag, f"unbalanced </{tag}>"
        if tag == "span" and self._current is not None:
            self.tokens.append((self._current["text"], self._current["title"], self._current["style"]))
            self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current["text"] += data


def _parse(document: str) -> _Tokens:
    parser = _Tokens()
    parser.feed(document)
    parser.close()
    assert parser.stack == []
    return parser


def test_html_heatmap_has_every_token_escaped_with_values(tmp_path: Path) -> None:
    tokens = [["the", "<b>film</b>", "was", "\"great\" & fun"], ["bad", "</html>"]]
    relevance = np.array([[0.5, -2.0, 0.0, 1.0], [3.0, -1.0, 0.0, 0.0]])
    path = tmp_path / "heat.html"
    document = viz.html_heatmap(tokens, relevance, path=path, title="<x>", labels=["pos", "neg"])
    assert path.read_text(encoding="utf-8") == document
    assert document.startswith("<!DOCTYPE html>")
    parsed = _parse(document)
    assert [t[0] for t in parsed.tokens] == tokens[0] + tokens[1]
    assert [float(t[1]) for t in parsed.tokens] == [0.5, -2.0, 0.0, 1.0, 3.0, -1.0]
    styles = [t[2] for t in parsed.tokens]
    assert styles[1] == "background:rgb(0,0,255)"  # the most negative of sample 0: full blue
    assert styles[4] == "background:rgb(255,0,0)"  # the largest of sample 1: full red
    assert styles[2] == "background:rgb(255,255,255)"  # zero: white
    assert "<b>film" not in document
    assert "&lt;x&gt;" in document


def test_html_heatmap_single_sequence_and_feature_axis() -> None:
    document = viz.html_heatmap(["a", "b"], np.ones((1, 2, 3)))
    assert [t[0] for t in _parse(document).tokens] == ["a", "b"]
    assert [float(t[1]) for t in _parse(document).tokens] == [3.0, 3.0]


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def test_timeseries_png(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "series.png"
    figure = viz.timeseries_png(rng.normal(size=(40, 3)), rng.normal(size=(40, 3)), path, feature_names=["a", "b", "c"])
    _png(path)
    assert len(figure.axes) == 3  # signal, heatmap, colour bar


def test_plot_curves_with_results_and_arrays(tmp_path: Path, rng: np.random.Generator) -> None:
    class Scorer:
        def score(self, x, mask=None):
            total = np.asarray(x).sum(axis=(1, 2))
            return np.stack([total, -total], axis=1)

    x = rng.uniform(size=(4, 5, 2))
    result = perturbation_curve(Scorer(), x, x, target=0)
    path = tmp_path / "curves.png"
    figure = viz.plot_curves({"exact": result, "flat": np.ones(6), "batch": rng.uniform(size=(3, 6))}, path)
    _png(path)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels[0].startswith("exact (AUC ")
    assert labels[1] == "flat (AUC 1)"


def test_viz_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="relevance must be"):
        viz.html_heatmap([["a"], ["b"]], np.ones(3))
    with pytest.raises(InputError, match="only 1 relevance values"):
        viz.html_heatmap(["a", "b"], np.ones(1))
    with pytest.raises(InputError, match="labels must have one entry"):
        viz.html_heatmap(["a"], np.ones(1), labels=["x", "y"])
    with pytest.raises(InputError, match="NaN"):
        viz.html_heatmap(["a"], np.array([np.nan]))
    with pytest.raises(InputError, match="directory"):
        viz.html_heatmap(["a"], np.ones(1), path=tmp_path / "missing" / "x.html")
    with pytest.raises(InputError, match=r"both be \(T, D\)"):
        viz.timeseries_png(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(InputError, match="feature_names must have 2"):
        viz.timeseries_png(np.ones((3, 2)), np.ones((3, 2)), feature_names=["a"])
    with pytest.raises(InputError, match="curves is empty"):
        viz.plot_curves({})
    with pytest.raises(InputError, match="at least two points"):
        viz.plot_curves({"x": np.ones(1)})
