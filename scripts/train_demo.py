"""Regenerate the bundled demo model and data set in ``tf_lrp/_demo/`` (reproducible, seeded).

    .venv/bin/python scripts/train_demo.py            # about a minute on 2 CPU cores

The task has a known correct explanation ("planted keyword"): every sequence is a run of filler
tokens with exactly ONE keyword token planted at a random position, and the keyword alone decides
the class (token 1 -> class 0, token 2 -> class 1, token 3 -> class 2). Sequences have lengths
8..32 and are post-padded with token 0 (the embedding has ``mask_zero=True``). A correct
explanation puts the most relevance on the keyword position.

Model: Embedding(16, 8, mask_zero) -> Bidirectional(LSTM(16)) -> Dense(3), trained with Keras,
then saved with ``Explainer.from_manifest(...).save(...)`` as ``tf_lrp/_demo/model.npz``. The data
set (4,000 held-out sequences, token ids, lengths, labels, keyword positions) is saved as
``tf_lrp/_demo/data.npz``; ``tf_lrp/_demo/demo.json`` records how both were made.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONHASHSEED", "0")

import keras
import numpy as np

from tf_lrp import Explainer
from tf_lrp._io import atomic_write, write_json
from tf_lrp.layout import DenseSpec, EmbeddingSpec, RecurrentSpec, to_manifest

SEED = 20171107
VOCABULARY = 16  # 0 = padding, 1..3 = keywords, 4..15 = filler
KEYWORDS = (1, 2, 3)
EMBED, UNITS = 8, 16
MIN_LEN, MAX_LEN = 8, 32
TRAIN, TEST = 6000, 4000
OUT = Path(__file__).resolve().parent.parent / "tf_lrp" / "_demo"


def make_data(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` post-padded sequences with one planted keyword each."""
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=n)
    x = rng.integers(len(KEYWORDS) + 1, VOCABULARY, size=(n, MAX_LEN))
    x[np.arange(MAX_LEN)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, len(KEYWORDS), size=n)
    positions = (rng.random(n) * lengths).astype(np.int64)
    x[np.arange(n), positions] = np.asarray(KEYWORDS)[labels]
    return {
        "x": x.astype(np.uint8),
        "lengths": lengths.astype(np.int32),
        "labels": labels.astype(np.int32),
        "keyword_position": positions.astype(np.int32),
    }


def main() -> int:
    keras.utils.set_random_seed(SEED)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # same weights on every run
    rng = np.random.default_rng(SEED)
    train, test = make_data(TRAIN, rng), make_data(TEST, rng)
    model = keras.Sequential(
        [
            keras.Input((MAX_LEN,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, EMBED, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(UNITS)),
            keras.layers.Dense(len(KEYWORDS)),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train["x"].astype(np.int32), train["labels"], batch_size=64, epochs=6, verbose=2, shuffle=True)
    _, accuracy = model.evaluate(test["x"].astype(np.int32), test["labels"], verbose=0)
    print(f"held-out accuracy {accuracy:.4f}")

    layers = [
        EmbeddingSpec(VOCABULARY, EMBED, mask_zero=True),
        RecurrentSpec("lstm", UNITS, EMBED, direction="bidirectional"),
        DenseSpec(len(KEYWORDS), 2 * UNITS),
    ]
    explainer = Explainer.from_manifest(to_manifest(layers, name="demo-keyword-bilstm"), model.get_weights())
    keras_scores = model.predict(test["x"][:256].astype(np.int32), verbose=0)
    ours = explainer.score(test["x"][:256])
    gap = float(np.abs(keras_scores - ours).max())
    print(f"max |keras - tf_lrp| score difference on 256 samples: {gap:.2e}")
    if gap > 1e-4:
        print("the converted model does not reproduce Keras's scores", file=sys.stderr)
        return 1

    OUT.mkdir(parents=True, exist_ok=True)
    explainer.save(OUT / "model.npz")
    with atomic_write(OUT / "data.npz") as handle:
        np.savez_compressed(handle, **test)
    write_json(
        OUT / "demo.json",
        {
            "task": "planted keyword: one keyword token (1, 2, 3) at a random position decides the class (0, 1, 2)",
            "ground_truth": "keyword_position",
            "seed": SEED,
            "vocabulary": VOCABULARY,
            "lengths": [MIN_LEN, MAX_LEN],
            "padding": "post, token 0 (mask_zero)",
            "model": "Embedding(16, 8, mask_zero) -> Bidirectional(LSTM(16)) -> Dense(3)",
            "train_samples": TRAIN,
            "samples": TEST,
            "held_out_accuracy": round(float(accuracy), 4),
            "keras": keras.__version__,
            "script": "scripts/train_demo.py",
        },
    )
    print(f"wrote {OUT}/model.npz, data.npz, demo.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
