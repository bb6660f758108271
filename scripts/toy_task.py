"""Toy-task validation: does an explanation find the two positions that decide the label?

A sequence task with a known correct explanation, in the style of Arras et al. 2019
("Evaluating recurrent neural network explanations", BlackboxNLP): each sequence has T steps
holding random numbers ``v_t ~ U(-1, 1)``; exactly two random positions ``a, b`` are marked.
A step has two features: an unmarked number sits in feature 0 (feature 1 is 0), a marked
number in feature 1 (feature 0 is 0), so the unmarked numbers are distractors the network
must learn to ignore. The label is the nonlinear (XOR-like) function

    y = 1 if v_a · v_b > 0 else 0          (do the two marked numbers have the same sign?)

so only the two marked steps matter, and both matter together. A small LSTM and GRU are trained
(Keras, a few minutes on 2 CPU cores), then every method explains the predicted class of the
correctly classified test sequences, and we report

* relevance accuracy: how often the two steps with the highest relevance (summed over the
  step's features; signed, and by absolute value) are exactly the two marked ones;
* MoRF / LRF AUC: the area under the perturbation curve (steps removed by setting them to
  zero, most / least relevant first) of the predicted class's score, normalised by the
  unperturbed score (lower MoRF and higher LRF are better).

Run (writes docs/validation.md):

    .venv/bin/python scripts/toy_task.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from tf_lrp import Explainer
from tf_lrp.evaluate import perturbation_curve
from tf_lrp.rules import PRESETS

#: (label in the table, explain method, rule preset or None).
METHODS = [
    ("LRP (signal-take-all, ε=1e-3, bias_factor=0)", "lrp", None),
    ("LRP-prop", "lrp", "proportional"),
    ("LRP-half", "lrp", "half"),
    ("LRP-abs", "lrp", "abs"),
    ("Gradient × Input", "gradient_x_input", None),
    ("Sensitivity (gradient²)", "sensitivity", None),
    ("Integrated gradients (32 steps, zero baseline)", "integrated_gradients", None),
    ("Occlusion (step → 0)", "occlusion", None),
    ("Random (control)", "random", None),
]


#: Header of the table of LRP's misses ("|" inside a cell is escaped for Markdown).
MISS_HEADER = (
    "| cell | misses | one marked step in the top 2 | the other one right after a marked step "
    "| a marked step with negative relevance | min(\\|v_a\\|, \\|v_b\\|) of misses (all) "
    "| \\|logit margin\\| of misses (all) | accuracy on clear (count) | accuracy on the rest (count) |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def make_data(n: int, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, T, 2) inputs, (n,) labels, (n, 2) the marked positions."""
    values = rng.uniform(-1.0, 1.0, size=(n, steps))
    marked = np.sort(np.argsort(rng.random((n, steps)), axis=1)[:, :2], axis=1)
    markers = np.zeros((n, steps))
    np.put_along_axis(markers, marked, 1.0, axis=1)
    picked = np.take_along_axis(values, marked, axis=1)
    labels = (picked[:, 0] * picked[:, 1] > 0).astype(np.int64)
    inputs = np.stack([values * (1 - markers), values * markers], axis=-1)
    return inputs.astype(np.float32), labels, marked


def train(cell: str, units: int, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layer = keras.layers.LSTM(units) if cell == "lstm" else keras.layers.GRU(units)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer, keras.layers.Dense(2)])
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.1, verbose=2)
    return model


def _top2_hits(per_step: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """(B,) whether the two highest-relevance steps are exactly the two marked ones."""
    top2 = np.sort(np.argsort(-per_step, axis=1, kind="stable")[:, :2], axis=1)
    return (top2 == marked).all(axis=1)


def _top2_accuracy(per_step: np.ndarray, marked: np.ndarray) -> float:
    return float(_top2_hits(per_step, marked).mean())


def _misses(per_step: np.ndarray, x: np.ndarray, marked: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Where the signed top-2 ranking misses: how small the marked numbers and the margins are there."""
    hits = _top2_hits(per_step, marked)
    smaller = np.abs(np.take_along_axis(x[:, :, 1], marked, axis=1)).min(axis=1)  # min(|v_a|, |v_b|)
    margin = np.abs(logits[:, 1] - logits[:, 0])
    top2 = np.argsort(-per_step, axis=1, kind="stable")[:, :2]
    found = (top2[:, :, None] == marked[:, None, :]).any(axis=2)
    one_found = (found.sum(axis=1) == 1) & ~hits
    intruder = np.where(found, -10, top2).max(axis=1)  # the unmarked step in the top 2 (one_found rows)
    after = one_found & (marked == intruder[:, None] - 1).any(axis=1)
    signs = np.take_along_axis(per_step, marked, axis=1).min(axis=1) < 0
    clear = smaller >= 0.1
    return {
        "misses": int((~hits).sum()),
        "one_found": int(one_found.sum()),
        "after": int(after.sum()),
        "negative": int((signs & ~hits).sum()),
        "small_miss": float(np.median(smaller[~hits])) if (~hits).any() else float("nan"),
        "small_all": float(np.median(smaller)),
        "margin_miss": float(np.median(margin[~hits])) if (~hits).any() else float("nan"),
        "margin_all": float(np.median(margin)),
        "clear_count": int(clear.sum()),
        "clear_accuracy": float(hits[clear].mean()),
        "small_accuracy": float(hits[~clear].mean()) if (~clear).any() else float("nan"),
    }


def evaluate_cell(
    cell: str, args: argparse.Namespace
) -> tuple[float, list[tuple[Any, ...]], float, int, dict[str, float]]:
    rng = np.random.default_rng(args.seed)
    x_train, y_train, _ = make_data(args.train, args.steps, rng)
    x_test, y_test, marked = make_data(args.test, args.steps, rng)
    start = time.perf_counter()
    model = train(cell, args.units, x_train, y_train, args.epochs, args.seed)
    seconds = time.perf_counter() - start
    logits = model.predict(x_test, verbose=0)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    correct = logits.argmax(axis=1) == y_test
    x_eval, marked_eval = x_test[correct].astype(np.float64), marked[correct]
    rows, misses = [], {}
    for label, method, preset in METHODS:
        explainer = Explainer.from_weights(model.get_weights(), cell=cell, dtype="float64", rules=preset)
        result = explainer.explain(x_eval, method=method, eps=1e-3, bias_factor=0.0, steps=32, seed=args.seed)
        per_step = result.token_relevance
        hit = _top2_accuracy(per_step, marked_eval)
        hit_abs = _top2_accuracy(np.abs(per_step), marked_eval)
        if not rows:  # the default LRP: where does it miss?
            misses = _misses(per_step, x_eval, marked_eval, logits[correct])
        reference = np.abs(result.explained_score)[:, None]
        morf = perturbation_curve(explainer, x_eval, per_step, order="morf", mode="zero")
        lrf = perturbation_curve(explainer, x_eval, per_step, order="lrf", mode="zero")
        rows.append(
            (
                label,
                hit,
                hit_abs,
                float((morf.curve / reference).mean(axis=0).mean()),
                float((lrf.curve / reference).mean(axis=0).mean()),
            )
        )
        print(f"{cell} {label}: accuracy {hit:.3f} / {hit_abs:.3f}", flush=True)
    return accuracy, rows, seconds, len(x_eval), misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="sequence length T")
    parser.add_argument("--train", type=int, default=36000, help="training sequences")
    parser.add_argument("--test", type=int, default=1000, help="test sequences")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--output", default="docs/validation.md")
    args = parser.parse_args(argv)
    missing = [p for _, _, p in METHODS if p is not None and p not in PRESETS]
    if missing:
        print(f"rule presets {missing} are not available", file=sys.stderr)
        return 1
    sections, lrp_rows, miss_rows, shortfall = [], [], [], []
    for cell in args.cells:
        accuracy, rows, seconds, count, misses = evaluate_cell(cell, args)
        lines = [
            f"### {cell.upper()} ({args.units} units): test accuracy {accuracy:.1%}, trained in {seconds:.0f} s "
            f"({args.epochs} epochs); {count} correctly classified test sequences explained",
            "",
            "| method | relevance accuracy, signed | relevance accuracy, abs | MoRF AUC ↓ | LRF AUC ↑ |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {label} | {hit:.1%} | {hit_abs:.1%} | {morf:.3f} | {lrf:.3f} |"
            for label, hit, hit_abs, morf, lrf in rows
        ]
        sections.append("\n".join(lines))
        lrp_rows.append(f"{cell.upper()} {rows[0][1]:.1%} signed / {rows[0][2]:.1%} abs")
        if min(rows[0][1], rows[0][2]) < 0.95:
            shortfall.append(cell.upper())
        m = misses
        miss_rows.append(
            f"| {cell.upper()} | {m['misses']} of {count} | {m['one_found']} | {m['after']} | {m['negative']} "
            f"| {m['small_miss']:.3f} "
            f"({m['small_all']:.3f}) | {m['margin_miss']:.1f} ({m['margin_all']:.1f}) | "
            f"{m['clear_accuracy']:.1%} ({m['clear_count']}) | {m['small_accuracy']:.1%} ({count - m['clear_count']}) |"
        )
    header = f"""# Toy-task validation

Generated by `scripts/toy_task.py` (seed {args.seed}; {platform.machine()}, Python
{platform.python_version()}, Keras {keras.__version__} on {keras.backend.backend()}); rerun it to reproduce.

**Task** (Arras et al. 2019 style): sequences of T = {args.steps} random numbers v_t ~ U(-1, 1), two of
them marked at random positions a, b. Each step has two features: an unmarked number sits in
feature 0, a marked one in feature 1 (the other feature is 0), so the unmarked numbers are
distractors. The label is 1 if v_a · v_b > 0 (the two marked numbers have the same sign), else 0:
a nonlinear (XOR-like) function of the two marked steps only. {args.train} training and
{args.test} test sequences; one LSTM or GRU layer and a Dense(2) head, trained with Adam
(batch 64, learning rate 3e-3, {args.epochs} epochs).

**Metrics**, over the correctly classified test sequences, explaining the predicted class
(ε = 1e-3, bias_factor = 0 for LRP; float64):

* *relevance accuracy* (as in Arras et al. 2019, counted on the correctly classified test
  sequences only: a wrong prediction has no known correct explanation): the share of sequences
  whose two highest-relevance steps (relevance summed over the step's two features) are exactly
  the two marked steps, ranking the signed relevance (evidence *for* the predicted class) or its
  absolute value;
* *MoRF / LRF AUC*: area under the perturbation curve (`tf_lrp.evaluate.perturbation_curve`,
  one step set to zero per removal step, most / least relevant first) of the predicted class's
  score divided by the unperturbed score; lower MoRF and higher LRF are better.

"""
    shortfall_text = (
        f"\n**Shortfall.** LRP stays below the issue's 95 % bar for {', '.join(shortfall)} in at least one "
        "ranking (see the first row of its table).\n"
        if shortfall
        else ""
    )
    notes = f"""

**Reading the tables.** LRP with the default signal-take-all product rule reaches
{", ".join(lrp_rows)} relevance accuracy. The gradient methods fail where the model's
*sensitivity* is not its *evidence*: Sensitivity ranks the steps where a small change would move
the score most, whatever their content, and does worse than the random control; Gradient × Input
finds both marked steps in only about half of the sequences or fewer (signed ranking): a local
gradient at x is a poor summary of the XOR interaction; Integrated Gradients, which averages
gradients along the path from 0 to x, recovers most of it. The product rules that
give gates relevance (prop, half, abs) spread relevance onto the gates' inputs at every step and
lose the marked positions, as Arras et al. 2019 found. Occlusion scores best here by
construction: removing a step is exactly what the task's ground truth (and the MoRF curve with
zero replacement) measures, at T forward passes per explanation.

**Where LRP misses** (default LRP, signed ranking; medians, in brackets over all explained
sequences). "Clear" sequences have both marked numbers at least 0.1 away from 0; the headline
numbers above count *all* correctly classified sequences, this split is a diagnosis only:

{MISS_HEADER}
{chr(10).join(miss_rows)}

Nearly every miss still ranks one marked step in the top two. What pushes the other one out
differs between the cells (seed 7; a rerun with another seed may differ):

* **LSTM**: the misses are mostly sequences in which the other marked number is close to 0 (the
  median min(|v_a|, |v_b|) of the misses is far below that of all sequences) and whose
  prediction has a small margin. The label is the sign of v_a · v_b, so a marked number near 0
  decides the label while carrying almost no signal; an attribution that weighs what actually
  flowed through the network (LRP, Gradient × Input, Integrated Gradients) gives it little
  relevance, less than an unmarked distractor that nudged the state. On the "clear" sequences
  LRP is near-perfect.
* **GRU**: the misses are *not* explained by small marked numbers (their median is close to
  that of all sequences). LRP puts almost all relevance on one marked step (in the 6 misses we
  inspected, the later one, where the network combines the stored first number with the second)
  and little or negative relevance on the other, so a distractor (in about a third of the misses the step right after
  a marked one) outranks it. This is a property of the explanation of this trained GRU, not of the label;
  `bias_factor = 1` did not help (87.4 % signed in a side run).

Occlusion does not have these problems because it measures the effect of removing each step,
which is exactly what decides the label here. **Training data matters**: this table uses
36,000 training sequences (the earlier run with 12,000 gave LSTM 98.8 % test accuracy, LRP
94.9 % signed / 97.7 % abs; GRU 98.8 %, LRP 95.5 % signed / 95.7 % abs), so the LSTM improved
with more data and the GRU's explanation got worse although its accuracy rose. A side run with
`--seed 8` gave the same picture: LSTM 99.7 % test accuracy, LRP 96.9 % signed / 98.2 % abs;
GRU 99.4 %, LRP 92.7 % signed / 94.6 % abs.
{shortfall_text}"""
    text = header + "\n\n".join(sections) + notes
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
