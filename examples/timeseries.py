"""Explain an LSTM time-series classifier: PNG heatmaps and perturbation curves of three methods.

The task: three noisy sensor channels; a short pulse appears in channel 0 (class 0) or in
channel 1 (class 1) at a random time; channel 2 is noise only. A correct explanation lights up
the pulse. The script draws LRP heatmaps of four samples and compares LRP, Gradient×Input and a
random ranking by their perturbation curves (remove the most relevant steps first: the faster
the score falls, the better the ranking).

    python examples/timeseries.py                 # writes examples_out/timeseries_heatmaps.png, _curves.png
    python examples/timeseries.py OUT_DIR

Needs matplotlib (``pip install -e ".[viz]"``). About 15 s on a laptop CPU.
(Conv1D layers are not supported by tf_lrp yet; the model is an LSTM.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, viz
from tf_lrp.evaluate import perturbation_curve

STEPS, CHANNELS, PULSE = 40, 3, 5


def signals(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (count, STEPS, CHANNELS), labels (count,), pulse start (count,)."""
    x = rng.normal(0.0, 0.3, size=(count, STEPS, CHANNELS))
    labels = rng.integers(0, 2, size=count)
    starts = rng.integers(0, STEPS - PULSE, size=count)
    for i in range(count):
        x[i, starts[i] : starts[i] + PULSE, labels[i]] += np.hanning(PULSE + 2)[1:-1] * 2.0
    return x.astype(np.float32), labels, starts


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, labels, _ = signals(2000, rng)
    model = keras.Sequential([keras.Input((None, CHANNELS)), keras.layers.LSTM(16), keras.layers.Dense(2)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, labels, epochs=6, batch_size=64, verbose=0)

    explainer = Explainer.from_keras(model)
    test_x, test_labels, starts = signals(300, rng)
    lrp = explainer.explain(test_x, method="lrp", eps=1e-3)
    gxi = explainer.explain(test_x, method="gradient_x_input")
    accuracy = float((lrp.target == test_labels).mean())
    peak = lrp.token_relevance.argmax(axis=1)
    on_pulse = float(((peak >= starts) & (peak < starts + PULSE)).mean())
    print(f"test accuracy {accuracy:.1%}; LRP's most relevant step lies in the pulse for {on_pulse:.1%} of samples")

    heatmaps = out_dir / "timeseries_heatmaps.png"
    viz.timeseries_png(
        test_x[:4],
        lrp.relevance[:4],
        heatmaps,
        feature_names=["channel 0", "channel 1", "noise"],
        title="LRP relevance of the predicted class",
        labels=[f"sample {i}: class {test_labels[i]}, pulse at {starts[i]}-{starts[i] + PULSE - 1}" for i in range(4)],
    )
    curves = {
        name: perturbation_curve(explainer, test_x, relevance, order=order, mode="zero", steps=20)
        for name, relevance, order in (
            ("LRP", lrp.relevance, "morf"),
            ("Gradient×Input", gxi.relevance, "morf"),
            ("random", lrp.relevance, "random"),
        )
    }
    for name, curve in curves.items():
        print(f"{name}: MoRF AUC {curve.mean_auc:.3f} (lower is better)")
    plot = out_dir / "timeseries_curves.png"
    viz.plot_curves(curves, plot, title="Remove the most relevant steps first (zero fill)")
    print(f"wrote {heatmaps} and {plot}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
