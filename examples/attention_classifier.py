"""A BiLSTM with self-attention over its states, explained with CP-LRP and with AttnLRP.

The task: a sequence of filler words holds one keyword, "good" or "bad", which alone decides the
label. The model is ``Embedding(mask_zero) → Bidirectional(LSTM) → Attention([h, h]) →
GlobalAveragePooling1D → Dense``. tf_lrp treats the attention weights as constants by default
(CP-LRP, Ali et al. 2022: relevance flows through the values and conserves);
``RuleSet(attention="attnlrp")`` also sends relevance through the softmax into queries and keys
(Achtibat et al. 2024). The script prints how often the keyword is the most relevant token under
each rule and writes a heatmap.

    python examples/attention_classifier.py            # writes examples_out/attention_heatmap.html
    python examples/attention_classifier.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, RuleSet, viz

KEYWORDS = ["bad", "good"]  # label 0, label 1
FILLER = ["the", "film", "was", "a", "plot", "with", "actors", "and", "music", "scene", "story"]
VOCABULARY = ["<pad>", *KEYWORDS, *FILLER]
MAX_LEN = 12


def sentences(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (count, MAX_LEN) post-padded with 0, labels, and where each keyword sits."""
    ids = np.zeros((count, MAX_LEN), dtype=np.int32)
    labels = rng.integers(0, 2, size=count)
    where = np.zeros(count, dtype=np.int64)
    for i in range(count):
        length = int(rng.integers(5, MAX_LEN + 1))
        ids[i, :length] = rng.integers(len(KEYWORDS) + 1, len(VOCABULARY), size=length)
        where[i] = rng.integers(0, length)
        ids[i, where[i]] = 1 + labels[i]
    return ids, labels, where


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    ids, labels, _ = sentences(2000, np.random.default_rng(0))
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(len(VOCABULARY), 8, mask_zero=True)(inputs)
    h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(h)
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Attention(use_scale=True)([h, h]))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    model.fit(ids, labels, batch_size=64, epochs=6, verbose=0)

    test_ids, test_labels, where = sentences(200, np.random.default_rng(1))
    print(f"test accuracy {model.evaluate(test_ids, test_labels, verbose=0)[1]:.1%}")
    valid = test_ids != 0
    results = {}
    for rule in ("cp_lrp", "attnlrp"):
        explainer = Explainer.from_keras(model, rules=RuleSet(attention=rule))
        result = explainer.explain(test_ids, target=test_labels)
        top = np.where(valid, result.token_relevance, -np.inf).argmax(axis=1)
        print(f"{rule}: the keyword is the most relevant token in {float((top == where).mean()):.1%} of samples")
        results[rule] = result

    shown = list(range(8))
    page = out_dir / "attention_heatmap.html"
    viz.html_heatmap(
        [[VOCABULARY[t] for t in test_ids[i, valid[i]]] for i in shown],
        results["cp_lrp"].token_relevance[shown],
        page,
        title="CP-LRP relevance of the predicted class (red: for it, blue: against it)",
        labels=[f"label {KEYWORDS[test_labels[i]]!r}" for i in shown],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
