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
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from . import _io, viz
from ._version import __version__
from .errors import InputError, LayoutError, TfLrpError

if TYPE_CHECKING:
    from .explainer import Explainer

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

DATA is an .npy (memory-mapped) or an .npz with key x and optional lengths or mask.
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

Removes time steps (or single features with --unit feature) in the order of the relevance
(RELEVANCE: .npy of shape (B, T) or (B, T, D), e.g. the output of tf-lrp explain), re-scores
after each removal step and writes the mean curve and AUC of every --order into OUT.json
(lower MoRF and higher LRF AUC are better; random is the baseline).""",
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
    explain.add_argument("data", metavar="DATA", help=".npy, or .npz with x and optional lengths/mask")
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
        "--png", default=None, metavar="FILE.png", help="time-series models: PNG heatmap of samples (needs matplotlib)"
    )
    explain.add_argument(
        "--heatmap-samples", type=int, default=HEATMAP_SAMPLES, metavar="N", help="samples drawn (default 8)"
    )
    explain.add_argument("--vocab", default=None, metavar="FILE", help="--html: token names, one per line (id = line)")

    convert = command("convert", "convert a Keras model or PyTorch state_dict into a tf_lrp network .npz")
    convert.add_argument("model", metavar="MODEL", help=".keras file, or PyTorch state_dict (.pt/.pth/.npz)")
    convert.add_argument("-o", "--out", required=True, metavar="NET.npz", help="output network file")
    convert.add_argument("--cell", choices=("lstm", "gru"), default=None, help="state_dict: the cell kind")
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

    evaluate = command("evaluate", "perturbation curves and AUC of a relevance file (MoRF / LRF / random)")
    evaluate.add_argument("model", metavar="MODEL", help="a .keras file or a tf_lrp .npz network")
    evaluate.add_argument("data", metavar="DATA", help=".npy, or .npz with x and optional lengths/mask")
    evaluate.add_argument("relevance", metavar="RELEVANCE", help=".npy relevance (B, T) or (B, T, D)")
    evaluate.add_argument("-o", "--out", required=True, metavar="OUT.json", help="result file")
    evaluate.add_argument("--order", nargs="+", choices=("morf", "lrf", "random"), default=["morf", "lrf", "random"])
    evaluate.add_argument(
        "--mode",
        choices=("zero", "constant", "mean", "random_draw", "interpolate", "token"),
        default=None,
        help="replacement (default: zero, token for token models)",
    )
    evaluate.add_argument("--value", type=float, default=0.0, help="--mode constant: the fill value")
    evaluate.add_argument("--token", type=int, default=0, help="--mode token: the replacement token id")
    evaluate.add_argument("--unit", choices=("step", "feature"), default="step")
    evaluate.add_argument("--steps", type=int, default=None, help="removal steps (default: one unit per step)")
    evaluate.add_argument(
        "--target", default="predicted", metavar="N|predicted", help="output unit to score (default predicted)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the random order and draws")
    evaluate.add_argument("--png", default=None, metavar="FILE.png", help="also plot the curves (needs matplotlib)")
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
        result = int(float(number) * scale)
    except ValueError:
        raise InputError(f"--memory-budget must be bytes such as 500000000, 512M or 2G; got {value!r}") from None
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


def _is_network_file(path: Path) -> bool:
    if path.suffix.lower() != ".npz":
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return MANIFEST_KEY in data.files
    except (OSError, ValueError):
        return False


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
    if data_path.suffix.lower() not in (".npy", ".npz"):
        raise InputError(f"DATA must be an .npy or .npz file; got {args.data!r}")
    out = Path(args.out)
    sidecar = out.with_suffix(".json")
    if (out.exists() or sidecar.exists()) and not (args.resume or args.overwrite):
        raise InputError(f"{args.out!r} exists: pass --resume to continue that run or --overwrite to replace it")
    if args.resume and not sidecar.exists():
        raise InputError(f"--resume: there is no run to continue ({str(sidecar)!r} does not exist)")
    explainer = load_model(args.model, args.dtype, args.debug)
    vocabulary = _check_heatmap_options(args, explainer)
    compiling = _compile_on_first_sample(explainer, args, target)
    started = time.perf_counter()
    files = explainer.explain_dataset(
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
    if args.html and not tokens:
        raise InputError("--html draws token models; this model reads features, use --png FILE.png")
    if args.png and tokens:
        raise InputError("--png draws time-series models; this is a token model, use --html FILE.html")
    if args.vocab is not None and not (tokens and args.html):
        raise InputError("--vocab names the tokens of an --html heatmap of a token model")
    for option, suffix in (("html", ".html"), ("png", ".png")):
        value = getattr(args, option)
        if value and Path(value).suffix.lower() != suffix:
            raise InputError(f"--{option} must name a {suffix} file; got {value!r}")
    if args.png and importlib.util.find_spec("matplotlib") is None:
        raise InputError("--png needs matplotlib: pip install 'tf_lrp[viz]'")
    if args.vocab is None:
        return None
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
    captions = [
        f"sample {i}: target {targets[i]}, score {scores[i, targets[i]]:.4g}" for i in range(count)
    ]
    title = f"tf_lrp {args.method} relevance ({Path(args.data).name})"
    if args.png:
        viz.timeseries_png(x, relevance, args.png, title=title, labels=captions)
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
    viz.html_heatmap(rows, values, args.html, title=title, labels=captions)
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
        if args.cell is not None or args.bidirectional is not None:
            raise InputError("--cell and --bidirectional are for PyTorch state_dicts; a .keras file describes itself")
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
        explainer = from_torch(str(source), dtype=args.dtype, **options)
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
    for problem in problems:
        _say(stdout, f"problem: {problem}")
    _say(stdout, f"{args.network}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return EXIT_PROBLEMS if problems else EXIT_OK


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
        f"input: {'(batch, time) token ids' if layout.embedding else f'(batch, time, {layout.input_size}) features'}",
        f"outputs: {layout.num_outputs}",
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
    files = explainer.explain_dataset(
        x, lengths=lengths, out=out_dir / "relevances.npy", progress=progress, resume=False
    )
    elapsed = time.perf_counter() - started
    results = files.load()
    token_relevance = np.asarray(results["relevance"]).sum(axis=-1)
    predicted = np.asarray(results["targets"])
    hits = token_relevance.argmax(axis=1) == keyword
    check = min(count, DEMO_CONSERVATION_SAMPLES)
    conserving = explainer.explain_dataset(x[:check], lengths=lengths[:check], bias_factor=1.0, progress=False)
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
    try:
        return np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None), None
    except ValueError as exc:
        raise InputError(f"{path!r} cannot be read without unpickling ({exc})") from exc


def cmd_evaluate(args: argparse.Namespace, stdout: TextIO) -> int:
    """``tf-lrp evaluate``."""
    from . import evaluate

    target = _parse_int_or(args.target, "predicted", "--target")
    x, mask = _load_data(args.data)
    relevance_file = Path(args.relevance)
    if not relevance_file.is_file() or relevance_file.suffix.lower() != ".npy":
        raise InputError(f"RELEVANCE must be an existing .npy file; got {args.relevance!r}")
    relevance = np.load(relevance_file, allow_pickle=False)
    explainer = load_model(args.model, args.dtype, args.debug)
    mode = args.mode or ("token" if np.asarray(x).ndim == 2 else "zero")
    results = {
        order: evaluate.perturbation_curve(
            explainer,
            x,
            relevance,
            order=order,
            mode=mode,
            steps=args.steps,
            unit=args.unit,
            target=None if target == "predicted" else target,
            mask=mask,
            value=args.value,
            token=args.token,
            seed=args.seed,
        )
        for order in args.order
    }
    payload = {
        "mode": mode,
        "unit": args.unit,
        "samples": int(np.asarray(x).shape[0]),
        "fractions": next(iter(results.values())).fractions.tolist(),
        "orders": {
            order: {"mean_auc": r.mean_auc, "mean_curve": r.mean_curve.tolist(), "auc": r.auc.tolist()}
            for order, r in results.items()
        },
    }
    _io.write_json(args.out, payload)
    if args.png:
        viz.plot_curves({order.upper(): r for order, r in results.items()}, args.png, title=f"Perturbation ({mode})")
    summary = ", ".join(f"{order} AUC {r.mean_auc:.4g}" for order, r in results.items())
    _say(stdout, f"{summary}; wrote {args.out}" + (f" and {args.png}" if args.png else ""))
    return EXIT_OK


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
        return COMMANDS[args.command](args, stdout)
    except (TfLrpError, OSError) as exc:
        if getattr(args, "debug", False):
            traceback.print_exc(file=stderr)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _say(stderr, f"tf-lrp {args.command}: error: {message}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say(stderr, "tf-lrp: interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
