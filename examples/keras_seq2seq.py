"""A Keras LSTM encoder-decoder (the encoder's states start the decoder), explained per output step.

The task: the encoder reads 6 noisy readings; the decoder, told which step to write by a one-hot
input, writes the readings back in order (output step t copies reading t). The model is the
functional seq2seq of the Keras examples: ``LSTM(return_state=True)`` whose ``[h, c]`` are the
``initial_state`` of a second ``LSTM(return_sequences=True)``, then ``TimeDistributed(Dense)``.
tf_lrp converts the state hand-over exactly: relevance that reaches the decoder's initial states
flows on into the encoder. ``explain([source, steps], step=t)`` explains output step t; a correct
explanation puts the most relevance on reading t. The script prints how often it does and writes a
heatmap (one row per explained output step).

    python examples/keras_seq2seq.py            # writes examples_out/seq2seq_heatmap.html
    python examples/keras_seq2seq.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, viz

STEPS = 6


def batch(count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Readings (count, STEPS, 1), the decoder's step one-hots (count, STEPS, STEPS), the targets."""
    source = rng.uniform(-1, 1, size=(count, STEPS, 1)).astype("float32")
    steps = np.broadcast_to(np.eye(STEPS, dtype="float32"), (count, STEPS, STEPS)).copy()
    return [source, steps], source.copy()


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    source = keras.Input((None, 1), name="source")
    steps = keras.Input((None, STEPS), name="steps")
    _, h, c = keras.layers.LSTM(32, return_state=True, name="encoder")(source)
    decoded = keras.layers.LSTM(32, return_sequences=True, name="decoder")(steps, initial_state=[h, c])
    model = keras.Model([source, steps], keras.layers.TimeDistributed(keras.layers.Dense(1))(decoded))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    x, y = batch(4000, np.random.default_rng(0))
    model.fit(x, y, batch_size=64, epochs=12, verbose=0)

    test_x, test_y = batch(200, np.random.default_rng(1))
    print(f"mean absolute copy error {float(np.abs(model.predict(test_x, verbose=0) - test_y).mean()):.3f}")
    explainer = Explainer.from_keras(model)
    hits, rows = [], []
    for t in range(STEPS):
        result = explainer.explain(test_x, step=t, target=0)
        per_reading = np.abs(result.relevance[0][..., 0])  # (B, STEPS): relevance of each reading
        hits.append(per_reading.argmax(axis=1) == t)
        rows.append(result.relevance[0][0, :, 0])
    print(f"output step t: reading t is the most relevant reading in {float(np.mean(hits)):.1%} of cases"
          f" (chance: {1 / STEPS:.1%})")  # fmt: skip

    page = out_dir / "seq2seq_heatmap.html"
    viz.html_heatmap(
        [[f"x{s}={test_x[0][0, s, 0]:+.2f}" for s in range(STEPS)] for _ in range(STEPS)],
        np.stack(rows),
        page,
        title="LRP relevance of the readings for each output step of sample 0 (red: for it, blue: against it)",
        labels=[f"output step {t}" for t in range(STEPS)],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
