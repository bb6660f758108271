"""The ``tf-lrp`` command line: explain, convert, validate, info, demo, evaluate.

``main(argv)`` returns the exit code: 0 on success, 1 when ``validate`` finds problems, 2 for a
user mistake (a missing file, a wrong shape, an unsupported model, a bad argument). User
mistakes print one line on stderr (``tf-lrp: error: ...``); ``--debug`` adds the traceback.

Start-up: this module imports no framework. Arguments and files are checked first; a command
imports Keras (and with it TensorFlow, JAX or PyTorch) only when it needs to compute
(``_load_framework``), with the framework's C++ start-up lines silenced at the file-descriptor
level (``--debug`` shows them). ``tf-lrp --help`` and usage errors answer without a framework.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import importlib.util
import json
import math
import os
import re
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from . import _io, resumable, viz
from ._version import __version__
from .errors import InputError, LayoutError, TfLrpError, TfLrpWarning

if TYPE_CHECKING:
    from .dataset import OutputFiles
    from .explainer import Explainer, Explanation

#: ``--method`` choices: the names of ``tf_lrp.methods.METHODS`` (kept here so that parsing imports no
#: framework; tests/test_cli.py checks that the two agree).
METHOD_NAMES = ("gradient_x_input", "integrated_gradients", "lrp", "occlusion", "random", "sensitivity")
#: ``--dtype`` choices (``tf_lrp.explainer.DTYPES``).
DTYPES = ("float32", "float64")
#: The manifest entry of a tf_lrp network ``.npz`` (``tf_lrp.explainer.MANIFEST_KEY``).
MANIFEST_KEY = "__manifest__"

#: Where ``tf-lrp demo`` writes when no ``-o`` is given (ignored by git).
DEMO_DIR = "tf_lrp_demo_out"
#: Samples drawn in the demo's HTML heatmap.
DEMO_HEATMAP_SAMPLES = 8
#: Samples drawn by ``tf-lrp explain --html / --png`` unless ``--heatmap-samples`` says otherwise.
HEATMAP_SAMPLES = 8
#: Methods ``tf-lrp evaluate --methods`` suggests (``random`` is the control).
EVALUATE_METHODS = ("lrp", "gradient_x_input", "integrated_gradients", "sensitivity", "random")
#: Figure formats written by ``--png`` (chosen by the file's extension).
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
#: Samples used for the demo's conservation check (bias_factor = 1).
DEMO_CONSERVATION_SAMPLES = 512

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2

_EXAMPLES = {
    "explain": """examples:
  tf-lrp explain model.keras tokens.npy -o relevances.npy
  tf-lrp explain net.npz data.npz -o rel.npy --method gradient_x_input --target 1
  tf-lrp explain net.npz big.npy -o rel.npy --batch-size 256 --dtype float64
  tf-lrp explain net.npz big.npy -o rel.npy --resume        # continue after a crash
  tf-lrp explain net.npz big.npy -o rel.npy --overwrite     # start over
  tf-lrp explain net.npz tokens.npz -o rel.npy --html rel.html --vocab vocab.txt
  tf-lrp explain net.npz series.npy -o rel.npy --png rel.png --heatmap-samples 4

DATA is an .npy (memory-mapped) or an .npz with key x and optional lengths or mask; for a model
with TextVectorization, a UTF-8 .txt file with one text per line (tokenized into OUT.ids.npy).
Writes OUT.npy (relevances, float), OUT.scores.npy, OUT.targets.npy, OUT.initial_state.npy and
the sidecar OUT.json that makes the run resumable. --html (token models) / --png (time series)
also draw the relevance of the first --heatmap-samples samples.""",
    "convert": """examples:
  tf-lrp convert model.keras -o net.npz
  tf-lrp convert lstm_state_dict.pt -o net.npz --cell lstm --bidirectional
  tf-lrp convert state_dict.npz -o net.npz --cell gru

A .keras file is converted with Explainer.from_keras (checked against the Keras model's
scores); a PyTorch state_dict (.pt/.pth, or .npz of numpy arrays) with Explainer.from_torch.""",
    "validate": """examples:
  tf-lrp validate net.npz

Prints the layout and every problem found; exit code 1 when there are problems.""",
    "info": """examples:
  tf-lrp info net.npz""",
    "demo": """examples:
  tf-lrp demo
  tf-lrp demo -o /tmp/demo --no-progress

Explains the bundled planted-keyword data set (4,000 sequences) with the bundled bidirectional
LSTM, writes the relevances and heatmap.html, and prints samples/s, the conservation error and
how often the top-relevant token is the planted keyword.""",
    "evaluate": """examples:
  tf-lrp evaluate net.npz data.npz rel.npy -o curves.json
  tf-lrp evaluate net.npz data.npz rel.npy -o curves.json --mode interpolate --steps 20 --png curves.png
  tf-lrp evaluate net.npz data.npz --methods lrp,gradient_x_input,integrated_gradients,sensitivity,random -o report/

Removes time steps (or single features with --unit feature) in the order of the relevance
(RELEVANCE: .npy of shape (B, T) or (B, T, D), e.g. the output of tf-lrp explain), re-scores
after each removal step and writes the mean curve and AUC of every --order into OUT.json
(lower MoRF and higher LRF AUC are better; random is the baseline). Padding is the model's
(mask_zero / Masking, or the lengths/mask in DATA): padded steps are never removed, and a
removed step never becomes padding. With --methods, each method explains DATA and DIR gets
comparison.md (table: AUC mean ± standard error, ABPC = LRF - MoRF, samples/s),
comparison.json, comparison.png and the relevances (reused by a later run on the same model,
data, target and seed unless --no-cache).""",
}


# --------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    """The ``tf-lrp`` argument parser (subcommands explain, convert, validate, info, demo)."""
    parser = argparse.ArgumentParser(
        prog="tf-lrp",
        description="Layer-wise Relevance Propagation for LSTM/GRU networks.",
        epilog="run 'tf-lrp COMMAND --help' for a command's options and examples",
    )
    parser.add_argument("--version", action="version", version=f"tf_lrp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=text,
            description=text,
            epilog=_EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of errors")
        return sub

    explain = command("explain", "explain a data set with a model; resumable .npy output")
    explain.add_argument("model", metavar="MODEL", help="a .keras file or a tf_lrp .npz network")
    explain.add_argument(
        "data", metavar="DATA", help=".npy, or .npz with x and optional lengths/mask; text models: .txt, a text a line"
    )
    explain.add_argument("-o", "--out", required=True, metavar="OUT.npy", help="relevance output file")
    explain.add_argument("--method", choices=METHOD_NAMES, default="lrp", help="attribution method (default lrp)")
    explain.add_argument(
        "--target", default="predicted", metavar="N|predicted", help="output unit to explain (default predicted)"
    )
    explain.add_argument("--eps", type=float, default=1e-3, help="LRP stabiliser (default 1e-3)")
    explain.add_argument("--bias-factor", type=float, default=0.0, help="LRP bias share in [0, 1] (default 0)")
    explain.add_argument("--batch-size", default="auto", metavar="N|auto", help="samples per chunk (default auto)")
    explain.add_argument("--memory-budget", default=None, metavar="BYTES", help="chunk budget, e.g. 512M, 2G")
    explain.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype (default: the model's)")
    resume = explain.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue the run recorded in OUT.json")
    resume.add_argument("--overwrite", action="store_true", help="replace existing output")
    explain.add_argument("--no-progress", action="store_true", help="no progress bar")
    explain.add_argument("--html", default=None, metavar="FILE.html", help="token models: HTML heatmap of samples")
    explain.add_argument(
        "--png", default=None, metavar="FILE.png|.svg|.pdf",
        help="time-series models: figure of samples, format by extension (needs matplotlib)",
    )  # fmt: skip
    explain.add_argument(
        "--heatmap-samples", type=int, default=HEATMAP_SAMPLES, metavar="N", help="samples drawn (default 8)"
    )
    explain.add_argument("--vocab", default=None, metavar="FILE", help="--html: token names, one per line (id = line)")
    explain.add_argument(
        "--class-names", default=None, metavar="A,B,...|FILE",
        help="--html/--png captions: class names, comma-separated or a file with one per line",
    )  # fmt: skip
    explain.add_argument(
        "--heatmap-scale", choices=("shared", "sample"), default="shared",
        help="--html/--png: one colour scale for all drawn samples (default) or one per sample",
    )  # fmt: skip
    explain.add_argument("--dpi", type=int, default=None, metavar="N", help="--png: raster resolution")

    convert = command("convert", "convert a Keras model or PyTorch state_dict into a tf_lrp network .npz")
    convert.add_argument("model", metavar="MODEL", help=".keras file, or PyTorch state_dict (.pt/.pth/.npz)")
    convert.add_argument("-o", "--out", required=True, metavar="NET.npz", help="output network file")
    convert.add_argument(
        "--cell", choices=("lstm", "gru", "simple_rnn"), default=None, help="state_dict: the cell kind"
    )
    convert.add_argument(
        "--nonlinearity", choices=("tanh", "relu"), default=None,
        help="state_dict of an nn.RNN: its nonlinearity (a state_dict does not record it)",
    )  # fmt: skip
    convert.add_argument("--bidirectional", action="store_true", default=None, help="state_dict: bidirectional")
    convert.add_argument("--dtype", choices=DTYPES, default="float32", help="stored dtype (default float32)")

    validate = command("validate", "check a tf_lrp network .npz; print its layout and problems")
    validate.add_argument("network", metavar="NET.npz")

    info = command("info", "describe a tf_lrp network .npz")
    info.add_argument("network", metavar="NET.npz")

    demo = command("demo", "explain the bundled demo data set with the bundled model")
    demo.add_argument("-o", "--out", default=DEMO_DIR, metavar="DIR", help=f"output directory (default ./{DEMO_DIR})")
    demo.add_argument("--samples", type=int, default=None, help="explain only the first N samples")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = command("evaluate", "perturbation curves and AUC of relevances (MoRF / LRF / random); compare methods")
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file or a tf_lrp .npz network")
    evaluate.add_argument("data", metavar="DATA", help=".npy, or .npz with x and optional lengths/mask")
    evaluate.add_argument(
        "relevance", metavar="RELEVANCE", nargs="?", default=None,
        help=".npy relevance (B, T) or (B, T, D); omit it with --methods",
    )  # fmt: skip
    evaluate.add_argument(
        "-o", "--out", required=True, metavar="OUT.json|DIR", help="result file (a directory with --methods)"
    )
    evaluate.add_argument(
        "--methods", default=None, metavar="M1,M2,...",
        help=f"compare these methods (explained here), e.g. {','.join(EVALUATE_METHODS)}",
    )  # fmt: skip
    evaluate.add_argument("--order", nargs="+", choices=("morf", "lrf", "random"), default=["morf", "lrf", "random"])
    evaluate.add_argument(
        "--mode",
        choices=("zero", "constant", "mean", "random_draw", "interpolate", "token"),
        default=None,
        help="replacement (default: zero for features, mean under Masking(0); token 0 for token ids, "
        "random_draw from the data's tokens when 0 is padding)",
    )
    evaluate.add_argument("--value", type=float, default=0.0, help="--mode constant: the fill value")
    evaluate.add_argument(
        "--token", type=int, default=None, help="--mode token: the replacement id (an [UNK] id, never padding)"
    )
    evaluate.add_argument("--unit", choices=("step", "feature"), default="step")
    evaluate.add_argument(
        "--steps", type=int, default=None,
        help="removal steps, capped at the units per sample (default: one unit per step; 20 with --methods)",
    )  # fmt: skip
    evaluate.add_argument(
        "--normalize", choices=("auto", "probability", "relative", "none"), default="auto",
        help="curve values: probability of the explained class (auto, 2+ outputs), score relative to the "
        "unperturbed score (auto, 1 output), or the raw score (none)",
    )  # fmt: skip
    evaluate.add_argument(
        "--reference-data", default=None, metavar="FILE",
        help="--mode mean/random_draw: reference .npy/.npz (default DATA); its padding is excluded",
    )  # fmt: skip
    evaluate.add_argument("--samples", type=int, default=None, metavar="N", help="evaluate the first N samples")
    evaluate.add_argument(
        "--no-cache", action="store_true",
        help="--methods: explain again even when DIR holds relevances of the same model, data, target and seed",
    )  # fmt: skip
    evaluate.add_argument(
        "--target", default="predicted", metavar="N|predicted", help="output unit to score (default predicted)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the random order and draws")
    evaluate.add_argument(
        "--png", default=None, metavar="FILE.png|.svg|.pdf",
        help="also plot the curves, format by extension (needs matplotlib; with --methods: DIR/comparison.png)",
    )  # fmt: skip
    evaluate.add_argument("--dpi", type=int, default=None, metavar="N", help="--png: raster resolution")
    evaluate.add_argument("--dtype", choices=DTYPES, default=None, help="compute dtype (default: the model's)")
    return parser


# --------------------------------------------------------------------------------------------
# Helpers


def _say(stream: TextIO, text: str) -> None:
    stream.write(f"{text}\n")


def _parse_int_or(value: str, word: str, label: str) -> int | str:
    if value == word:
        return word
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"{label} must be an integer or {word!r}; got {value!r}") from None
    if number < 0:
        raise InputError(f"{label} must be >= 0; got {number}")
    return number


def _parse_bytes(value: str | None) -> int | None:
    if value is None:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = value.strip().upper().removesuffix("B")
    scale = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        amount = float(number) * scale
        result = int(amount) if math.isfinite(amount) else 0
    except ValueError:
        raise InputError(f"--memory-budget must be bytes such as 500000000, 512M or 2G; got {value!r}") from None
    if not math.isfinite(amount):
        raise InputError(f"--memory-budget must be a finite number of bytes such as 512M or 2G; got {value!r}")
    if result <= 0:
        raise InputError(f"--memory-budget must be positive; got {value!r}")
    return result


@contextlib.contextmanager
def _native_stderr_hidden(hide: bool) -> Iterator[None]:
    """Point file descriptor 2 at the null device for the duration (when ``hide``).

    TensorFlow's C++ runtime writes its start-up lines (absl, cuInit, CPU features) straight to the
    descriptor, past ``sys.stderr``; only redirecting the descriptor hides them.
    """
    if not hide:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _start_framework(debug: bool = False) -> None:
    """Import Keras and its backend framework (through ``tf_lrp.explainer``), start-up output hidden.

    The CLI calls this after its argument and file checks, right before the first computation;
    ``--debug`` leaves the framework's own start-up lines visible.
    """
    if "tf_lrp.explainer" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the application's choice: no C++ log lines
    with _native_stderr_hidden(hide=not debug):
        importlib.import_module(".explainer", __package__)


def load_model(path: str, dtype: str | None = None, debug: bool = False) -> Explainer:
    """A tf_lrp ``.npz`` network (``Explainer.load``) or a ``.keras`` file (``Explainer.from_keras``).

    Args:
        path: the model file.
        dtype: the compute dtype (default: the file's).
        debug: show the framework's start-up output (``--debug``).

    Returns:
        The explainer.

    Raises:
        InputError: the file does not exist or is of an unsupported kind.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"model file {path!r} does not exist")
    suffix = file.suffix.lower()
    options = {} if dtype is None else {"dtype": dtype}
    if suffix in (".npz", ".keras"):
        _start_framework(debug)
    from .explainer import Explainer

    if suffix == ".npz":
        if dtype is None:
            _check_stored_dtype(_io.load_npz(file), path)
        return Explainer.load(file, **options)
    if suffix == ".keras":
        from_keras = getattr(Explainer, "from_keras", None)
        if from_keras is None:
            raise InputError("this tf_lrp cannot read .keras files yet; convert the model with Explainer.from_weights")
        return from_keras(str(file), **options)
    raise InputError(
        f"unsupported model file {path!r}: expected a tf_lrp network .npz or a Keras .keras file "
        "(convert a PyTorch state_dict first: tf-lrp convert STATE_DICT.pt -o net.npz)"
    )


def _stored_dtype_problem(arrays: dict[str, np.ndarray], path: str) -> str | None:
    """Why the weights' stored dtype cannot be computed in as it is (None when it can)."""
    dtypes = sorted({str(a.dtype) for key, a in arrays.items() if key != MANIFEST_KEY and a.dtype.kind == "f"})
    wrong = [d for d in dtypes if d not in DTYPES]
    if not wrong:
        return None
    return (
        f"{path!r} stores {', '.join(wrong)} weights and tf_lrp computes in {' or '.join(DTYPES)}: pass --dtype "
        f"float32 (explain, evaluate), or convert the file once: tf-lrp convert {path} -o NET32.npz --dtype float32"
    )


def _check_stored_dtype(arrays: dict[str, np.ndarray], path: str) -> None:
    problem = _stored_dtype_problem(arrays, path)
    if problem is not None:
        raise InputError(problem)


def _is_network_file(path: Path) -> bool:
    """Whether an ``.npz`` holds a tf_lrp network (a damaged file is an ``InputError``, not False)."""
    return path.suffix.lower() == ".npz" and MANIFEST_KEY in _io.load_npz(path)


# --------------------------------------------------------------------------------------------
# Commands


def cmd_explain(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp explain``."""
    target = _parse_int_or(args.target, "predicted", "--target")
    batch_size = _parse_int_or(args.batch_size, "auto", "--batch-size")
    if batch_size == 0:
        raise InputError("--batch-size must be a positive integer or 'auto'; got 0")
    budget = _parse_bytes(args.memory_budget)
    data_path = Path(args.data)
    if not data_path.is_file():
        raise InputError(f"data file {args.data!r} does not exist")
    if data_path.suffix.lower() not in (".npy", ".npz", ".txt"):
        raise InputError(
            f"DATA must be an .npy or .npz file (or .txt, one text per line, for a text model); got {args.data!r}"
        )
    out = Path(args.out)
    paths = resumable.output_paths(out)
    existing = [path for key, path in paths.items() if key != "lock" and os.path.lexists(path)]
    if existing and not (args.resume or args.overwrite):
        raise InputError(
            f"{str(existing[0])!r} exists: pass --resume to continue that run or --overwrite to replace it"
        )
    if args.resume and not existing:
        _say(stdout, f"no run recorded in {str(paths['sidecar'])!r} yet: starting a new one")
    explainer = load_model(args.model, args.dtype, args.debug)
    if data_path.suffix.lower() == ".txt":
        data_path = _encode_texts(data_path, explainer, out)
        args.data = str(data_path)
        _say(stdout, f"tokenized {args.data!r} with the model's TextVectorization")
    vocabulary = _check_heatmap_options(args, explainer)
    compiling = _compile_on_first_sample(explainer, args, target)
    started = time.perf_counter()
    files: OutputFiles = explainer.explain_dataset(  # type: ignore[assignment]  # out= given: the written files
        str(data_path),
        batch_size=batch_size,
        out=out,
        method=args.method,
        targets=None if target == "predicted" else target,
        eps=args.eps,
        bias_factor=args.bias_factor,
        progress=False if args.no_progress else None,
        memory_budget=budget,
        resume=not args.overwrite,
    )
    elapsed = time.perf_counter() - started
    done = files.samples - files.resumed_from
    resumed = f" (resumed after {files.resumed_from})" if files.resumed_from else ""
    _say(
        stdout,
        f"explained {done} samples{resumed} in {elapsed:.1f} s ({done / max(elapsed, 1e-9):.0f} samples/s, "
        f"after {compiling:.1f} s compiling); "
        f"wrote {files.relevance}, {files.scores.name}, {files.targets.name}, "
        f"{files.initial_state_relevance.name}, {files.sidecar.name}")
    for written in _draw_heatmaps(args, explainer, files.load(), vocabulary):
        _say(stdout, f"wrote {written}")
    return EXIT_OK


def _encode_texts(path: Path, explainer: Explainer, out: Path) -> Path:
    """Tokenize a UTF-8 text file (one text per line) with the model's own tokenizer into ``OUT.ids.npy``.

    The ids file is written atomically and is the same for the same texts and model, so a
    resumed run rewrites it unchanged.
    """
    text = explainer.layout.inputs[0].text if len(explainer.layout.inputs) == 1 else None
    if text is None:
        raise InputError(
            f"{str(path)!r} is a text file, but this model has no TextVectorization input; pass token ids or "
            "features as .npy / .npz"
        )
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        raise InputError(f"{str(path)!r} is not UTF-8 text ({exc.reason})") from None
    if not lines:
        raise InputError(f"{str(path)!r} holds no text (one text per line)")
    ids = text.encode(lines).ids
    target = out.with_name(f"{out.name.removesuffix('.npy')}.ids.npy")
    with _io.atomic_write(target) as handle:
        np.save(handle, ids)
    return target


def _compile_on_first_sample(explainer: Explainer, args: argparse.Namespace, target: int | str) -> float:
    """Explain the first sample once, which compiles the method; return the seconds it took.

    The rate ``explain`` reports then measures explaining, not compiling (on TensorFlow one
    compiled function serves every batch size; JAX compiles once more per batch-size bucket).
    """
    x, mask = _load_data(args.data, rows=1)
    if len(x) == 0:
        return 0.0
    started = time.perf_counter()
    explainer.explain_dataset(  # the run's own code path: the same checks, messages and compiled function
        np.asarray(x),
        mask=mask,
        method=args.method,
        targets=None if target == "predicted" else target,
        eps=args.eps,
        bias_factor=args.bias_factor,
        progress=False,
    )
    return time.perf_counter() - started


def _read_vocabulary(path: str) -> list[str]:
    """Token names from a plain-text file, one per line (line i names token id i)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"--vocab file {path!r} does not exist")
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"--vocab file {path!r} is not UTF-8 text ({exc.reason})") from None


def _check_heatmap_options(args: argparse.Namespace, explainer: Explainer) -> list[str] | None:
    """Check ``--html/--png/--vocab/--heatmap-samples`` before explaining; return the vocabulary."""
    tokens = explainer.layout.embedding is not None
    if args.heatmap_samples < 1:
        raise InputError(f"--heatmap-samples must be a positive integer; got {args.heatmap_samples}")
    if (args.html or args.png) and explainer.layout.per_step:
        raise InputError(
            "--html / --png caption one score vector per sample; this network scores every step: run without them "
            "and read OUT.npy and OUT.explained.npy"
        )
    if args.html and not tokens:
        raise InputError("--html draws token models; this model reads features, use --png FILE.png")
    if args.png and tokens:
        raise InputError("--png draws time-series models; this is a token model, use --html FILE.html")
    if args.vocab is not None and not (tokens and args.html):
        raise InputError("--vocab names the tokens of an --html heatmap of a token model")
    if args.html and Path(args.html).suffix.lower() != ".html":
        raise InputError(f"--html must name a .html file; got {args.html!r}")
    if args.class_names is not None and not (args.html or args.png):
        raise InputError("--class-names names the classes in the captions of --html / --png")
    if args.dpi is not None and not 10 <= args.dpi <= 1200:
        raise InputError(f"--dpi must lie in [10, 1200]; got {args.dpi}")
    _check_figure("--png", args.png)
    _class_names(args.class_names, explainer.layout.num_outputs)
    if args.vocab is None:
        text = explainer.layout.inputs[0].text
        return list(text.vocabulary) if text is not None else None
    vocabulary = _read_vocabulary(args.vocab)
    _check_vocabulary_covers(args, vocabulary)
    return vocabulary


def _check_vocabulary_covers(args: argparse.Namespace, vocabulary: list[str]) -> None:
    """Refuse, before explaining, a ``--vocab`` that lacks a token id of the samples to be drawn."""
    x, mask = _load_data(args.data, rows=args.heatmap_samples)
    ids = np.asarray(x)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.size == 0:
        return  # not token ids: the explainer's own input check names the problem
    shown = ids[mask] if mask is not None else ids
    outside = shown[(shown < 0) | (shown >= len(vocabulary))] if shown.size else shown
    if outside.size:
        raise InputError(
            f"token id {int(outside.max() if outside.max() >= len(vocabulary) else outside.min())} has no line in "
            f"the --vocab file ({len(vocabulary)} lines): it must name every id of the first {len(ids)} samples "
            "(line i names token id i)"
        )


def _class_names(value: str | None, classes: int) -> list[str] | None:
    """``--class-names``: comma-separated names, or a UTF-8 file with one name per line."""
    if value is None:
        return None
    file = Path(value)
    names = _read_vocabulary(value) if file.is_file() else [name.strip() for name in value.split(",")]
    if len(names) != classes:
        raise InputError(f"--class-names must name all {classes} outputs of the model; got {len(names)}: {value!r}")
    return names


def _captions(
    args: argparse.Namespace, explainer: Explainer, targets: np.ndarray, scores: np.ndarray, labels: Any
) -> list[str]:
    """One caption per drawn sample: index, true class (when DATA has labels), predicted and explained class."""
    names = _class_names(args.class_names, explainer.layout.num_outputs)

    def name(index: int) -> str:
        return str(index) if names is None else names[index]

    captions = []
    for i, target in enumerate(targets):
        predicted = int(np.argmax(scores[i]))
        parts = [f"sample {i}"]
        if labels is not None and i < len(labels):
            parts.append(f"true {name(int(labels[i]))}")
        parts.append(f"predicted {name(predicted)}")
        if int(target) != predicted:
            parts.append(f"explained {name(int(target))}")
        captions.append(", ".join(parts) + f" (score {scores[i, int(target)]:.3g})")
    return captions


def _data_labels(path: str) -> np.ndarray | None:
    """The true classes stored beside ``x`` in an .npz (``labels`` or ``y``), if any."""
    if Path(path).suffix.lower() != ".npz":
        return None
    arrays = _io.load_npz(path)
    for key in ("labels", "y"):
        if key in arrays and arrays[key].ndim == 1 and arrays[key].dtype.kind in "iu":
            return arrays[key]
    return None


def _draw_heatmaps(
    args: argparse.Namespace, explainer: Explainer, results: dict[str, np.ndarray], vocabulary: list[str] | None
) -> list[str]:
    """Draw the first ``--heatmap-samples`` samples into ``--html`` / ``--png``; return the files written."""
    if not (args.html or args.png):
        return []
    x, mask = _load_data(args.data, rows=args.heatmap_samples)
    count = len(x)
    relevance = np.asarray(results["relevance"][:count], dtype=np.float64)
    targets, scores = np.asarray(results["targets"][:count]), np.asarray(results["scores"][:count])
    captions = _captions(args, explainer, targets, scores, _data_labels(args.data))
    title = f"tf_lrp {args.method} relevance ({Path(args.data).name})"
    if args.png:
        viz.timeseries_png(x, relevance, args.png, title=title, labels=captions, scale=args.heatmap_scale, dpi=args.dpi)
        return [args.png]
    embedding = explainer.layout.embedding
    if mask is None:
        mask = x != 0 if embedding is not None and embedding.mask_zero else np.ones(x.shape, dtype=bool)
    token_relevance = relevance.sum(axis=-1)
    rows, values = [], np.zeros(token_relevance.shape)
    for i in range(count):  # display only: at most --heatmap-samples rows
        ids = np.asarray(x[i])[mask[i]]
        values[i, : len(ids)] = token_relevance[i][mask[i]]
        rows.append([_token_name(int(t), vocabulary) for t in ids])
    viz.html_heatmap(rows, values, args.html, title=title, labels=captions, scale=args.heatmap_scale)
    return [args.html]


def _token_name(token: int, vocabulary: list[str] | None) -> str:
    if vocabulary is None:
        return str(token)
    if not 0 <= token < len(vocabulary):
        raise InputError(f"token id {token} has no line in the --vocab file ({len(vocabulary)} lines)")
    return vocabulary[token]


def cmd_convert(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp convert``."""
    source = Path(args.model)
    if not source.is_file():
        raise InputError(f"model file {args.model!r} does not exist")
    if not args.out.lower().endswith(".npz"):
        raise InputError(f"-o must name an .npz file; got {args.out!r}")
    suffix = source.suffix.lower()
    if suffix == ".keras":
        if args.cell is not None or args.bidirectional is not None or args.nonlinearity is not None:
            raise InputError(
                "--cell and --bidirectional are for PyTorch state_dicts (--nonlinearity for nn.RNN ones); "
                "a .keras file describes itself"
            )
        explainer = load_model(str(source), args.dtype, args.debug)
    elif _is_network_file(source):
        explainer = load_model(str(source), args.dtype, args.debug)
    elif suffix in (".pt", ".pth", ".npz"):
        _start_framework(args.debug)
        from .explainer import Explainer

        from_torch = getattr(Explainer, "from_torch", None)
        if from_torch is None:
            raise InputError("this tf_lrp cannot convert PyTorch state_dicts yet")
        options: dict[str, Any] = {}
        if args.cell is not None:
            options["cell"] = args.cell
        if args.bidirectional is not None:
            options["bidirectional"] = args.bidirectional
        if args.nonlinearity is not None:
            options["nonlinearity"] = args.nonlinearity
        with warnings.catch_warnings(record=True) as notes:  # the state_dict's head assumption: shown, not raised
            warnings.simplefilter("always", UserWarning)
            explainer = from_torch(str(source), dtype=args.dtype, **options)
        for note in notes:
            _say(sys.stderr, f"tf-lrp convert: note: {note.message}")
    else:
        raise InputError(
            f"unsupported model file {args.model!r}: expected .keras, or a PyTorch state_dict (.pt, .pth, .npz)"
        )
    explainer.save(args.out)
    _say(stdout, f"wrote {args.out}\n{explainer.layout.describe()}")
    return EXIT_OK


def _read_network(path: str) -> tuple[dict[str, np.ndarray], list[str]]:
    arrays = _io.load_npz(path)
    problems = []
    if MANIFEST_KEY not in arrays:
        problems.append(
            f"no {MANIFEST_KEY!r} entry: not a tf_lrp network file (make one with 'tf-lrp convert' or Explainer.save)"
        )
    return arrays, problems


def cmd_validate(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp validate``: the layout and every problem found."""
    from .layout import check_weights, validate_manifest

    arrays, problems = _read_network(args.network)
    if not problems:
        try:
            manifest = json.loads(str(arrays.pop(MANIFEST_KEY)))
        except json.JSONDecodeError as exc:
            problems.append(f"the stored manifest is not valid JSON ({exc})")
        else:
            try:
                layout = validate_manifest(manifest)
            except LayoutError as exc:
                problems.append(f"manifest: {exc}")
            else:
                _say(stdout, layout.describe())
                try:
                    check_weights(layout, arrays)
                except (LayoutError, InputError) as exc:
                    problems.append(f"weights: {exc}")
                else:
                    dtype_problem = _stored_dtype_problem(arrays, args.network)
                    if dtype_problem is not None:
                        problems.append(f"weights: {dtype_problem}")
    for problem in problems:
        _say(stdout, f"problem: {problem}")
    _say(stdout, f"{args.network}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return EXIT_PROBLEMS if problems else EXIT_OK


def _describe_input(spec: Any) -> str:
    """One line of ``tf-lrp info`` per network input."""
    if spec.tokens:
        return f"input {spec.name!r}: (batch, time) token ids"
    masked = "" if spec.mask_value is None else f", a step is masked where every feature is {spec.mask_value}"
    return f"input {spec.name!r}: (batch, time, {spec.features}) features{masked}"


def cmd_info(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp info``."""
    explainer = load_model(args.network, debug=args.debug) if Path(args.network).suffix.lower() == ".npz" else None
    if explainer is None:
        raise InputError(f"info reads tf_lrp network .npz files; got {args.network!r} (convert it first)")
    layout = explainer.layout
    parameters = sum(int(w.size) for w in explainer.weights)
    name = layout.manifest.get("name")
    lines = [
        f"file: {args.network} ({os.path.getsize(args.network):,} bytes)",
        *([f"name: {name}"] if name else []),
        layout.describe(),
        *(_describe_input(spec) for spec in layout.inputs),
        f"outputs: {layout.num_outputs}" + (" per time step: scores (batch, time, outputs)" if layout.per_step else ""),
        f"parameters: {parameters:,} ({explainer.dtype})",
        f"working set per sample and 100 steps: {explainer.working_set_bytes(100):,} bytes",
        f"fingerprint: {explainer.fingerprint}",
    ]
    _say(stdout, "\n".join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Demo


def demo_files() -> tuple[Path, Path, dict[str, Any]]:
    """The bundled model, data set and their description (``tf_lrp/_demo``)."""
    root = importlib.resources.files("tf_lrp._demo")
    model, data, about = root / "model.npz", root / "data.npz", root / "demo.json"
    if not (model.is_file() and data.is_file()):
        raise InputError("the bundled demo files are missing; regenerate them with scripts/train_demo.py")
    return Path(str(model)), Path(str(data)), json.loads(about.read_text()) if about.is_file() else {}


def token_names(vocabulary: int) -> list[str]:
    """Display names of the demo tokens: padding, three keywords, fillers."""
    return ["<pad>", "KEY-A", "KEY-B", "KEY-C", *(f"w{i}" for i in range(4, vocabulary))]


def cmd_demo(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp demo``: explain the bundled data set and report speed, conservation, ground truth."""
    model_path, data_path, about = demo_files()
    data = _io.load_npz(data_path)
    count = len(data["x"]) if args.samples is None else args.samples
    if not 1 <= count <= len(data["x"]):
        raise InputError(f"--samples must lie in [1, {len(data['x'])}]; got {count}")
    x, lengths = data["x"][:count].astype(np.int32), data["lengths"][:count]
    keyword, labels = data["keyword_position"][:count], data["labels"][:count]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    _start_framework(args.debug)
    from .explainer import Explainer

    explainer = Explainer.load(model_path)
    progress = False if args.no_progress else None
    explainer.explain(x[:8], lengths=lengths[:8])  # compile once, outside the timing
    started = time.perf_counter()
    files: OutputFiles = explainer.explain_dataset(  # type: ignore[assignment]  # out= given: the written files
        x, lengths=lengths, out=out_dir / "relevances.npy", progress=progress, resume=False
    )
    elapsed = time.perf_counter() - started
    results = files.load()
    token_relevance = np.asarray(results["relevance"]).sum(axis=-1)
    predicted = np.asarray(results["targets"])
    hits = token_relevance.argmax(axis=1) == keyword
    check = min(count, DEMO_CONSERVATION_SAMPLES)
    conserving: Explanation = explainer.explain_dataset(  # type: ignore[assignment]  # no out=: in memory
        x[:check], lengths=lengths[:check], bias_factor=1.0, progress=False)
    names = token_names(int(about.get("vocabulary", int(x.max()) + 1)))
    shown = range(min(DEMO_HEATMAP_SAMPLES, count))
    viz.html_heatmap(
        [[names[t] for t in x[i, : lengths[i]]] for i in shown],
        token_relevance[list(shown)],
        out_dir / "heatmap.html",
        title="tf_lrp demo: LRP relevance of the predicted class (planted keyword task)",
        labels=[
            f"sample {i}: label {labels[i]}, predicted {predicted[i]}, keyword at {keyword[i]}, "
            f"most relevant step {token_relevance[i].argmax()}"
            for i in shown
        ],
    )
    summary = {
        "samples": count,
        "seconds": round(elapsed, 3),
        "samples_per_second": round(count / max(elapsed, 1e-9), 1),
        "model_accuracy": float((predicted == labels).mean()),
        "top_relevance_on_keyword": float(hits.mean()),
        "max_conservation_error_bias_factor_1": float(conserving.conservation_error.max()),
        "dtype": explainer.dtype,
    }
    _io.write_json(out_dir / "summary.json", summary)
    _say(
        stdout,
        "\n".join(
            [
                f"task: {about.get('task', 'planted keyword')}",
                f"model: {about.get('model', explainer.layout.describe())}",
                f"explained {count} samples with LRP (eps=1e-3, bias_factor=0) in {elapsed:.2f} s: "
                f"{summary['samples_per_second']:.0f} samples/s",
                f"model accuracy: {summary['model_accuracy']:.1%}",
                f"ground truth: the most relevant token is the planted keyword in {hits.mean():.1%} of samples",
                f"conservation (bias_factor=1, {check} samples, {explainer.dtype}): max relative error "
                f"{summary['max_conservation_error_bias_factor_1']:.2e}",
                f"wrote {files.relevance} (+ scores, targets, sidecar), {out_dir / 'heatmap.html'}, "
                f"{out_dir / 'summary.json'}",
            ]
        ))
    return EXIT_OK


def _load_data(path: str, rows: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``x`` and its (B, T) mask (from ``mask`` or ``lengths``) from an .npy / .npz file.

    With ``rows``, only the first ``rows`` samples (an ``.npy`` is memory-mapped, not read whole).
    """
    if rows is not None:
        x, mask = _load_data_file(path, mmap=True)
        return np.asarray(x[:rows]), None if mask is None else np.asarray(mask[:rows])
    return _load_data_file(path, mmap=False)


def _load_data_file(path: str, mmap: bool) -> tuple[np.ndarray, np.ndarray | None]:
    file = Path(path)
    if not file.is_file():
        raise InputError(f"data file {path!r} does not exist")
    if file.suffix.lower() == ".npz":
        arrays = _io.load_npz(file)
        if "x" not in arrays:
            raise InputError(f"{path!r} has no array 'x' (found {sorted(arrays)})")
        x = arrays["x"]
        if "mask" in arrays:
            return x, arrays["mask"].astype(bool)
        if "lengths" in arrays:
            return x, np.arange(x.shape[1])[None, :] < arrays["lengths"][:, None]
        return x, None
    if file.suffix.lower() != ".npy":
        raise InputError(f"DATA must be an .npy or .npz file; got {path!r}")
    return _io.load_npy(file, mmap=mmap), None


def _check_figure(option: str, path: str | None) -> None:
    """Refuse a figure path of an unknown format, or any figure without matplotlib, before work starts."""
    if path is None:
        return
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(f"{option} must name a .png, .svg or .pdf file (the extension sets the format); got {path!r}")
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError(f"{option} needs matplotlib: pip install 'tf_lrp[viz]'")


def _evaluation_inputs(
    args: argparse.Namespace,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``x``, its mask, and the reference data and mask of ``tf-lrp evaluate``, checked."""
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be a positive integer; got {args.steps}")
    if args.samples is not None and args.samples < 1:
        raise InputError(f"--samples must be a positive integer; got {args.samples}")
    if args.dpi is not None and not 10 <= args.dpi <= 1200:
        raise InputError(f"--dpi must lie in [10, 1200]; got {args.dpi}")
    x, mask = _load_data(args.data, rows=args.samples)
    reference, reference_mask = (None, None) if args.reference_data is None else _load_data(args.reference_data)
    return np.asarray(x), mask, reference, reference_mask


#: Python keywords of tf_lrp.evaluate that ``tf-lrp evaluate`` spells as flags in its errors.
_EVALUATE_FLAGS = {"mode": "--mode", "token": "--token", "normalize": "--normalize", "data": "--reference-data"}


def _as_flags(message: str) -> str:
    """``mode="mean"`` -> ``--mode mean`` (and token=, normalize=, data=) in an evaluate error."""

    def flag(match: Any) -> str:
        return f"{_EVALUATE_FLAGS[match.group(1)]} {match.group(3)}".rstrip()

    return re.sub(r"\b(mode|token|normalize|data)=([\"']?)([A-Za-z_0-9.\-]*)\2", flag, message)


def cmd_evaluate(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp evaluate``: curves of one relevance file, or a comparison of ``--methods``."""
    try:
        return _evaluate(args, stdout)
    except InputError as exc:
        raise InputError(_as_flags(str(exc))) from exc


def _evaluate(args: argparse.Namespace, stdout: TextIO) -> int:
    from . import evaluate

    target = _parse_int_or(args.target, "predicted", "--target")
    if args.methods is not None:
        return _evaluate_methods(args, stdout, None if target == "predicted" else int(target))
    if args.relevance is None:
        raise InputError("pass a RELEVANCE .npy file, or --methods M1,M2 to explain and compare methods")
    relevance_file = Path(args.relevance)
    if not relevance_file.is_file() or relevance_file.suffix.lower() != ".npy":
        raise InputError(f"RELEVANCE must be an existing .npy file; got {args.relevance!r}")
    _check_figure("--png", args.png)
    x, mask, reference, reference_mask = _evaluation_inputs(args)
    try:
        relevance = np.load(relevance_file, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"RELEVANCE {args.relevance!r} is not a readable .npy file ({exc})") from None
    if args.samples is not None:
        relevance = relevance[: args.samples]
    relevance = np.asarray(relevance)
    if relevance.shape[:1] != x.shape[:1]:
        raise InputError(
            f"RELEVANCE {args.relevance!r} has {relevance.shape[0] if relevance.ndim else 0} samples but DATA has "
            f"{len(x)}: pass the relevance of this data set (tf-lrp explain MODEL DATA -o REL.npy)"
        )
    explainer = load_model(args.model, args.dtype, args.debug)
    options: dict[str, Any] = {
        "mode": args.mode, "steps": args.steps, "unit": args.unit, "target": None if target == "predicted" else target,
        "mask": mask, "value": args.value, "token": args.token, "seed": args.seed, "data": reference,
        "data_mask": reference_mask, "normalize": args.normalize,
    }  # fmt: skip
    results = {
        order: evaluate.perturbation_curve(explainer, x, relevance, order=order, **options) for order in args.order
    }
    first = next(iter(results.values()))
    payload = {
        "mode": first.mode,
        "unit": args.unit,
        "normalize": first.normalize,
        "samples": int(x.shape[0]),
        "steps": len(first.fractions) - 1,
        "fractions": first.fractions.tolist(),
        "orders": {
            order: {
                "mean_auc": r.mean_auc,
                "sem_auc": r.sem_auc,
                "mean_curve": r.mean_curve.tolist(),
                "sem_curve": r.sem_curve.tolist(),
                "auc": r.auc.tolist(),
            }
            for order, r in results.items()
        },
    }
    _io.write_json(args.out, payload)
    if args.png:
        labels = {"morf": "MoRF", "lrf": "LRF", "random": "random order"}
        viz.plot_curves(
            {labels[order]: r for order, r in results.items()},
            args.png,
            title=f"Perturbation curves ({first.mode}, {Path(args.relevance).name})",
            dpi=args.dpi,
        )
    summary = ", ".join(f"{order} AUC {r.mean_auc:.4g} ± {r.sem_auc:.2g}" for order, r in results.items())
    _say(stdout, f"{summary} ({first.normalize}); wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return EXIT_OK


def _relevance_key(
    explainer: Explainer, x: np.ndarray, mask: np.ndarray | None, target: int | None, seed: int
) -> dict[str, Any]:
    """What a cached relevance depends on: the model, the data (digest), the target, the seed."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(str((x.shape, x.dtype.str)).encode())
    if mask is not None:
        digest.update(np.packbits(np.asarray(mask, dtype=bool)).tobytes())
    return {"model": explainer.fingerprint, "data": digest.hexdigest(), "target": target, "seed": seed}


def _cached_relevances(
    out: Path, methods: list[str], key: dict[str, Any], batch_steps: tuple[int, ...]
) -> dict[str, tuple[np.ndarray, float]]:
    """Relevances a previous ``--methods`` run left in ``out`` for the same model, data, target and seed."""
    found = {}
    for name in methods:
        array, record = out / f"relevance.{name}.npy", out / f"relevance.{name}.json"
        if not (array.is_file() and record.is_file()):
            continue
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))
            relevance = np.load(array, allow_pickle=False)
        except (OSError, ValueError, EOFError, UnicodeDecodeError):
            continue  # unreadable: explain again (and overwrite it)
        if not isinstance(recorded, dict) or any(recorded.get(k) != v for k, v in key.items()):
            continue
        if relevance.shape[:2] != tuple(batch_steps) or relevance.dtype.kind != "f":
            continue
        seconds = recorded.get("seconds")
        found[name] = (relevance, float(seconds) if isinstance(seconds, (int, float)) else float("nan"))
    return found


def _evaluate_methods(args: argparse.Namespace, stdout: TextIO, target: int | None) -> int:
    """``tf-lrp evaluate --methods``: explain with each method, compare, write table, figure, relevances."""
    from . import evaluate

    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = [name for name in methods if name not in METHOD_NAMES]
    if not methods or unknown:
        raise InputError(f"--methods takes names from {sorted(METHOD_NAMES)} separated by commas; got {args.methods!r}")
    if args.relevance is not None:
        raise InputError("--methods explains DATA itself: drop RELEVANCE (or drop --methods to evaluate that file)")
    if args.order != ["morf", "lrf", "random"]:
        raise InputError("--order is not used with --methods (the comparison computes MoRF, LRF and random order)")
    out = Path(args.out)
    if out.suffix.lower() == ".json" or (out.exists() and not out.is_dir()):
        raise InputError(f"with --methods, -o names a directory for the report; got {args.out!r}")
    figure = args.png if args.png is not None else str(out / "comparison.png")
    if args.png is not None:
        _check_figure("--png", args.png)
    drawing = importlib.util.find_spec("matplotlib") is not None
    x, mask, reference, reference_mask = _evaluation_inputs(args)
    explainer = load_model(args.model, args.dtype, args.debug)
    out.mkdir(parents=True, exist_ok=True)
    key = _relevance_key(explainer, x, mask, target, args.seed)
    cached = {} if args.no_cache else _cached_relevances(out, methods, key, x.shape[:2])
    comparison = evaluate.compare(
        explainer, x, methods, target=target, mask=mask, mode=args.mode, unit=args.unit,
        steps=evaluate.DEFAULT_COMPARE_STEPS if args.steps is None else args.steps, normalize=args.normalize,
        data=reference, data_mask=reference_mask, seed=args.seed,
        explain_options={"random": {"seed": args.seed}},
        relevances={name: relevance for name, (relevance, _) in cached.items()},
        seconds={name: seconds for name, (_, seconds) in cached.items()},
    )  # fmt: skip
    written = [out / "comparison.md", out / "comparison.json"]
    with _io.atomic_write(written[0], "w") as handle:
        handle.write(comparison.markdown())
    _io.write_json(written[1], {"model": args.model, "data": args.data, **comparison.to_json()})
    for name, result in comparison.methods.items():
        if name in cached:
            continue
        path = out / f"relevance.{name}.npy"
        with _io.atomic_write(path, "wb") as handle:
            np.save(handle, result.relevance)
        _io.write_json(path.with_suffix(".json"), {**key, "method": name, "seconds": result.seconds})
        written.append(path)
    if cached:
        _say(stdout, f"reused cached relevances of {', '.join(cached)} (--no-cache recomputes them)")
    if drawing:
        title = f"{Path(args.model).name} on {Path(args.data).name}"
        viz.plot_comparison(comparison, figure, title=title, dpi=args.dpi)
        written.append(Path(figure))
    _say(stdout, comparison.markdown().rstrip())
    note = "" if drawing else " (no figure: pip install 'tf_lrp[viz]')"
    _say(stdout, "wrote " + ", ".join(str(p) for p in written) + note)
    return EXIT_OK


#: How the library's messages name Python arguments, and the command-line flags that mean the same.
_FLAGS = (
    (r"\b[Pp]ass resume=False \(--overwrite\)", "pass --overwrite"),
    (r"\(resume=True, tf-lrp explain --resume\)", "(--resume)"),
    (r"\bresume=False\b", "--overwrite"),
    (r"\bresume=True\b", "--resume"),
    (r"\bpass cell='(lstm|gru)' or None\b", r"pass --cell \1 or leave --cell out"),
    (r"\bcell='(lstm|gru)'", r"--cell \1"),
    (r"\bdtype='(float32|float64)'", r"--dtype \1"),
    (r"\bpass bidirectional=False\b", "leave out --bidirectional"),
    (r"\bbidirectional=True\b", "--bidirectional"),
    (r" \(-o / out=\)", " (-o)"),
    (r"^out must name", "-o/--out must name"),
)


def in_flags(message: str) -> str:
    """A library message with its Python argument names replaced by the command-line flags."""
    for pattern, flag in _FLAGS:
        message = re.sub(pattern, flag, message)
    return message


def _report_warnings(caught: list[warnings.WarningMessage], command: str, stderr: TextIO) -> None:
    """tf_lrp's warnings as one line each; any other warning as Python shows it."""
    for item in list(caught):  # showwarning appends to ``caught`` while it is being recorded
        if issubclass(item.category, TfLrpWarning):
            _say(stderr, f"tf-lrp {command}: warning: {in_flags(str(item.message))}")
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


COMMANDS = {
    "explain": cmd_explain,
    "convert": cmd_convert,
    "validate": cmd_validate,
    "info": cmd_info,
    "demo": cmd_demo,
    "evaluate": cmd_evaluate,
}


# --------------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run ``tf-lrp``; return the exit code (user mistakes: one line on stderr, exit code 2).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        stdout: where results go (default ``sys.stdout``).
        stderr: where errors go (default ``sys.stderr``).

    Returns:
        0 on success, 1 when ``validate`` found problems, 2 for a user mistake.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the message
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TfLrpWarning)
            try:
                return COMMANDS[args.command](args, stdout)
            finally:
                _report_warnings(caught, args.command, stderr)
    except (TfLrpError, OSError) as exc:
        if getattr(args, "debug", False):
            traceback.print_exc(file=stderr)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _say(stderr, f"tf-lrp {args.command}: error: {in_flags(message)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(stderr, "tf-lrp: interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
