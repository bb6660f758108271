"""Explain a PyTorch model: train a bidirectional nn.LSTM + nn.Linear, convert it with from_torch.

The task: two channels; channel 1 marks one time step with a 1 and the label is the sign of
channel 0 at that marked step (everything else is noise). A correct explanation puts the
relevance on the marked step. The converted explainer reproduces the PyTorch logits (checked
below) and explains them with LRP; the script writes a PNG heatmap.

    python examples/pytorch_model.py              # writes examples_out/pytorch_heatmaps.png
    python examples/pytorch_model.py OUT_DIR

Needs the torch and viz extras (``pip install -e ".[torch,viz]"``). About 15 s on a laptop CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from tf_lrp import Explainer, viz

STEPS, UNITS = 10, 8


class Classifier(torch.nn.Module):
    """nn.LSTM (bidirectional) over (B, T, 2); nn.Linear on [forward state after x[T-1] ; backward state after x[0]]."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.LSTM(2, UNITS, batch_first=True, bidirectional=True)
        self.fc = torch.nn.Linear(2 * UNITS, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(torch.cat([out[:, -1, :UNITS], out[:, 0, UNITS:]], dim=-1))


def marked(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (count, STEPS, 2), labels (count,), the marked step (count,)."""
    x = np.zeros((count, STEPS, 2), dtype=np.float32)
    x[:, :, 0] = rng.uniform(-1, 1, size=(count, STEPS))
    where = rng.integers(0, STEPS, size=count)
    x[np.arange(count), where, 1] = 1.0
    labels = (x[np.arange(count), where, 0] > 0).astype(np.int64)
    return x, labels, where


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small trains fastest on one thread (several spin on a busy CPU)
    model = Classifier()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    x, labels, _ = marked(4096, rng)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(labels)
    for step in range(150):
        window = slice((step * 64) % len(x), (step * 64) % len(x) + 64)
        loss = torch.nn.functional.cross_entropy(model(inputs[window]), targets[window])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    explainer = Explainer.from_torch(model)  # forward traced with torch.fx, checked against the module
    test_x, test_labels, where = marked(300, rng)
    result = explainer.explain(test_x)  # LRP of the predicted class
    with torch.no_grad():
        logits = model(torch.from_numpy(test_x)).numpy()
    print(f"largest |tf_lrp score - PyTorch logit|: {np.abs(result.scores - logits).max():.2e}")
    accuracy = float((result.target == test_labels).mean())
    found = float((result.token_relevance.argmax(axis=1) == where).mean())
    print(f"test accuracy {accuracy:.1%}; the marked step is the most relevant step in {found:.1%} of samples")

    picture = out_dir / "pytorch_heatmaps.png"
    viz.timeseries_png(
        test_x[:3],
        result.relevance[:3],
        picture,
        feature_names=["value", "marker"],
        title="LRP relevance, PyTorch LSTM",
        labels=[f"sample {i}: label {test_labels[i]}, marked step {where[i]}" for i in range(3)],
    )
    print(f"wrote {picture}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
