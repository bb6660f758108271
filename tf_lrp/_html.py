"""HTML text heatmaps of relevance: pure string building, no plotting library.

Shared by :mod:`tf_lrp.viz` (``html_heatmap``) and :class:`tf_lrp.Explanation` (its
``_repr_html_``, so a notebook shows an explanation inline). Imports only errors and _io.

Colours follow a diverging map centred at 0: blue for negative, white for 0, red for positive
relevance. The red end is chosen so that, at every level, red and blue have the same CIE
lightness (within 1.2 L*), so negative evidence is exactly as visible as positive; text turns
white on strong colours so it stays readable.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _io
from .errors import InputError

#: The ends of the diverging map: strongest negative (ColorBrewer RdBu's blue) and strongest
#: positive (a red of the same lightness at every level of the linear fade from white).
NEGATIVE = (33, 102, 172)
POSITIVE = (186, 56, 48)
#: Colour scales: one for all shown sequences, or one per sequence.
SCALES = ("shared", "sample")
#: Values on the colour legend, as fractions of the scale.
LEGEND_STOPS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def colour(value: float, scale: float) -> str:
    """CSS colour of ``value`` on the diverging map of half-range ``scale`` (white at 0).

    Args:
        value: the relevance.
        scale: the ``|relevance|`` that maps to the strongest colour (values beyond are clipped).

    Returns:
        ``"rgb(r,g,b)"``.
    """
    level = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    end = POSITIVE if value >= 0 else NEGATIVE
    channels = (round(255 + level * (c - 255)) for c in end)
    return "rgb({},{},{})".format(*channels)


def _text_colour(value: float, scale: float) -> str:
    level = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    return "#fff" if level > 0.6 else "#000"


def _legend(scale: float, shared: bool) -> str:
    """A colour bar with the scale's values (or, per-sample scales, fractions of each sample's maximum)."""
    cells = []
    for stop in LEGEND_STOPS:
        value = stop * scale
        text = "0" if stop == 0 else f"{value:+.3g}" if shared else f"{stop:+g} × max"
        cells.append(
            f'<span class="key" style="background:{colour(stop, 1.0)};color:{_text_colour(stop, 1.0)}">'
            f"{html.escape(text)}</span>"
        )
    what = "relevance" if shared else "relevance, scaled per sequence"
    return f'<p class="legend">{what}: {"".join(cells)} (blue negative, red positive; hover a token for its value)</p>'


def heatmap_document(
    rows: Sequence[Sequence[str]],
    values: np.ndarray,
    title: str = "Relevance",
    labels: Sequence[str] | None = None,
    scale: str = "shared",
) -> str:
    """An HTML page with one line per sequence, each token's background coloured by relevance.

    Args:
        rows: B sequences of token strings (HTML-escaped here).
        values: (B, T) relevance, T at least each row's length.
        title: the page title.
        labels: optional one caption per sequence.
        scale: ``"shared"`` (one colour scale for all rows, the largest ``|relevance|`` shown)
            or ``"sample"`` (each row scaled by its own largest ``|relevance|``).

    Returns:
        The HTML document.

    Raises:
        InputError: when rows, values, labels or scale do not fit.
    """
    if scale not in SCALES:
        raise InputError(f"scale must be one of {list(SCALES)}; got {scale!r}")
    if labels is not None and len(labels) != len(rows):
        raise InputError(f"labels must have one entry per sequence ({len(rows)}); got {len(labels)}")
    if not np.isfinite(values).all():
        raise InputError("relevance contains NaN or infinite values")
    for index, row in enumerate(rows):
        if len(row) > values.shape[1]:
            raise InputError(f"sequence {index} has {len(row)} tokens but only {values.shape[1]} relevance values")
    body = _body(rows, values, labels, scale)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


#: The page's style sheet (also inlined into notebook fragments under ``.tf-lrp``).
STYLE = (
    "body { font-family: sans-serif; line-height: 2; }\n"
    ".tok { padding: 2px 3px; border-radius: 3px; }\n"
    ".key { display: inline-block; min-width: 5em; text-align: center; padding: 0 4px; }\n"
    ".caption { font-size: 90%; color: #333; }\n"
    ".label { font-weight: bold; }\n"
    ".seq p { margin: 0 0 0.8em 0; }\n"
)


def _body(rows: Sequence[Sequence[str]], values: np.ndarray, labels: Sequence[str] | None, scale: str) -> str:
    """The legend and one captioned line of coloured tokens per sequence."""
    shown = [np.asarray(values[i, : len(row)]) for i, row in enumerate(rows)]
    largest = [float(np.abs(v).max()) if v.size else 0.0 for v in shown]
    shared = max(largest, default=0.0)
    lines = [_legend(shared, scale == "shared")]
    for index, (row, scores) in enumerate(zip(rows, shown, strict=True)):
        limit = shared if scale == "shared" else largest[index]
        spans = "".join(
            f'<span class="tok" style="background:{colour(v, limit)};color:{_text_colour(v, limit)}" '
            f'title="{v:.6g}">{html.escape(str(t))}</span> '
            for t, v in zip(row, scores, strict=True)
        )
        caption = "" if labels is None else f'<span class="label">{html.escape(str(labels[index]))}</span>'
        per_row = "" if scale == "shared" else f' <span class="max">(max |R| {limit:.3g})</span>'
        lines.append(f'<div class="seq"><div class="caption">{caption}{per_row}</div><p>{spans.rstrip()}</p></div>')
    return "\n".join(lines)


def heatmap_fragment(
    rows: Sequence[Sequence[str]],
    values: np.ndarray,
    title: str,
    labels: Sequence[str] | None = None,
    scale: str = "shared",
) -> str:
    """The heatmap as one ``<div>`` with its own scoped style (for notebooks: ``_repr_html_``).

    Args:
        rows: B sequences of token strings.
        values: (B, T) relevance.
        title: a heading.
        labels: optional one caption per sequence.
        scale: ``"shared"`` or ``"sample"``.

    Returns:
        An HTML fragment.
    """
    heatmap_document(rows, values, title=title, labels=labels, scale=scale)  # validates
    scoped = "".join(f".tf-lrp {line}\n" for line in STYLE.replace("body ", "").splitlines())
    return (
        f'<div class="tf-lrp"><style>{scoped}</style><strong>{html.escape(title)}</strong>\n'
        f"{_body(rows, values, labels, scale)}</div>"
    )


def html_heatmap(
    tokens: Sequence[Sequence[str]] | Sequence[str],
    relevance: Any,
    path: str | os.PathLike[str] | None = None,
    title: str = "Relevance",
    labels: Sequence[str] | None = None,
    scale: str = "shared",
) -> str:
    """An HTML page with one line per sequence, each token's background coloured by relevance.

    A diverging map centred at 0 (blue negative, red positive), one colour scale for all
    sequences by default (``scale="sample"``: per sequence), a legend with the scale's values,
    the value of each token on hover, tokens HTML-escaped.

    Args:
        tokens: one sequence of strings, or B of them (lengths may differ up to T).
        relevance: (T,) or (B, T) relevance per token (or (B, T, D), summed over D).
        path: where to write the page (atomically), or None.
        title: the page title.
        labels: optional one caption per sequence (e.g. true and predicted class).
        scale: ``"shared"`` or ``"sample"``.

    Returns:
        The HTML document.

    Raises:
        InputError: when tokens and relevance do not match.
    """
    values = np.asarray(relevance, dtype=np.float64)
    if values.ndim == 3:
        values = values.sum(axis=-1)
    single = len(tokens) > 0 and isinstance(tokens[0], str)
    rows: list[list[str]] = [[str(t) for t in tokens]] if single else [[str(t) for t in row] for row in tokens]
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2 or len(rows) != values.shape[0]:
        raise InputError(f"relevance must be (T,), (B, T) or (B, T, D) for {len(rows)} sequence(s); got {values.shape}")
    document = heatmap_document(rows, values, title=title, labels=labels, scale=scale)
    if path is not None:
        with _io.atomic_write(path, "w") as handle:
            handle.write(document)
    return document


__all__ = ["SCALES", "colour", "heatmap_document", "heatmap_fragment", "html_heatmap"]
