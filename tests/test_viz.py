"""Figures: HTML heatmaps parse and contain every token; every figure type matches its golden image.

The golden images (tests/golden/*.png) are rendered at a fixed size from fixed data and compared
with ``matplotlib.testing.compare.compare_images`` within ``GOLDEN_TOLERANCE`` (RMS of the
pixel difference, 0-255), so a broken layout fails. After a deliberate change of a figure,
regenerate them with ``TF_LRP_UPDATE_GOLDEN=1 pytest tests/test_viz.py`` and look at them.
"""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tf_lrp import InputError, viz
from tf_lrp.evaluate import compare, perturbation_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GOLDEN = Path(__file__).parent / "golden"
#: RMS pixel difference allowed (font rasterisation differs slightly between FreeType builds).
GOLDEN_TOLERANCE = 3.0
#: Golden images are small: rendered at this resolution.
GOLDEN_DPI = 60
#: The matplotlib release the golden images were rendered with (other releases move pixels).
GOLDEN_MATPLOTLIB = "3.11"


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
    document = viz.html_heatmap(tokens, relevance, path=path, title="<x>", labels=["pos", "neg"], scale="sample")
    assert path.read_text(encoding="utf-8") == document
    assert document.startswith("<!DOCTYPE html>")
    parsed = _parse(document)
    assert [t[0] for t in parsed.tokens] == tokens[0] + tokens[1]
    assert [float(t[1]) for t in parsed.tokens] == [0.5, -2.0, 0.0, 1.0, 3.0, -1.0]
    styles = [t[2] for t in parsed.tokens]
    assert styles[1] == "background:rgb(33,102,172);color:#fff"  # the most negative of sample 0: full blue
    assert styles[4] == "background:rgb(186,56,48);color:#fff"  # the largest of sample 1: full red
    assert styles[2] == "background:rgb(255,255,255);color:#000"  # zero: white
    assert "(max |R| 2)" in document  # per-sample scales are stated
    assert "<b>film" not in document
    assert "&lt;x&gt;" in document


def test_html_heatmap_scale_is_shared_by_default_with_a_legend_of_its_values() -> None:
    relevance = np.array([[0.5, -2.0], [4.0, -4.0]])
    parsed = _parse(viz.html_heatmap([["a", "b"], ["c", "d"]], relevance))
    styles = [t[2] for t in parsed.tokens]
    assert styles[3] == "background:rgb(33,102,172);color:#fff"  # -4, the shared maximum: full blue
    assert styles[2] == "background:rgb(186,56,48);color:#fff"  # +4: full red
    assert styles[1] == "background:rgb(144,178,214);color:#000"  # -2 of 4: half-way to blue
    document = viz.html_heatmap([["a", "b"], ["c", "d"]], relevance)
    for value in ("-4", "-2", "0", "+2", "+4"):
        assert f">{value}</span>" in document  # the legend's values


def test_the_html_colours_are_a_diverging_map_centred_at_zero() -> None:
    from tf_lrp._html import colour

    assert colour(0.0, 1.0) == "rgb(255,255,255)"
    def lightness(css: str) -> float:  # CIE L* of an sRGB colour
        channels = np.array(css[4:-1].split(","), dtype=float) / 255
        linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
        luminance = float(linear @ [0.2126, 0.7152, 0.0722])
        return 116 * np.cbrt(luminance) - 16 if luminance > 0.008856 else 903.3 * luminance

    for level in np.linspace(0.1, 1.0, 10):  # negative as visible as positive: the same lightness
        assert abs(lightness(colour(level, 1.0)) - lightness(colour(-level, 1.0))) < 1.5
        assert lightness(colour(level, 1.0)) < lightness(colour(level / 2, 1.0))
    assert colour(5.0, 1.0) == colour(1.0, 1.0)  # clipped


def test_html_heatmap_single_sequence_and_feature_axis() -> None:
    document = viz.html_heatmap(["a", "b"], np.ones((1, 2, 3)))
    assert [t[0] for t in _parse(document).tokens] == ["a", "b"]
    assert [float(t[1]) for t in _parse(document).tokens] == [3.0, 3.0]


def test_an_explanation_shows_itself_in_a_notebook() -> None:
    from tf_lrp import Explanation

    relevance = np.zeros((10, 4, 2))
    relevance[:, :, 0] = np.arange(4)
    mask = np.arange(4)[None, :] < np.full((10, 1), 3)
    explanation = Explanation(relevance, np.ones((10, 2)), np.zeros(10, int), np.zeros(10), "lrp", 1e-3, 0.0, mask)
    fragment = explanation._repr_html_()
    assert fragment.startswith('<div class="tf-lrp">')
    assert "first 8 of 10 samples" in fragment
    parsed = _parse(fragment)
    assert [t[0] for t in parsed.tokens[:3]] == ["t0", "t1", "t2"]  # only the valid steps
    assert len(parsed.tokens) == 8 * 3


def _png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1000


def _golden(figure_path: Path, name: str) -> None:
    """Compare a rendered PNG with tests/golden/NAME (or write it under TF_LRP_UPDATE_GOLDEN=1)."""
    import matplotlib
    from matplotlib.testing.compare import compare_images

    expected = GOLDEN / name
    release = ".".join(matplotlib.__version__.split(".")[:2])
    if release != GOLDEN_MATPLOTLIB and os.environ.get("TF_LRP_UPDATE_GOLDEN") != "1":
        pytest.skip(f"golden images are from matplotlib {GOLDEN_MATPLOTLIB}, this is {release}: regenerate them")
    if os.environ.get("TF_LRP_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        expected.write_bytes(figure_path.read_bytes())
    assert expected.is_file(), f"no golden image {expected}: run TF_LRP_UPDATE_GOLDEN=1 pytest {__file__}"
    failure = compare_images(str(expected), str(figure_path), tol=GOLDEN_TOLERANCE, in_decorator=True)
    assert failure is None, f"{name} differs from its golden image: {failure}"


def _series() -> tuple[np.ndarray, np.ndarray]:
    """Two fixed samples of a 3-feature series (40 steps) and a relevance with both signs."""
    time = np.arange(40)
    x = np.stack([np.sin(time / 5), 0.5 * np.cos(time / 8), 0.3 * np.sin(time / 2.3)], axis=1)
    relevance = np.stack([0.6 * np.sin(time / 5), -0.2 * np.cos(time / 8), 0.05 * np.cos(time / 3)], axis=1)
    return np.stack([x, x[::-1]]), np.stack([relevance, -0.5 * relevance])


def test_timeseries_figure_matches_its_golden_image(tmp_path: Path) -> None:
    x, relevance = _series()
    path = tmp_path / "series.png"
    figure = viz.timeseries_png(
        x, relevance, path, feature_names=["temperature", "load", "price"], title="LRP relevance",
        labels=["sample 0: true up, predicted up", "sample 1: true down, predicted up"], dpi=GOLDEN_DPI,
    )  # fmt: skip
    _png(path)
    _golden(path, "timeseries.png")
    top, heat = figure.axes[:2]
    assert top.get_xlim() == heat.get_xlim()  # one time axis
    (bar,) = heat.child_axes  # the colour bar sits beside its heatmap
    assert bar.get_position().x0 >= heat.get_position().x1
    limit = np.abs(relevance).max()
    assert heat.images[0].get_clim() == (-limit, limit)  # symmetric about 0, shared by both samples
    assert figure.axes[3].images[0].get_clim() == (-limit, limit)
    per_sample = viz.timeseries_png(x, relevance, scale="sample")
    assert per_sample.axes[3].images[0].get_clim() == (-limit / 2, limit / 2)


def test_curves_figure_matches_its_golden_image(tmp_path: Path) -> None:
    class Scorer:
        def score(self, x, mask=None):
            total = (np.asarray(x) * np.linspace(0.2, 1.0, 8)[None, :, None]).sum(axis=(1, 2))
            return np.stack([total, -total], axis=1)

    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(12, 8, 2))
    relevance = x * np.linspace(0.2, 1.0, 8)[None, :, None]
    curves = {
        order: perturbation_curve(Scorer(), x, relevance, order=order, target=0, normalize="relative")
        for order in ("morf", "lrf", "random")
    }
    path = tmp_path / "curves.png"
    figure = viz.plot_curves({"MoRF": curves["morf"], "LRF": curves["lrf"], "random order": curves["random"]},
                             path, dpi=GOLDEN_DPI)  # fmt: skip
    _golden(path, "curves.png")
    axis = figure.axes[0]
    assert axis.get_ylabel() == "score / unperturbed score"
    labels = [line.get_label() for line in axis.get_lines()]
    assert labels[0].startswith("MoRF: AUC ")
    assert labels[0].endswith("(n=12)")
    assert len(axis.collections) == 3  # a standard-error band per curve
    legend = axis.get_legend().get_window_extent()
    assert legend.x0 >= axis.get_window_extent().x1  # outside the data


def test_comparison_figure_matches_its_golden_image(tmp_path: Path) -> None:
    weights = np.linspace(0.2, 1.0, 8)[None, :, None]

    class Attributor:
        def score(self, x, mask=None):
            total = (np.asarray(x) * weights).sum(axis=(1, 2))
            return np.stack([total, -total], axis=1)

        def explain(self, x, method="exact", target=None, mask=None):
            x = np.asarray(x)
            relevance = x * weights if method == "exact" else np.broadcast_to(weights, x.shape) + 0 * x
            return type("Explained", (), {"relevance": relevance})()

    x = np.random.default_rng(1).uniform(0.1, 1.0, size=(12, 8, 2))
    result = compare(Attributor(), x, ["exact", "weights"], target=0, normalize="relative", steps=8)
    path = tmp_path / "comparison.png"
    figure = viz.plot_comparison(result, path, title="linear model", dpi=GOLDEN_DPI)
    _golden(path, "comparison.png")
    morf, lrf = figure.axes
    assert morf.get_title().startswith("MoRF")
    assert lrf.get_title().startswith("LRF")
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert texts[0].startswith("exact\nMoRF ")
    assert figure.legends[0].get_title().get_text() == "AUC mean ± s.e., n = 12"


def test_figures_are_written_in_the_format_of_their_extension(tmp_path: Path) -> None:
    x, relevance = _series()
    signatures = {".png": PNG_SIGNATURE, ".svg": b"<?xml", ".pdf": b"%PDF"}
    for suffix, signature in signatures.items():
        path = tmp_path / f"series{suffix}"
        viz.timeseries_png(x[0], relevance[0], path)
        assert path.read_bytes().startswith(signature)
    again = tmp_path / "again.svg"
    viz.timeseries_png(x[0], relevance[0], again)
    assert again.read_bytes() == (tmp_path / "series.svg").read_bytes()  # deterministic
    with pytest.raises(InputError, match=r"\.png, \.svg or \.pdf"):
        viz.timeseries_png(x[0], relevance[0], tmp_path / "series.jpg")
    assert not (tmp_path / "series.jpg").exists()
    with pytest.raises(InputError, match="dpi must be"):
        viz.plot_curves({"a": np.ones(3)}, tmp_path / "c.png", dpi=0)


def test_viz_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="relevance must be"):
        viz.html_heatmap([["a"], ["b"]], np.ones(3))
    with pytest.raises(InputError, match="only 1 relevance values"):
        viz.html_heatmap(["a", "b"], np.ones(1))
    with pytest.raises(InputError, match="labels must have one entry"):
        viz.html_heatmap(["a"], np.ones(1), labels=["x", "y"])
    with pytest.raises(InputError, match="NaN"):
        viz.html_heatmap(["a"], np.array([np.nan]))
    with pytest.raises(InputError, match="scale must be one of"):
        viz.html_heatmap(["a"], np.ones(1), scale="global")
    with pytest.raises(InputError, match="directory"):
        viz.html_heatmap(["a"], np.ones(1), path=tmp_path / "missing" / "x.html")
    with pytest.raises(InputError, match=r"both be \(T, D\)"):
        viz.timeseries_png(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(InputError, match="feature_names must have 2"):
        viz.timeseries_png(np.ones((3, 2)), np.ones((3, 2)), feature_names=["a"])
    with pytest.raises(InputError, match="scale must be one of"):
        viz.timeseries_png(np.ones((3, 2)), np.ones((3, 2)), scale="global")
    with pytest.raises(InputError, match="curves is empty"):
        viz.plot_curves({})
    with pytest.raises(InputError, match="at least two points"):
        viz.plot_curves({"x": np.ones(1)})
    with pytest.raises(InputError, match=r"draws a tf_lrp\.evaluate\.Comparison"):
        viz.plot_comparison({"lrp": np.ones(3)})
