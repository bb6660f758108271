"""The figure and the cost table of docs/reading.md, from the bundled demo model and data.

    .venv/bin/python scripts/reading_figures.py        # writes docs/img/eps_bias_factor.png, prints the table

The demo model is Embedding(16, 8, mask_zero) -> Bidirectional(LSTM(16)) -> Dense(3), trained on
the planted-keyword task (one keyword token decides the class). The cost table times each method
on the first 512 demo sequences (median of 3 calls after a compiling call, float32).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from matplotlib.figure import Figure

from tf_lrp import Explainer, cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = 5  # the sentence drawn in the figure


def figure(explainer: Explainer, x: np.ndarray, lengths: np.ndarray, names: list[str], path: Path) -> None:
    settings = [(1e-3, 0.0), (0.1, 0.0), (1.0, 0.0), (1e-3, 1.0)]
    length = int(lengths[SAMPLE])
    words = [names[t] for t in x[SAMPLE, :length]]
    canvas = Figure(figsize=(12, 7.5), layout="constrained")
    grid = canvas.add_gridspec(len(settings), 2, width_ratios=[2.2, 1])
    for row, (eps, bias_factor) in enumerate(settings):
        res = explainer.explain(x[SAMPLE : SAMPLE + 1], lengths=lengths[SAMPLE : SAMPLE + 1], eps=eps,
                                bias_factor=bias_factor)  # fmt: skip
        values = res.token_relevance[0, :length]
        axis = canvas.add_subplot(grid[row, 0])
        axis.bar(range(length), values, color=np.where(values >= 0, "tab:red", "tab:blue"))
        axis.axhline(0, color="black", lw=0.5)
        axis.set_xticks(range(length), words if row == len(settings) - 1 else [""] * length, rotation=90,
                        fontsize=7)  # fmt: skip
        score = float(res.explained_score[0])
        axis.set_title(
            f"eps={eps:g}, bias_factor={bias_factor:g}: relevance sum {values.sum():.2f} + initial states "
            f"{float(res.initial_state_relevance[0]):.2f} of score {score:.2f} (absorbed {float(res.absorbed[0]):.2f})",
            fontsize=9,
        )
        axis.set_ylabel("relevance")
    axis = canvas.add_subplot(grid[:, 1])
    grid_eps = np.logspace(-4, 1, 11)
    for bias_factor, style in ((0.0, "o-"), (1.0, "s--")):
        shares = []
        for eps in grid_eps:
            res = explainer.explain(x, lengths=lengths, eps=eps, bias_factor=bias_factor)
            shares.append(np.median((res.relevance.sum(axis=(1, 2)) + res.initial_state_relevance)
                                    / res.explained_score))  # fmt: skip
        axis.semilogx(grid_eps, shares, style, label=f"bias_factor={bias_factor:g}")
    axis.set_xlabel("eps")
    axis.set_ylabel("(relevance sum + initial states) / score, median")
    axis.set_title(f"what the relevance accounts for ({len(x)} sequences)", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    canvas.suptitle("LRP of the predicted class on one demo sequence (the keyword decides the class)")
    canvas.savefig(path, dpi=90)


def costs(explainer: Explainer, x: np.ndarray, lengths: np.ndarray) -> None:
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Keras {keras.__version__} on "
          f"{keras.backend.backend()}, batch {len(x)}, T <= {x.shape[1]}")  # fmt: skip
    rows = [("lrp", {}), ("gradient_x_input", {}), ("sensitivity", {}), ("integrated_gradients", {"steps": 32}),
            ("occlusion", {})]  # fmt: skip
    base = None
    for method, options in rows:
        explainer.explain(x, lengths=lengths, method=method, **options)  # compile
        times = []
        for _ in range(3):
            started = time.perf_counter()
            explainer.explain(x, lengths=lengths, method=method, **options)
            times.append(time.perf_counter() - started)
        median = float(np.median(times))
        base = base or median
        print(f"| {method}{' (32 steps)' if options else ''} | {median * 1000:.0f} ms | {median / base:.1f} |")


def main() -> None:
    model, data, about = cli.demo_files()
    with np.load(data) as arrays:
        x, lengths = arrays["x"][:512].astype(np.int32), arrays["lengths"][:512]
    explainer = Explainer.load(model)
    names = cli.token_names(int(about.get("vocabulary", 16)))
    path = ROOT / "docs" / "img" / "eps_bias_factor.png"
    figure(explainer, x, lengths, names, path)
    print(f"wrote {path}")
    costs(explainer, x, lengths)


if __name__ == "__main__":
    main()
