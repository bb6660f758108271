"""Pictures of explanations: HTML token heatmaps, time-series PNGs, perturbation-curve plots.

matplotlib is imported lazily (install the ``viz`` extra: ``pip install tf_lrp[viz]``); figures
are drawn by the non-interactive Agg canvas without pyplot, so nothing is ever shown and the
user's backend is left alone. Files are written
atomically through :func:`tf_lrp._io.atomic_write`. This module imports no other stage of
tf_lrp: it takes numpy arrays (and curve results with ``mean_curve`` / ``mean_auc``).
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _io
from .errors import InputError


def _figure(**options: Any) -> Any:
    """A new matplotlib Figure drawn by the Agg canvas (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("plots need matplotlib: pip install 'tf_lrp[viz]'") from exc
    figure = Figure(**options)
    FigureCanvasAgg(figure)
    return figure


def _colour(value: float, scale: float) -> str:
    """Red for positive, blue for negative, white for 0; intensity ``|value| / scale``."""
    level = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    fade = round(255 * (1 - level))
    return f"rgb(255,{fade},{fade})" if value >= 0 else f"rgb({fade},{fade},255)"


def html_heatmap(
    tokens: Sequence[Sequence[str]] | Sequence[str],
    relevance: Any,
    path: str | os.PathLike[str] | None = None,
    title: str = "Relevance",
    labels: Sequence[str] | None = None,
) -> str:
    """An HTML page with one line per sequence, each token's background coloured by relevance.

    Red is positive, blue negative; the colour scale is set per sample by its largest
    ``|relevance|``; hovering a token shows its value. Tokens are HTML-escaped.

    Args:
        tokens: one sequence of strings, or B of them (lengths may differ up to T).
        relevance: (T,) or (B, T) relevance per token (or (B, T, D), summed over D).
        path: where to write the page (atomically), or None.
        title: the page title.
        labels: optional one caption per sequence (e.g. the predicted class).

    Returns:
        The HTML document.

    Raises:
        InputError: when tokens and relevance do not match.
    """
    values = np.asarray(relevance, dtype=np.float64)
    if values.ndim == 3:
        values = values.sum(axis=-1)
    single = len(tokens) > 0 and isinstance(tokens[0], str)
    rows = [list(tokens)] if single else [list(t) for t in tokens]  # type: ignore[arg-type]
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or len(rows) != values.shape[0]:
        raise InputError(f"relevance must be (T,), (B, T) or (B, T, D) for {len(rows)} sequence(s); got {values.shape}")
    if labels is not None and len(labels) != len(rows):
        raise InputError(f"labels must have one entry per sequence ({len(rows)}); got {len(labels)}")
    if not np.isfinite(values).all():
        raise InputError("relevance contains NaN or infinite values")
    lines = []
    for index, (row, scores) in enumerate(zip(rows, values, strict=True)):
        if len(row) > len(scores):
            raise InputError(f"sequence {index} has {len(row)} tokens but only {len(scores)} relevance values")
        scale = float(np.abs(scores[: len(row)]).max()) if row else 0.0
        spans = "".join(
            f'<span class="tok" style="background:{_colour(v, scale)}" title="{v:.6g}">{html.escape(str(t))}</span> '
            for t, v in zip(row, scores[: len(row)], strict=False)
        )
        caption = "" if labels is None else f'<span class="label">{html.escape(str(labels[index]))}</span> '
        lines.append(f'<p class="seq">{caption}{spans.rstrip()}</p>')
    document = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n"
        "body { font-family: sans-serif; line-height: 2; }\n"
        ".tok { padding: 2px 3px; border-radius: 3px; }\n"
        ".label { font-weight: bold; margin-right: 1em; }\n"
        "</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        "<p>Red: positive relevance, blue: negative; colours scaled per sequence; hover for values.</p>\n"
        + "\n".join(lines)
        + "\n</body>\n</html>\n"
    )
    if path is not None:
        with _io.atomic_write(path, "w") as handle:
            handle.write(document)
    return document


def _save(figure: Any, path: str | os.PathLike[str] | None) -> None:
    if path is None:
        return
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    with _io.atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def timeseries_png(
    x: Any,
    relevance: Any,
    path: str | os.PathLike[str] | None = None,
    feature_names: Sequence[str] | None = None,
    title: str = "Relevance",
    labels: Sequence[str] | None = None,
) -> Any:
    """Multivariate time series: per sample, the signal above a time × feature heatmap.

    Args:
        x: (T, D) the input signal of one sample, or (B, T, D) for B samples drawn one below
            the other.
        relevance: the relevance, same shape as ``x`` (red positive, blue negative, symmetric
            scale per sample).
        path: where to write the PNG (atomically), or None.
        feature_names: D names for the legend and the heatmap's rows.
        title: the figure title.
        labels: optional one caption per sample (e.g. the predicted class).

    Returns:
        The matplotlib Figure (not registered with pyplot; save or inspect it).

    Raises:
        InputError: for shapes that do not match, or without matplotlib.
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
    if not (np.isfinite(signal).all() and np.isfinite(values).all()):
        raise InputError("x or relevance contains NaN or infinite values")
    figure = _figure(figsize=(max(6.0, steps * 0.12), samples * (2.5 + 0.35 * features)))
    axes = figure.subplots(2 * samples, 1, sharex=True, height_ratios=[1, 1.2] * samples, squeeze=False)[:, 0]
    for index in range(samples):
        top, bottom = axes[2 * index], axes[2 * index + 1]
        for feature in range(features):
            top.plot(np.arange(steps), signal[index, :, feature], label=names[feature], linewidth=1)
        top.set_ylabel("input")
        captions = ([title] if index == 0 else []) + ([str(labels[index])] if labels is not None else [])
        if captions:
            top.set_title(": ".join(captions))
        if features <= 10 and index == 0:
            top.legend(loc="upper right", fontsize="small", ncols=min(features, 5))
        limit = float(np.abs(values[index]).max()) or 1.0
        image = bottom.imshow(
            values[index].T,
            aspect="auto",
            cmap="bwr",
            vmin=-limit,
            vmax=limit,
            interpolation="nearest",
            extent=(-0.5, steps - 0.5, features - 0.5, -0.5),
        )
        bottom.set_yticks(np.arange(features), names)
        figure.colorbar(image, ax=[top, bottom], location="right", shrink=0.6, label="relevance")
    axes[-1].set_xlabel("time step")
    _save(figure, path)
    return figure


def plot_curves(
    curves: Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    title: str = "Perturbation curves",
    ylabel: str = "score of the target",
) -> Any:
    """Several methods' perturbation curves in one figure, each labelled with its AUC.

    Args:
        curves: method name -> a result of ``tf_lrp.evaluate.perturbation_curve`` (its
            batch mean is drawn), or a (K + 1,) / (B, K + 1) array of curve values.
        path: where to write the PNG (atomically), or None.
        title: the figure title.
        ylabel: the y-axis label.

    Returns:
        The matplotlib Figure.

    Raises:
        InputError: for an empty mapping or a curve with fewer than two points.
    """
    if not curves:
        raise InputError("curves is empty: pass {method name: curve result or array}")
    figure = _figure(figsize=(6.0, 4.0))
    axis = figure.subplots()
    for name, curve in curves.items():
        values = np.asarray(getattr(curve, "mean_curve", curve), dtype=np.float64)
        values = values.mean(axis=0) if values.ndim == 2 else values
        if values.ndim != 1 or values.shape[0] < 2:
            raise InputError(f"curve {name!r} must have at least two points; got shape {values.shape}")
        fractions = np.linspace(0.0, 1.0, values.shape[0])
        area = float((values[1:-1].sum() + (values[0] + values[-1]) / 2) / (values.shape[0] - 1))
        axis.plot(fractions, values, label=f"{name} (AUC {area:.3g})", linewidth=1.5)
    axis.set_xlabel("fraction removed")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    _save(figure, path)
    return figure


__all__ = ["html_heatmap", "plot_curves", "timeseries_png"]
