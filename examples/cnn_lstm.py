"""A CNN-LSTM on a time series: causal Conv1D → MaxPooling1D → LSTM → Dense, explained with LRP.

The task: 3 noisy channels of 48 steps; class 1 when a short pulse occurs in channel 0, anywhere in
the window. The convolution finds local shapes, the pooling halves the time axis and the LSTM
reads what is left. LRP runs back through all of them (the ε-rule over each convolution window,
winner-takes-all through the max pooling), so relevance lands on input steps and channels again.
The script prints how much of the positive relevance of a detected pulse lies in the pulse and
writes a heatmap of a few samples (rows: samples, channel 0's relevance per step).

    python examples/cnn_lstm.py            # writes examples_out/cnn_lstm_heatmap.html
    python examples/cnn_lstm.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, viz

STEPS, CHANNELS, WIDTH = 48, 3, 4


def series(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise (count, STEPS, CHANNELS); half the samples carry a pulse in channel 0 (labels, start)."""
    x = rng.normal(0, 0.3, size=(count, STEPS, CHANNELS)).astype("float32")
    labels = rng.integers(0, 2, size=count)
    starts = rng.integers(0, STEPS - WIDTH, size=count)
    for i in np.flatnonzero(labels):
        x[i, starts[i] : starts[i] + WIDTH, 0] += 2.0
    return x, labels, starts


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    x, labels, _ = series(2000, np.random.default_rng(0))
    model = keras.Sequential(
        [
            keras.Input((None, CHANNELS)),
            keras.layers.Conv1D(8, 3, padding="causal", activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(12),
            keras.layers.Dense(2),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    model.fit(x, labels, batch_size=64, epochs=5, verbose=0)

    test_x, test_labels, starts = series(300, np.random.default_rng(1))
    print(f"test accuracy {model.evaluate(test_x, test_labels, verbose=0)[1]:.1%}")
    explainer = Explainer.from_keras(model)
    pulses = np.flatnonzero(test_labels == 1)
    result = explainer.explain(test_x[pulses], target=1)
    positive = np.maximum(result.relevance, 0)
    inside = np.zeros_like(positive)
    for row, sample in enumerate(pulses):
        inside[row, starts[sample] : starts[sample] + WIDTH, 0] = 1
    share = float((positive * inside).sum(axis=(1, 2)).mean() / positive.sum(axis=(1, 2)).mean())
    cells = WIDTH / (STEPS * CHANNELS)
    print(f"{share:.0%} of the positive relevance lies in the pulse ({cells:.0%} of the cells)")

    shown = list(range(6))
    page = out_dir / "cnn_lstm_heatmap.html"
    viz.html_heatmap(
        [[f"t{t}" for t in range(STEPS)] for _ in shown],
        result.relevance[shown, :, 0],
        page,
        title="LRP relevance of channel 0 per step for the class 'pulse' (red: for it)",
        labels=[f"pulse at steps {starts[pulses[i]]}-{starts[pulses[i]] + WIDTH - 1}" for i in shown],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
