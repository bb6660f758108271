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


def _top2_accuracy(per_step: np.ndarray, marked: np.ndarray) -> float:
    top2 = np.sort(np.argsort(-per_step, axis=1, kind="stable")[:, :2], axis=1)
    return float((top2 == marked).all(axis=1).mean())


def evaluate_cell(cell: str, args: argparse.Namespace) -> tuple[float, list[tuple[Any, ...]], float, int]:
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
    rows = []
    for label, method, preset in METHODS:
        explainer = Explainer.from_weights(model.get_weights(), cell=cell, dtype="float64", rules=preset)
        result = explainer.explain(x_eval, method=method, eps=1e-3, bias_factor=0.0, steps=32, seed=args.seed)
        per_step = result.token_relevance
        hit = _top2_accuracy(per_step, marked_eval)
        hit_abs = _top2_accuracy(np.abs(per_step), marked_eval)
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
    return accuracy, rows, seconds, len(x_eval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="sequence length T")
    parser.add_argument("--train", type=int, default=12000, help="training sequences")
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
    sections, lrp_rows = [], []
    for cell in args.cells:
        accuracy, rows, seconds, count = evaluate_cell(cell, args)
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
    header = f"""# Toy-task validation

Generated by `scripts/toy_task.py` (seed {args.seed}; {platform.machine()}, Python
{platform.python_version()}, Keras {keras.__version__} on {keras.backend.backend()}); rerun it to reproduce.

**Task** (Arras et al. 2019 style): sequences of T = {args.steps} random numbers v_t ~ U(-1, 1), two of
them marked at random positions a, b. Each step has two features: an unmarked number sits in
feature 0, a marked one in feature 1 (the other feature is 0), so the unmarked numbers are
distractors. The label is 1 if v_a · v_b > 0 (the two marked numbers have the same sign), else 0:
a nonlinear (XOR-like) function of the two marked steps only. {args.train} training and
{args.test} test sequences; one LSTM or GRU layer and a Dense(2) head, trained with Adam.

**Metrics**, over the correctly classified test sequences, explaining the predicted class
(ε = 1e-3, bias_factor = 0 for LRP; float64):

* *relevance accuracy*: the share of sequences whose two highest-relevance steps (relevance
  summed over the step's two features) are exactly the two marked steps, ranking the signed
  relevance (evidence *for* the predicted class) or its absolute value;
* *MoRF / LRF AUC*: area under the perturbation curve (`tf_lrp.evaluate.perturbation_curve`,
  one step set to zero per removal step, most / least relevant first) of the predicted class's
  score divided by the unperturbed score; lower MoRF and higher LRF are better.

"""
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
"""
    text = header + "\n\n".join(sections) + notes
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
