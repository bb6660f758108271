"""Pictures of explanations: HTML token heatmaps, time-series figures, perturbation-curve plots.

matplotlib is imported lazily (install the ``viz`` extra: ``pip install tf_lrp[viz]``); figures
are drawn by the non-interactive Agg canvas without pyplot, so nothing is ever shown and the
user's backend is left alone. Every figure is drawn in one fixed style (matplotlib's defaults,
DejaVu Sans, fixed sizes, constrained layout), so the same data gives the same picture; files
are PNG, SVG or PDF by their extension and are written atomically through
:func:`tf_lrp._io.atomic_write`. This module imports no other stage of tf_lrp: it takes numpy
arrays and the results of :mod:`tf_lrp.evaluate`.
"""

from __future__ import annotations

import contextlib
import io
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _io
from ._html import SCALES, html_heatmap
from .errors import InputError

#: File formats by extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Default raster resolution of PNG files.
DEFAULT_DPI = 110
#: The fixed style of every figure (on top of matplotlib's defaults, whatever the user's rc).
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "tf_lrp",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "image.interpolation": "nearest",
}
#: Titles longer than this many characters are wrapped (a title must not overflow its axes).
TITLE_WIDTH = 60
#: The diverging colour map of relevance (centred at 0 by symmetric limits).
RELEVANCE_CMAP = "RdBu_r"
#: y-axis labels of perturbation curves by their normalisation.
CURVE_LABELS = {
    "probability": "probability of the explained class",
    "relative": "score / unperturbed score",
    "none": "score of the explained class",
}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """Use matplotlib's defaults plus :data:`STYLE`, for the duration of drawing and saving."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("plots need matplotlib: pip install 'tf_lrp[viz]'") from exc
    import matplotlib.style

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):  # type: ignore[arg-type]
        yield


def _figure(**options: Any) -> Any:
    """A new matplotlib Figure drawn by the Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("plots need matplotlib: pip install 'tf_lrp[viz]'") from exc
    figure = Figure(layout="constrained", **options)
    FigureCanvasAgg(figure)
    return figure


def figure_format(path: str | os.PathLike[str]) -> str:
    """The file format of ``path`` by its extension: ``"png"``, ``"svg"`` or ``"pdf"``.

    Args:
        path: the figure's file name.

    Returns:
        The format name.

    Raises:
        InputError: for any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"figure files are .png, .svg or .pdf (the extension sets the format); got {str(path)!r}")
    return FORMATS[suffix]


def _check_dpi(dpi: Any) -> int:
    if dpi is None:
        return DEFAULT_DPI
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or not 10 <= dpi <= 1200:
        raise InputError(f"dpi must be an int in [10, 1200]; got {dpi!r}")
    return int(dpi)


def _save(figure: Any, path: str | os.PathLike[str] | None, dpi: int) -> None:
    """Write ``figure`` in the format of ``path``'s extension, atomically (no dates: same bytes each time)."""
    if path is None:
        return
    kind = figure_format(path)
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[kind]
    buffer = io.BytesIO()
    figure.savefig(buffer, format=kind, dpi=dpi, metadata=metadata)
    with _io.atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _wrap(text: str, width: int) -> str:
    """``text`` with each of its lines wrapped at ``width`` characters (its own line breaks kept)."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines() or [""])


def _limit(values: np.ndarray) -> float:
    """The symmetric colour limit of relevance: its largest ``|value|`` (1 when all are 0)."""
    largest = float(np.abs(values).max()) if values.size else 0.0
    return largest if largest > 0 else 1.0


def timeseries_png(
    x: Any,
    relevance: Any,
    path: str | os.PathLike[str] | None = None,
    feature_names: Sequence[str] | None = None,
    title: str = "Relevance",
    labels: Sequence[str] | None = None,
    scale: str = "shared",
    dpi: int | None = None,
    width: float = 7.0,
) -> Any:
    """Multivariate time series: per sample, the signal above a time × feature heatmap.

    Both panels share the time axis; the signal's legend and the heatmap's colour bar sit
    beside them, outside the data. The heatmap uses a diverging map centred at 0 (blue
    negative, red positive) with symmetric limits.

    Args:
        x: (T, D) the input signal of one sample, or (B, T, D) for B samples drawn one below
            the other.
        relevance: the relevance, same shape as ``x``.
        path: where to write the figure (PNG, SVG or PDF by extension; atomically), or None.
        feature_names: D names for the legend and the heatmap's rows.
        title: the figure title.
        labels: optional one caption per sample (e.g. true and predicted class).
        scale: ``"shared"`` (one colour scale for all samples) or ``"sample"`` (each its own).
        dpi: PNG resolution (default 110).
        width: figure width in inches.

    Returns:
        The matplotlib Figure (not registered with pyplot; save or inspect it).

    Raises:
        InputError: for shapes that do not match, a bad option, or without matplotlib.
    """
    signal = np.asarray(x, dtype=np.float64)
    values = np.asarray(relevance, dtype=np.float64)
    if signal.ndim not in (2, 3) or values.shape != signal.shape:
        raise InputError(
            f"x and relevance must both be (T, D) or (B, T, D); got {signal.shape} and {values.shape}"
        )
    if signal.ndim == 2:
        signal, values = signal[None], values[None]
    samples, steps, features = signal.shape
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(features)]
    if len(names) != features:
        raise InputError(f"feature_names must have {features} entries; got {len(names)}")
    if labels is not None and len(labels) != samples:
        raise InputError(f"labels must have one entry per sample ({samples}); got {len(labels)}")
    if scale not in SCALES:
        raise InputError(f"scale must be one of {list(SCALES)}; got {scale!r}")
    if not (np.isfinite(signal).all() and np.isfinite(values).all()):
        raise InputError("x or relevance contains NaN or infinite values")
    resolution = _check_dpi(dpi)
    if path is not None:
        figure_format(path)
    heat_height = max(0.7, 0.16 * features)
    with _style():
        figure = _figure(figsize=(width, 0.35 + samples * (1.55 + heat_height)))
        grid = figure.add_gridspec(2 * samples, 1, height_ratios=[1.1, heat_height] * samples)
        shared = _limit(values)
        time = np.arange(steps)
        for index in range(samples):
            top = figure.add_subplot(grid[2 * index])
            bottom = figure.add_subplot(grid[2 * index + 1], sharex=top)
            for feature in range(features):
                top.plot(time, signal[index, :, feature], label=names[feature], linewidth=1)
            top.set_ylabel("input")
            top.tick_params(labelbottom=False)
            top.margins(x=0)
            top.set_xlim(-0.5, steps - 0.5)
            caption = f"sample {index}" if labels is None else str(labels[index])
            top.set_title(_wrap(caption, 2 * TITLE_WIDTH), loc="left")
            if features <= 12:
                top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0)
            limit = shared if scale == "shared" else _limit(values[index])
            image = bottom.imshow(
                values[index].T,
                aspect="auto",
                cmap=RELEVANCE_CMAP,
                vmin=-limit,
                vmax=limit,
                interpolation="nearest",
                extent=(-0.5, steps - 0.5, features - 0.5, -0.5),
            )
            every = max(1, int(np.ceil(features / 12)))
            bottom.set_yticks(np.arange(0, features, every), names[::every])
            bottom.set_xlabel("time step")
            holder = bottom.inset_axes((1.012, 0.0, 0.014, 1.0))  # beside the heatmap, not beside the figure
            bar = figure.colorbar(image, cax=holder)
            bar.set_ticks([-limit, 0.0, limit], labels=[f"{-limit:.2g}", "0", f"{limit:.2g}"])
            bar.set_label("relevance")
            bar.ax.tick_params(labelsize=6.5)
        figure.suptitle(title)
        _save(figure, path, resolution)
    return figure


def _curve_values(name: str, curve: Any) -> tuple[np.ndarray, np.ndarray | None, int, str | None, np.ndarray]:
    """(mean curve, its standard error or None, n, normalisation or None, (n,) AUCs) of one entry."""
    normalize = getattr(curve, "normalize", None)
    values = np.asarray(getattr(curve, "curve", curve), dtype=np.float64)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or values.shape[1] < 2 or values.shape[0] < 1:
        raise InputError(f"curve {name!r} must have at least two points; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise InputError(f"curve {name!r} contains NaN or infinite values")
    count = values.shape[0]
    sem = values.std(axis=0, ddof=1) / np.sqrt(count) if count > 1 else None
    areas = (values[:, 1:-1].sum(axis=1) + (values[:, 0] + values[:, -1]) / 2) / (values.shape[1] - 1)
    return values.mean(axis=0), sem, count, normalize, areas


def _draw_curve(axis: Any, values: np.ndarray, sem: np.ndarray | None, **style: Any) -> None:
    fractions = np.linspace(0.0, 1.0, values.shape[0])
    (line,) = axis.plot(fractions, values, linewidth=1.5, **style)
    if sem is not None:
        axis.fill_between(fractions, values - sem, values + sem, color=line.get_color(), alpha=0.2, linewidth=0)


def _curve_axis(axis: Any, title: str, ylabel: str) -> None:
    axis.set_xlabel("fraction of units removed")
    axis.set_ylabel(ylabel)
    axis.set_title(_wrap(title, TITLE_WIDTH))
    axis.set_xlim(0.0, 1.0)
    axis.grid(alpha=0.3)


def plot_curves(
    curves: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    title: str = "Perturbation curves",
    ylabel: str | None = None,
    dpi: int | None = None,
) -> Any:
    """Several perturbation curves in one figure: mean ± standard error, AUC and n in the legend.

    Args:
        curves: name -> a result of ``tf_lrp.evaluate.perturbation_curve`` (its batch mean is
            drawn with a standard-error band), or a (K + 1,) / (B, K + 1) array of curve values.
        path: where to write the figure (PNG, SVG or PDF by extension; atomically), or None.
        title: the figure title.
        ylabel: the y-axis label (default: from the results' normalisation).
        dpi: PNG resolution (default 110).

    Returns:
        The matplotlib Figure.

    Raises:
        InputError: for an empty mapping or a curve with fewer than two points.
    """
    if not curves:
        raise InputError("curves is empty: pass {name: curve result or array}")
    resolution = _check_dpi(dpi)
    if path is not None:
        figure_format(path)
    entries = {name: _curve_values(name, curve) for name, curve in curves.items()}
    kinds = {entry[3] for entry in entries.values() if entry[3] is not None}
    label = ylabel or (CURVE_LABELS[kinds.pop()] if len(kinds) == 1 else "score")
    with _style():
        figure = _figure(figsize=(6.4, 3.4))
        axis = figure.subplots()
        for name, (values, sem, count, _, areas) in entries.items():
            spread = "" if count < 2 else f" ± {float(areas.std(ddof=1) / np.sqrt(count)):.3f}"
            _draw_curve(axis, values, sem, label=f"{name}: AUC {areas.mean():.3f}{spread} (n={count})")
        _curve_axis(axis, title, label)
        axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0.0)
        _save(figure, path, resolution)
    return figure


def plot_comparison(
    comparison: Any,
    path: str | os.PathLike[str] | None = None,
    title: str = "Perturbation comparison",
    dpi: int | None = None,
) -> Any:
    """A method comparison (``tf_lrp.evaluate.compare``): MoRF and LRF panels side by side.

    Each method keeps one colour in both panels (mean curve with a standard-error band); the
    random removal order is the dashed grey baseline; the legend (outside the data) gives each
    method's MoRF and LRF AUC (mean ± standard error) and n.

    Args:
        comparison: a :class:`tf_lrp.evaluate.Comparison`.
        path: where to write the figure (PNG, SVG or PDF by extension; atomically), or None.
        title: the figure title.
        dpi: PNG resolution (default 110).

    Returns:
        The matplotlib Figure.

    Raises:
        InputError: for something that is not a comparison.
    """
    methods = getattr(comparison, "methods", None)
    if not isinstance(methods, Mapping) or not methods or not hasattr(comparison, "random_order"):
        raise InputError("plot_comparison draws a tf_lrp.evaluate.Comparison (from evaluate.compare)")
    resolution = _check_dpi(dpi)
    if path is not None:
        figure_format(path)
    label = CURVE_LABELS.get(comparison.normalize, "score")
    baseline = comparison.random_order
    with _style():
        figure = _figure(figsize=(8.0, 3.3))
        morf_axis, lrf_axis = figure.subplots(1, 2, sharey=True)
        colours = [f"C{i}" for i in range(len(methods))]
        for colour, (name, result) in zip(colours, methods.items(), strict=True):
            legend = (
                f"{name}\nMoRF {result.morf.mean_auc:.3f} ± {result.morf.sem_auc:.3f}, "
                f"LRF {result.lrf.mean_auc:.3f} ± {result.lrf.sem_auc:.3f}"
            )
            _draw_curve(morf_axis, result.morf.mean_curve, result.morf.sem_curve, color=colour, label=legend)
            _draw_curve(lrf_axis, result.lrf.mean_curve, result.lrf.sem_curve, color=colour)
        for axis in (morf_axis, lrf_axis):
            _draw_curve(axis, baseline.mean_curve, None, color="0.45", linestyle="--")
        random_label = f"random order\nAUC {baseline.mean_auc:.3f} ± {baseline.sem_auc:.3f}"
        morf_axis.plot([], [], color="0.45", linestyle="--", label=random_label)
        _curve_axis(morf_axis, "MoRF: most relevant first\n(lower AUC is better)", label)
        _curve_axis(lrf_axis, "LRF: least relevant first\n(higher AUC is better)", "")
        lrf_axis.tick_params(labelleft=True)
        figure.legend(
            loc="outside right upper", frameon=False, title=f"AUC mean ± s.e., n = {comparison.samples}",
            title_fontsize=7.5,
        )  # fmt: skip
        figure.suptitle(f"{title} ({comparison.mode}, {comparison.steps} steps)")
        _save(figure, path, resolution)
    return figure


__all__ = ["FORMATS", "figure_format", "html_heatmap", "plot_comparison", "plot_curves", "timeseries_png"]
