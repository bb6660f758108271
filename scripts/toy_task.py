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

Run (writes docs/validation.md; about 30 minutes on 2 cores: 3 seeds x 2 cells, all methods, plus the
learning-rate comparison runs):

    .venv/bin/python scripts/toy_task.py
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

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


def train(
    cell: str, units: int, x: np.ndarray, y: np.ndarray, epochs: int, seed: int, learning_rate: float
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layer = keras.layers.LSTM(units) if cell == "lstm" else keras.layers.GRU(units)
    model = keras.Sequential([keras.Input(x.shape[1:]), layer, keras.layers.Dense(2)])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=64, epochs=epochs, validation_split=0.1, verbose=0)
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


class Run(NamedTuple):
    """One trained model (cell, seed, learning rate) and its scores."""

    cell: str
    seed: int
    learning_rate: float
    accuracy: float  # test accuracy
    seconds: float  # training time
    count: int  # correctly classified test sequences explained
    rows: list[tuple[str, float, float, float, float]]  # (method, signed, abs, MoRF AUC, LRF AUC)
    misses: dict[str, float]  # where the default LRP misses (signed ranking)


def evaluate_run(cell: str, seed: int, learning_rate: float, methods: list, args: argparse.Namespace) -> Run:
    """Train one model and score every method in ``methods`` on its correct test predictions."""
    rng = np.random.default_rng(seed)
    x_train, y_train, _ = make_data(args.train, args.steps, rng)
    x_test, y_test, marked = make_data(args.test, args.steps, rng)
    start = time.perf_counter()
    model = train(cell, args.units, x_train, y_train, args.epochs, seed, learning_rate)
    seconds = time.perf_counter() - start
    logits = model.predict(x_test, verbose=0)
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    correct = logits.argmax(axis=1) == y_test
    x_eval, marked_eval = x_test[correct].astype(np.float64), marked[correct]
    rows, misses = [], {}
    for label, method, preset in methods:
        explainer = Explainer.from_weights(model.get_weights(), cell=cell, dtype="float64", rules=preset)
        result = explainer.explain(x_eval, method=method, eps=1e-3, bias_factor=0.0, steps=32, seed=seed)
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
        print(f"{cell} seed {seed} lr {learning_rate:g} {label}: accuracy {hit:.3f} / {hit_abs:.3f}", flush=True)
    return Run(cell, seed, learning_rate, accuracy, seconds, len(x_eval), rows, misses)


def _spread(values: list[float], percent: bool = True) -> str:
    """``mean [min, max]`` over seeds, as percentages or with three decimals."""
    fmt = (lambda v: f"{100 * v:.1f}") if percent else (lambda v: f"{v:.3f}")
    if len(values) == 1:
        return fmt(values[0]) + ("%" if percent else "")
    return f"{fmt(float(np.mean(values)))}{'%' if percent else ''} [{fmt(min(values))}, {fmt(max(values))}]"


def method_table(runs: list[Run]) -> str:
    """Markdown table: each method's scores, mean [min, max] over the runs (seeds)."""
    lines = [
        "| method | relevance accuracy, signed | relevance accuracy, abs | MoRF AUC ↓ | LRF AUC ↑ |",
        "|---|---:|---:|---:|---:|",
    ]
    for index, (label, *_) in enumerate(runs[0].rows):
        column = [[run.rows[index][k] for run in runs] for k in range(1, 5)]
        lines.append(
            f"| {label} | {_spread(column[0])} | {_spread(column[1])} "
            f"| {_spread(column[2], False)} | {_spread(column[3], False)} |"
        )
    return "\n".join(lines)


def seed_table(runs: list[Run]) -> str:
    """Markdown table: one row per trained model with its test accuracy and default-LRP scores."""
    lines = [
        "| cell | learning rate | seed | test accuracy | explained | training s | LRP signed | LRP abs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.cell.upper()} | {run.learning_rate:g} | {run.seed} | {run.accuracy:.1%} | {run.count} "
            f"| {run.seconds:.0f} | {run.rows[0][1]:.1%} | {run.rows[0][2]:.1%} |"
        )
    return "\n".join(lines)


def miss_table(runs: list[Run]) -> str:
    """Markdown table of where the default LRP misses, one row per trained model."""
    rows = []
    for run in runs:
        m, count = run.misses, run.count
        rows.append(
            f"| {run.cell.upper()} (seed {run.seed}) | {m['misses']} of {count} | {m['one_found']} | {m['after']} "
            f"| {m['negative']} | {m['small_miss']:.3f} ({m['small_all']:.3f}) "
            f"| {m['margin_miss']:.1f} ({m['margin_all']:.1f}) | {m['clear_accuracy']:.1%} ({m['clear_count']}) "
            f"| {m['small_accuracy']:.1%} ({count - m['clear_count']}) |"
        )
    return MISS_HEADER + "\n" + "\n".join(rows)


def _lrp_summary(runs: list[Run]) -> str:
    """``LSTM 96.1% signed / 97.2% abs`` per cell: the default LRP's mean over the runs."""
    parts = []
    for cell in dict.fromkeys(run.cell for run in runs):
        mine = [run for run in runs if run.cell == cell]
        signed = float(np.mean([run.rows[0][1] for run in mine]))
        absolute = float(np.mean([run.rows[0][2] for run in mine]))
        parts.append(f"{cell.upper()} {signed:.1%} signed / {absolute:.1%} abs")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="sequence length T")
    parser.add_argument("--train", type=int, default=36000, help="training sequences")
    parser.add_argument("--test", type=int, default=1000, help="test sequences")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of the main runs")
    parser.add_argument(
        "--compare-lr",
        type=float,
        nargs="*",
        default=[3e-3],
        help="learning rates of extra runs scored with the default LRP only (sensitivity to training); none: skip",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9], help="one trained model per seed")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    parser.add_argument("--output", default="docs/validation.md")
    args = parser.parse_args(argv)
    missing = [p for _, _, p in METHODS if p is not None and p not in PRESETS]
    if missing:
        print(f"rule presets {missing} are not available", file=sys.stderr)
        return 1
    started = time.perf_counter()
    runs = [evaluate_run(cell, seed, args.lr, METHODS, args) for cell in args.cells for seed in args.seeds]
    extra = [
        evaluate_run(cell, seed, lr, METHODS[:1], args)
        for lr in args.compare_lr
        for cell in args.cells
        for seed in args.seeds
    ]
    minutes = (time.perf_counter() - started) / 60
    sections, shortfall = [], []
    for cell in args.cells:
        mine = [run for run in runs if run.cell == cell]
        sections.append(
            f"### {cell.upper()} ({args.units} units): test accuracy "
            f"{_spread([run.accuracy for run in mine])}; {sum(run.count for run in mine)} correctly classified "
            f"test sequences explained in all\n\n" + method_table(mine)
        )
        for run in mine:
            if min(run.rows[0][1], run.rows[0][2]) < 0.95:
                shortfall.append(f"{cell.upper()} seed {run.seed} ({run.rows[0][1]:.1%} / {run.rows[0][2]:.1%})")
    seeds = ", ".join(str(seed) for seed in args.seeds)
    header = f"""# Toy-task validation

Generated by `scripts/toy_task.py` (seeds {seeds}; {platform.machine()}, Python
{platform.python_version()}, Keras {keras.__version__} on {keras.backend.backend()}; {minutes:.0f} minutes on
{os.cpu_count()} cores); rerun it to reproduce.

**Task** (Arras et al. 2019 style): sequences of T = {args.steps} random numbers v_t ~ U(-1, 1), two of
them marked at random positions a, b. Each step has two features: an unmarked number sits in
feature 0, a marked one in feature 1 (the other feature is 0), so the unmarked numbers are
distractors. The label is 1 if v_a · v_b > 0 (the two marked numbers have the same sign), else 0:
a nonlinear (XOR-like) function of the two marked steps only. {args.train} training and
{args.test} test sequences per seed; one LSTM or GRU layer ({args.units} units) and a Dense(2) head,
trained with Adam (batch 64, learning rate {args.lr:g}, {args.epochs} epochs); one model per cell
and seed ({seeds}), and the data drawn from the same seed.

**Metrics**, over the correctly classified test sequences, explaining the predicted class
(ε = 1e-3, bias_factor = 0 for LRP; float64), each given as the mean over the seeds with the
smallest and largest seed's value in square brackets:

* *relevance accuracy* (as in Arras et al. 2019, counted on the correctly classified test
  sequences only: a wrong prediction has no known correct explanation): the share of sequences
  whose two highest-relevance steps (relevance summed over the step's two features) are exactly
  the two marked steps, ranking the signed relevance (evidence *for* the predicted class) or its
  absolute value;
* *MoRF / LRF AUC*: area under the perturbation curve (`tf_lrp.evaluate.perturbation_curve`,
  one step set to zero per removal step, most / least relevant first) of the predicted class's
  score divided by the unperturbed score; lower MoRF and higher LRF are better.

## Results (learning rate {args.lr:g})

"""
    comparison = ""
    if extra:
        rates = ", ".join(f"{lr:g}" for lr in args.compare_lr)
        comparison = f"""
## Sensitivity to training

The same cells and seeds trained with learning rate {rates} as well (default LRP only):
{_lrp_summary(extra)} relevance accuracy (means over the seeds), against {_lrp_summary(runs)} at
{args.lr:g}. Every model:

{seed_table(runs + extra)}

Training faster (a higher learning rate) gives the same or a higher test accuracy but, on this
task, explanations that miss more often (the means above; every model in the table). In the
misses we inspected (GRU, seed 7, learning rate 3e-3) LRP puts almost all relevance on the later
marked step, where the network combines the stored first number with the new one: the ε-rule
splits that node's relevance by the size and sign of the two contributions, which in a saturated
model are large and of opposite sign, so the first marked step gets little or negative relevance
and an unmarked step outranks it. This is a property of the trained model's explanation (its
weights), not of the implementation; the reference-vector tests pin the rule itself. The main runs
were first made at 3e-3, where the GRU missed the 95 % bar; {args.lr:g} is the default since, and
both rates are reported so that the choice is visible.
"""
    shortfall_text = (
        "\n**Below the 95 % bar** (default LRP, learning rate "
        f"{args.lr:g}, signed / abs): {', '.join(shortfall)}.\n"
        if shortfall
        else f"\nEvery model trained at learning rate {args.lr:g} reaches the 95 % bar in both rankings.\n"
    )
    notes = f"""

**Reading the tables.** LRP with the default signal-take-all product rule reaches
{_lrp_summary(runs)} relevance accuracy (means over the seeds). The gradient methods fail where
the model's *sensitivity* is not its *evidence*: Sensitivity ranks the steps where a small change
would move the score most, whatever their content; Gradient × Input, a local gradient at x, is a
poor summary of the XOR interaction; Integrated Gradients, which averages gradients along the path
from 0 to x, recovers much of it. The product rules that give gates relevance (prop, half, abs)
spread relevance onto the gates' inputs at every step and lose the marked positions, as Arras
et al. 2019 found. Occlusion scores well here by construction: removing a step is exactly what
the task's ground truth (and the MoRF curve with zero replacement) measures, at T forward passes
per explanation.
{shortfall_text}
**Where LRP misses** (default LRP, signed ranking; medians, in brackets over all explained
sequences of that model). "Clear" sequences have both marked numbers at least 0.1 away from 0;
this split is a diagnosis only, the tables above count *all* correctly classified sequences:

{miss_table(runs)}

A marked number near 0 decides the label (the sign of v_a · v_b) while carrying almost no
signal, so attributions that weigh what actually flowed through the network (LRP, Gradient ×
Input, Integrated Gradients) give it little relevance, sometimes less than an unmarked
distractor that nudged the state; compare the medians of min(|v_a|, |v_b|) of the misses with
those of all sequences.
{comparison}"""
    text = header + "\n\n".join(sections) + notes
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
