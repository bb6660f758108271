"""Explain every forecast step of a GRU encoder-decoder forecaster (Mirzavand Borujeni et al. 2023).

The model is the paper's structure in PyTorch: a GRU encoder over the history window, a GRU
decoder fed its own previous forecast plus a known-future covariate, a two-layer head. The task
has a known answer: the forecast for step t is the "driver" channel of the history at lag
``LAG - t`` plus half the known-future covariate at step t, so the relevance of step t should sit
on history step ``T_IN - LAG + t`` (driver) and future step t. The script trains the model for a
few seconds, converts it with ``Seq2SeqExplainer.from_torch`` and draws, per forecast step, the
mean |relevance| over 200 test windows; the white boxes mark where it should be.

    python examples/forecaster.py                 # writes examples_out/forecaster_steps.png
    python examples/forecaster.py OUT_DIR

Needs the torch and viz extras (``pip install -e ".[torch,viz]"``). About 20 s on a laptop CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tf_lrp import Seq2SeqExplainer

T_IN, T_OUT, LAG, UNITS = 10, 3, 4, 12


class Forecaster(torch.nn.Module):
    """GRU encoder-decoder: autoregressive decoder on [previous forecast ; known future], relu head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.GRU(2, UNITS, batch_first=True)  # history: [target, driver]
        self.decoder = torch.nn.GRU(1 + 1, UNITS, batch_first=True)  # [previous forecast, covariate]
        self.head1 = torch.nn.Linear(UNITS, 16)
        self.head2 = torch.nn.Linear(16, 1, bias=False)

    def forward(self, x: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        _, hidden = self.encoder(x)
        previous = x[:, -1:, :1]  # the last observed target seeds the decoder
        forecasts = []
        for t in range(future.shape[1]):
            out, hidden = self.decoder(torch.cat([previous, future[:, t : t + 1]], dim=-1), hidden)
            previous = self.head2(torch.relu(self.head1(out)))
            forecasts.append(previous)
        return torch.cat(forecasts, dim=1)


def windows(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History (count, T_IN, 2), known future (count, T_OUT, 1), targets (count, T_OUT, 1)."""
    x = rng.uniform(-1, 1, size=(count, T_IN, 2)).astype(np.float32)
    future = rng.uniform(-1, 1, size=(count, T_OUT, 1)).astype(np.float32)
    y = np.stack([x[:, T_IN - LAG + t, 1] + 0.5 * future[:, t, 0] for t in range(T_OUT)], axis=1)[..., None]
    return x, future, y


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small trains fastest on one thread (several spin on a busy CPU)
    model = Forecaster()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    x, future, y = (torch.from_numpy(a) for a in windows(4096, rng))
    for step in range(300):
        window = slice((step * 64) % len(x), (step * 64) % len(x) + 64)
        loss = torch.mean((model(x[window], future[window]) - y[window]) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    explainer = Seq2SeqExplainer.from_torch(model)  # finds encoder, decoder and head by name
    test_x, test_future, test_y = windows(200, rng)
    steps = [explainer.explain(test_x, test_future, step=t, output=0) for t in range(T_OUT)]
    error = float(np.abs(steps[0].forecasts - test_y).mean())
    print(f"mean absolute forecast error {error:.3f} (targets spread over about ±1.5)")

    figure = Figure(figsize=(7, 2.2 * T_OUT), layout="constrained")
    axes = figure.subplots(T_OUT, 1, sharex=True)
    rows = ["target (history)", "driver (history)", "covariate (future)"]
    for t, (axis, result) in enumerate(zip(axes, steps, strict=True)):
        picture = np.full((3, T_IN + T_OUT), np.nan)
        picture[:2, :T_IN] = np.abs(result.history).mean(axis=0).T
        picture[2, T_IN:] = np.abs(result.future).mean(axis=0)[:, 0]
        image = axis.imshow(picture, aspect="auto", cmap="Reds", interpolation="nearest")
        for row, column in ((1, T_IN - LAG + t), (2, T_IN + t)):  # where the answer is
            axis.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="white", lw=2))
        share = np.nansum(picture[[1, 2], [T_IN - LAG + t, T_IN + t]]) / np.nansum(picture)
        axis.set_title(f"forecast step {t}: {share:.0%} of the mean |relevance| on the two boxed inputs")
        axis.set_yticks(range(3), rows)
        axis.axvline(T_IN - 0.5, color="black", lw=1)
        figure.colorbar(image, ax=axis, label="mean |relevance|")
        print(f"step {t}: {share:.0%} of the relevance on the two inputs that define it")
    axes[-1].set_xticks(range(T_IN + T_OUT), [*(f"{i - T_IN}" for i in range(T_IN)), *(f"+{i}" for i in range(T_OUT))])
    axes[-1].set_xlabel("time (history: -10 … -1, forecast horizon: +0 … +2)")
    picture_path = out_dir / "forecaster_steps.png"
    figure.savefig(picture_path, dpi=100)
    print(f"wrote {picture_path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
