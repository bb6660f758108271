"""The facade: :class:`Explainer` and its :class:`Explanation`.

An explainer holds configuration only: the validated layout, the weights in Keras order (as
numpy arrays of the chosen dtype) and the compiled functions it has built. It validates every
user argument, then hands plain arrays to a compiled core function from :mod:`tf_lrp.methods`.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import _io, backend, conservation, dataset
from .errors import InputError, LayoutError
from .layout import (
    GATES,
    DenseSpec,
    LayerSpec,
    NetworkLayout,
    RecurrentSpec,
    check_weights,
    fingerprint,
    to_manifest,
    validate_manifest,
)
from .methods import EXTRA_INPUTS, METHODS, scores
from .nodes import NODES
from .rules import RuleSet, as_ruleset, check_lrp_numbers
from .text import as_texts

DTYPES = ("float32", "float64")
#: Default memory budget of one compiled call's working set, in bytes (see ``working_set_bytes``).
DEFAULT_MEMORY_BUDGET = 1 << 30
MANIFEST_KEY = "__manifest__"
#: Samples an Explanation shows in a notebook (``_repr_html_``).
_HTML_SAMPLES = 8


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Explanation:
    """The result of :meth:`Explainer.explain`.

    Attributes:
        relevance: (B, T, D) relevance per input dimension (for token models: per embedding
            dimension); exactly 0 on masked (padded) steps. A tuple with one such array per
            input for a network with several inputs.
        scores: (B, C) the last dense layer's pre-activation (before any softmax); (B, T, C)
            for a network with per-step outputs.
        target: (B,) the explained output unit.
        initial_state_relevance: (B,) LRP relevance that reached the zero initial states (zero
            when bias_factor = 0, and for gradient methods, which have no such share).
        method: the method name.
        eps: the LRP stabiliser used.
        bias_factor: the LRP bias factor used.
        tokens: when ``x`` was raw texts (a model with ``TextVectorization``): per sample, its
            tokens (step ``t`` of ``token_relevance`` is ``tokens[b][t]``); a tuple per input
            for several inputs (None for an input given as ids); else None.
    """

    relevance: Any  # np.ndarray, or a tuple of them (one per input)
    scores: np.ndarray
    target: np.ndarray
    initial_state_relevance: np.ndarray
    method: str
    eps: float
    bias_factor: float
    mask: np.ndarray | None = field(default=None, repr=False)
    explained: np.ndarray | None = field(default=None, repr=False)
    tokens: Any = field(default=None, repr=False)

    @property
    def explained_score(self) -> np.ndarray:
        """(B,) ``scores[b, target[b]]`` (for per-step outputs: summed over the explained steps)."""
        if self.explained is not None:
            return self.explained
        return self.scores[np.arange(len(self.target)), self.target]

    @property
    def token_relevance(self) -> Any:
        """(B, T) relevance per time step (token): the sum over the feature axis (a tuple per input)."""
        if isinstance(self.relevance, tuple):
            return tuple(r.sum(axis=-1) for r in self.relevance)
        return self.relevance.sum(axis=-1)

    @property
    def relevance_sum(self) -> np.ndarray:
        """(B,) the relevance of every input of each sample, summed."""
        parts = self.relevance if isinstance(self.relevance, tuple) else (self.relevance,)
        return np.sum([r.reshape(len(r), -1).sum(axis=1) for r in parts], axis=0)

    @property
    def absorbed(self) -> np.ndarray:
        """(B,) the share of the explained score absorbed by biases and stabilisers.

        ``explained_score - relevance.sum() - initial_state_relevance``; 0 up to round-off
        for LRP with bias_factor = 1.
        """
        total = self.relevance_sum + self.initial_state_relevance
        return self.explained_score - total

    @property
    def conservation_error(self) -> np.ndarray:
        """(B,) ``|absorbed| / max(|explained_score|, tiny)``: relative conservation error."""
        scale = np.maximum(np.abs(self.explained_score), np.finfo(self.scores.dtype).tiny)
        return np.abs(self.absorbed) / scale

    def _repr_html_(self) -> str:
        """Notebooks show the first samples as a relevance heatmap over their valid steps."""
        from ._html import heatmap_fragment

        steps_all, mask, which = self.token_relevance, self.mask, ""
        if isinstance(steps_all, tuple):  # several inputs: the first one
            steps_all, which = steps_all[0], f" of input 0 (of {len(steps_all)})"
            mask = mask[0] if isinstance(mask, tuple) else mask
        shown = min(len(self.target), _HTML_SAMPLES)
        steps = np.asarray(steps_all[:shown])
        valid = np.ones(steps.shape, dtype=bool) if mask is None else np.asarray(mask[:shown], dtype=bool)
        tokens = self.tokens[0] if isinstance(self.tokens, tuple) and which else self.tokens
        rows = [
            [tokens[i][t] if tokens is not None and t < len(tokens[i]) else f"t{t}" for t in np.flatnonzero(valid[i])]
            for i in range(shown)
        ]
        values = np.zeros(steps.shape)
        for i in range(shown):
            values[i, : int(valid[i].sum())] = steps[i][valid[i]]
        score = self.explained_score
        labels = [f"sample {i}: target {self.target[i]}, score {score[i]:.4g}" for i in range(shown)]
        more = "" if shown == len(self.target) else f", first {shown} of {len(self.target)} samples"
        return heatmap_fragment(rows, values, f"{self.method} relevance per time step{which}{more}", labels)

    def conservation_report(self) -> str:
        """A short human-readable summary of conservation over the batch.

        Returns:
            One line: the explained score, relevance, initial-state and absorbed sums and the
            largest relative conservation error.
        """
        return (
            f"{self.method}: explained score sum {self.explained_score.sum():.6g}, relevance sum "
            f"{self.relevance_sum.sum():.6g}, initial states {self.initial_state_relevance.sum():.6g}, "
            f"absorbed {self.absorbed.sum():.6g} (bias_factor={self.bias_factor:g}); max relative "
            f"conservation error {self.conservation_error.max():.3g}"
        )


# --------------------------------------------------------------------------------------------
# Building from a weight list


def _infer_layers(
    arrays: Sequence[np.ndarray],
    cell: str,
    bidirectional: bool,
    reset_after: bool,
    dense_activations: Sequence[str] | None,
) -> list[LayerSpec]:
    """Read the layer structure of ``Sequential([RNN..., Dense...])`` off its weight list."""
    gates = len(GATES[cell])
    directions = 2 if bidirectional else 1
    layers: list[LayerSpec] = []
    position = 0
    count = len(arrays)

    def shape(i: int) -> tuple[int, ...]:
        return tuple(np.shape(arrays[i])) if i < count else ()

    while position < count and not any(isinstance(layer, DenseSpec) for layer in layers):
        kernel, recurrent = shape(position), shape(position + 1)
        if len(recurrent) != 2 or len(kernel) != 2:
            break
        units = recurrent[0]
        if recurrent[1] != gates * units:
            hint = _recurrent_hint(cell, recurrent, len(layers))
            if hint:
                raise LayoutError(f"layer {len(layers)}: recurrent_kernel has shape {recurrent}. {hint}")
            break
        per_direction = 3
        bias = shape(position + 2)
        layers.append(
            RecurrentSpec(
                cell=cell,
                units=units,
                input_size=kernel[0] if kernel[1] == gates * units else kernel[1],
                direction="bidirectional" if bidirectional else "forward",
                return_sequences=True,
                reset_after=reset_after,
                use_bias=len(bias) in (1, 2) and bias[-1] == gates * units,
            )
        )
        per_direction = 3 if len(bias) in (1, 2) and bias[-1] == gates * units else 2
        position += per_direction * directions
    if not layers:
        first = shape(0) if count else ()
        raise LayoutError(
            f"no {cell.upper()} layer found at the start of the weight list (first array shape {first}, "
            f"second {shape(1)}); expected kernel (D, {gates}H), recurrent_kernel (H, {gates}H), bias, ... "
            f"as model.get_weights() returns for Sequential([{cell.upper()}(H), ..., Dense(C)])"
        )
    last = layers[-1]
    layers[-1] = RecurrentSpec(**{**last.__dict__, "return_sequences": False})
    dense: list[DenseSpec] = []
    while position < count:
        kernel = shape(position)
        if len(kernel) != 2:
            raise LayoutError(
                f"array {position} (shape {kernel}) should be a dense kernel (D, C) after the recurrent layers"
            )
        bias = shape(position + 1)
        use_bias = len(bias) == 1 and bias[0] == kernel[1]
        dense.append(DenseSpec(units=kernel[1], input_size=kernel[0], use_bias=use_bias))
        position += 2 if use_bias else 1
    if not dense:
        raise LayoutError("the weight list has no dense output layer after the recurrent layers")
    if len(dense) > 1:
        if dense_activations is None or len(dense_activations) != len(dense):
            raise LayoutError(
                f"the weight list has {len(dense)} dense layers; their activations cannot be read off the "
                f"weights: pass dense_activations=[...] with {len(dense)} names (e.g. ['relu', 'linear'])"
            )
        dense = [DenseSpec(**{**d.__dict__, "activation": a}) for d, a in zip(dense, dense_activations, strict=True)]
    return layers + list(dense)


def _recurrent_hint(cell: str, recurrent: tuple[int, ...], index: int) -> str:
    gates = len(GATES[cell])
    rows, cols = recurrent
    if rows == gates * cols:
        return (
            f"This is PyTorch layout ({gates}H, H): convert the state_dict with tf_lrp.convert.from_torch, "
            "or transpose every kernel"
        )
    for other, other_gates in (("lstm", 4), ("gru", 3)):
        if other != cell and cols == other_gates * rows:
            return f"That is a {other.upper()} ({other_gates} gate blocks), not a {cell.upper()}: pass cell={other!r}"
    return ""


# --------------------------------------------------------------------------------------------
# Compiled-call arguments


class CallArgs(NamedTuple):
    """The arguments of one compiled call, by name (flattened to positions only at the boundary).

    A template holds :class:`~tf_lrp.backend.TensorSpec` leaves (None for a field the call
    does not take); a call holds arrays in the same structure.
    """

    weights: Any  # list of weight arrays (one argument)
    xs: tuple[Any, ...]  # per network input, batch-major
    masks: tuple[Any, ...]  # per input (B, T) bool; empty without masks
    target: Any  # (B,) int32, -1 = predicted
    step: Any  # (B,) int32 explained output step, -1 = all (per-step outputs)
    samples: tuple[Any, ...]  # per-sample method extras (B, T, D)
    eps: Any  # 0-d
    bias_factor: Any  # 0-d
    shared: tuple[Any, ...]  # method extras shared by the call (points, positions)

    def _positional(self) -> list[tuple[str, Any, bool]]:
        """(name, value, batch-major) for every positional argument, in order."""
        fields: list[tuple[str, Any, bool]] = [("weights", self.weights, False)]
        fields += [("xs", v, True) for v in self.xs] + [("masks", v, True) for v in self.masks]
        fields += [(n, getattr(self, n), True) for n in ("target", "step") if getattr(self, n) is not None]
        fields += [("samples", v, True) for v in self.samples]
        fields += [(n, getattr(self, n), False) for n in ("eps", "bias_factor") if getattr(self, n) is not None]
        return fields + [("shared", v, False) for v in self.shared]

    def flatten(self) -> list[Any]:
        """The positional arguments, in order."""
        return [value for _, value, _ in self._positional()]

    def batch_positions(self) -> list[int]:
        """Positions of the batch-major arguments (split into chunks, padded to buckets)."""
        return [i for i, (_, _, batched) in enumerate(self._positional()) if batched]

    def unflatten(self, flat: Sequence[Any]) -> CallArgs:
        """The record of positional arguments ``flat`` laid out like this template."""
        values: dict[str, list[Any]] = {}
        for (name, _, _), value in zip(self._positional(), flat, strict=True):
            values.setdefault(name, []).append(value)
        def one(name: str) -> Any:
            return values[name][0] if name in values else None

        def group(name: str) -> tuple[Any, ...]:
            return tuple(values.get(name, ()))

        return CallArgs(
            weights=one("weights"), xs=group("xs"), masks=group("masks"), target=one("target"), step=one("step"),
            samples=group("samples"), eps=one("eps"), bias_factor=one("bias_factor"), shared=group("shared"),
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The explainer


class Explainer:
    """Explains a recurrent network's scores with LRP, Gradient×Input or Sensitivity.

    Build one with :meth:`from_keras`, :meth:`from_weights`, :meth:`from_manifest` or :meth:`load`.

    Args:
        layout: a validated layout.
        weights: arrays in Keras order (checked against ``layout``).
        dtype: ``"float32"`` or ``"float64"``; the weights are cast to it.
        rules: a :class:`~tf_lrp.rules.RuleSet` or preset name; default ``"arras2017"``.
            Its per-layer overrides (``RuleSet(layers=...)``) are checked against ``layout``.
        jit_compile: TensorFlow: ``"auto"`` (default) compiles each step of the time loops
            with XLA (fused elementwise work), ``True`` the whole call, ``False`` nothing.
        memory_budget: bytes one compiled call may use for the forward activations kept for
            the backward pass; ``explain`` splits larger batches into chunks.
    """

    def __init__(
        self,
        layout: NetworkLayout,
        weights: Sequence[Any] | Mapping[str, Any],
        dtype: str = "float32",
        rules: RuleSet | str | None = None,
        jit_compile: bool | str = "auto",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ) -> None:
        if dtype not in DTYPES:
            raise InputError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        self.layout = layout
        self.dtype = dtype
        self.rules = as_ruleset(rules)
        self.rules.check(layout)
        self.jit_compile = backend.check_jit_compile(jit_compile)
        if int(memory_budget) <= 0:
            raise InputError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}")
        self.memory_budget = int(memory_budget)
        checked = check_weights(layout, weights)
        _check_cast(layout, checked, dtype)
        self.weights: list[np.ndarray] = [np.ascontiguousarray(w, dtype=dtype) for w in checked]
        self._compiled: dict[tuple[Any, ...], backend.Compiled] = {}

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[Any],
        cell: str = "lstm",
        bidirectional: bool = False,
        reset_after: bool = True,
        dtype: str = "float32",
        dense_activations: Sequence[str] | None = None,
        **options: Any,
    ) -> Explainer:
        """Build from the weight list of ``Sequential([RNN(H) ..., Dense(C)])``.

        Args:
            weights: ``model.get_weights()`` of a model made of ``LSTM``/``GRU`` layers (each
                optionally wrapped in ``Bidirectional(merge_mode="concat")``; all but the last
                with ``return_sequences=True``) followed by ``Dense`` layers.
            cell: ``"lstm"`` or ``"gru"``.
            bidirectional: whether every recurrent layer is bidirectional.
            reset_after: GRU only: Keras's ``reset_after`` (True is the Keras 3 default).
            dtype: ``"float32"`` or ``"float64"``.
            dense_activations: one activation per dense layer when there is more than one
                (the activations cannot be read off the weights).
            **options: passed to :class:`Explainer` (``rules``, ``jit_compile``, ``memory_budget``).

        Returns:
            The explainer.

        Raises:
            LayoutError: when the list does not describe such a model; the message names the
                layer, the array, the expected and actual shape, and the likely fix.
            InputError: for an unknown ``cell`` or ``dtype``.
        """
        if cell not in GATES:
            raise InputError(f"cell must be one of {sorted(GATES)}; got {cell!r}")
        if isinstance(weights, Mapping):
            raise InputError(
                "from_weights takes the list model.get_weights() returns; for a dict keyed by "
                "'layer/array' use Explainer.from_manifest(manifest, weights)"
            )
        arrays = [np.asarray(w) for w in weights]
        layers = _infer_layers(arrays, cell, bidirectional, reset_after, dense_activations)
        layout = validate_manifest(to_manifest(layers))
        return cls(layout, arrays, dtype=dtype, **options)

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], weights: Sequence[Any] | Mapping[str, Any], **options: Any
    ) -> Explainer:
        """Build from a layout manifest (see ``weights_schema.json``) and its weights.

        Args:
            manifest: the layout (``format``, ``layers``, ...), validated against the schema.
            weights: the arrays in the manifest's order, or a dict keyed by ``"layer/array"``.
            **options: passed to :class:`Explainer` (``dtype``, ``rules``, ``jit_compile``,
                ``memory_budget``).

        Returns:
            The explainer.

        Raises:
            LayoutError: for a manifest that breaks the schema or weights that do not fit it.
        """
        return cls(validate_manifest(manifest), weights, **options)

    @classmethod
    def from_keras(
        cls,
        model: Any,
        sample: Any = None,
        dtype: str = "float32",
        tolerance: float | None = None,
        fold_batch_norm: bool = True,
        **options: Any,
    ) -> Explainer:
        """Build from a Keras 3 model (or a ``.keras`` file) and check it reproduces the model.

        After converting (see :mod:`tf_lrp.convert.keras` for the layers and options read), the
        converted network's scores are compared with the Keras model's own pre-activation
        outputs of its last Dense layer on a probe batch: ``sample`` if given, else a random
        batch of the right shape (token ids within the vocabulary, with padding when the
        embedding has ``mask_zero``; steps equal to ``mask_value`` for a ``Masking`` layer).

        Args:
            model: a built ``keras.Model`` (Sequential or functional) or a ``.keras`` path
                (loaded with ``safe_mode=True, compile=False``).
            sample: optional (B, T, D) features or (B, T) token ids to run the check on.
            dtype: ``"float32"`` or ``"float64"``.
            tolerance: largest accepted ``max|ours - keras| / max(1, max|keras|)``; default
                1e-4 (1e-2 for a float16/bfloat16 model).
            fold_batch_norm: fold each ``BatchNormalization`` into the ``Dense`` / ``Conv1D``
                next to it where exact (zennit's canonizer; see ``docs/keras.md``); False keeps
                every one a ``batch_normalization`` node.
            **options: passed to :class:`Explainer` (``rules``, ``jit_compile``, ``memory_budget``).

        Returns:
            The explainer.

        Raises:
            InputError: a missing or unreadable file, an invalid ``sample`` or ``tolerance``.
            ConversionError: a layer or option tf_lrp cannot reproduce (named, with its class
                and the supported list), or scores that differ beyond ``tolerance`` (with the
                max difference).
        """
        from .convert import keras as keras_convert

        model = keras_convert.load_model(model)
        manifest, weights = keras_convert.from_keras(model, fold_batch_norm=fold_batch_norm)
        explainer = cls.from_manifest(manifest, weights, dtype=dtype, **options)
        if tolerance is None:
            low = any(getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16") for layer in model.layers)
            tolerance = 1e-2 if low else 1e-4
        elif isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
            raise InputError(f"tolerance must be a number >= 0 or None; got {tolerance!r}")
        probe = keras_convert.probe_batch(manifest, model) if sample is None else sample
        explainer._check_x(probe)  # raw texts stay texts: Keras tokenizes its own copy
        if len(explainer.layout.inputs) == 1:
            probe = probe[:256]
        elif isinstance(probe, Mapping):
            probe = [probe[spec.name][:256] for spec in explainer.layout.inputs]
        else:
            probe = [part[:256] for part in probe]
        ours = explainer.score(probe)
        with backend.float32_matmuls():  # the reference at the precision tf_lrp computes in (no TF32)
            theirs = keras_convert.keras_scores(model, probe)
        keras_convert.check_equivalence(ours, theirs, float(tolerance), model.name)
        return explainer

    @classmethod
    def from_torch(
        cls,
        model: Any,
        dtype: str = "float32",
        rules: RuleSet | str | None = None,
        jit_compile: bool | str = "auto",
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        *,
        sample: Any = None,
        tolerance: float | None = None,
        **convert_options: Any,
    ) -> Explainer:
        """Build from a PyTorch module (traced with ``torch.fx``), or from a state_dict.

        **A module** (``torch.nn.Module``) is traced: its ``forward`` is captured with
        ``torch.fx`` and every operation between its input and the last ``nn.Linear`` becomes a
        tf_lrp node (see :mod:`tf_lrp.convert.torch_fx` and ``docs/pytorch.md`` for the modules
        and tensor ops read; anything else is refused naming the op and its source line). So
        the head reads exactly what the module's head reads (``h_n[-1]``, ``out[:, -1]``, a
        mean over time, ...). The converted network's scores are then checked against the
        module's own score layer (its pre-activation) on ``sample``, or on a random probe batch.

        **A state_dict** (or a ``.pt`` / ``.pth`` / ``.npz`` path) holds no forward: it is
        converted by :func:`tf_lrp.convert.torch.from_torch` under its documented assumption
        that the head reads the top layer's *final state* (for a bidirectional RNN
        ``[h_n[-2] ; h_n[-1]]``), and nothing can check that assumption: a ``UserWarning``
        says so. Pass the module itself when you have it.

        Args:
            model: a ``torch.nn.Module``; or ``model.state_dict()``, or a ``.pt`` / ``.pth`` /
                ``.npz`` path (read without unpickling code).
            dtype: ``"float32"`` or ``"float64"``.
            rules: see :class:`Explainer`.
            jit_compile: see :class:`Explainer`.
            memory_budget: see :class:`Explainer`.
            sample: module only: (B, T, D) features or (B, T) token ids, batch-major, for the
                forward check (default: a random probe batch).
            tolerance: module only: largest accepted ``max|ours - torch| / max(1, max|torch|)``;
                default 1e-4.
            **convert_options: state_dict only: passed to :func:`tf_lrp.convert.torch.from_torch`
                (``head``, ``cell``, ``num_layers``, ``bidirectional``, ``batch_first``,
                ``rnn_prefix``, ``head_activation``, ``nonlinearity``). A module describes itself.

        Returns:
            The explainer; its ``explain`` takes (batch, time, features) whatever ``batch_first``.

        Raises:
            ConversionError: an op or option tf_lrp cannot reproduce, or (module) scores that
                differ from the module's beyond ``tolerance`` (with the max difference).
            InputError: state_dict options given with a module, or an invalid ``tolerance``.
        """
        from .convert import torch_fx

        if torch_fx._is_module(model):
            if convert_options:
                raise InputError(
                    f"{sorted(convert_options)}: options of the state_dict converter; a module is traced and "
                    "describes itself: drop them (or pass module.state_dict() to use the state_dict converter)"
                )
            if tolerance is None:
                tolerance = 1e-4
            elif isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
                raise InputError(f"tolerance must be a number >= 0 or None; got {tolerance!r}")
            traced = torch_fx.from_torch_module(model)
            explainer = cls.from_manifest(
                *traced.converted, dtype=dtype, rules=rules, jit_compile=jit_compile, memory_budget=memory_budget
            )
            probe = torch_fx.probe_batch(traced.converted.manifest) if sample is None else sample
            probe = np.asarray(explainer._check_x(probe))[:256]
            ours = explainer.score(probe)
            theirs = torch_fx.torch_scores(traced, probe)
            torch_fx.check_equivalence(ours, theirs, float(tolerance), type(model).__name__)
            return explainer
        from .convert.torch import from_torch, load_state_dict

        if sample is not None or tolerance is not None:
            raise InputError("sample= and tolerance= check a traced module's forward; a state_dict has none")
        warnings.warn(
            "Explainer.from_torch got a state_dict, not the module: the converter assumes the head reads the top "
            "recurrent layer's final state (h_n[-1], or [h_n[-2] ; h_n[-1]] when bidirectional) and cannot check "
            "it. If the forward reads out[:, -1] of a bidirectional RNN, pools over time or does anything else, "
            "the explanations are of a different network: pass the module itself (it is traced with torch.fx "
            "and checked against its own outputs)",
            UserWarning,
            stacklevel=2,
        )
        if isinstance(model, (str, os.PathLike)):
            model = load_state_dict(model)
        manifest, weights = from_torch(model, **convert_options)
        return cls.from_manifest(
            manifest, weights, dtype=dtype, rules=rules, jit_compile=jit_compile, memory_budget=memory_budget
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> Explainer:
        """Load an explainer saved with :meth:`save` (no model code needed, no unpickling).

        Args:
            path: the ``.npz`` file.
            **options: passed to :class:`Explainer`; ``dtype`` defaults to the stored one.

        Returns:
            The explainer.

        Raises:
            InputError: the file is missing, unreadable or not a tf_lrp network.
            LayoutError: its manifest or weights are invalid.
        """
        import json

        data = _io.load_npz(path)
        if MANIFEST_KEY not in data:
            raise InputError(f"{os.fspath(path)!r} is not a tf_lrp network file (no {MANIFEST_KEY!r} entry)")
        try:
            manifest = json.loads(str(data.pop(MANIFEST_KEY)))
        except json.JSONDecodeError as exc:
            raise LayoutError(f"{os.fspath(path)!r}: the stored manifest is not valid JSON ({exc})") from exc
        dtype = options.pop("dtype", None) or (str(next(iter(data.values())).dtype) if data else "float32")
        return cls.from_manifest(manifest, data, dtype=dtype, **options)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest and the weights into one ``.npz`` (atomically).

        Args:
            path: the ``.npz`` file to write; :meth:`load` reads it back.
        """
        import json

        arrays: dict[str, np.ndarray] = {spec.key: w for spec, w in zip(self.layout.arrays, self.weights, strict=True)}
        arrays[MANIFEST_KEY] = np.asarray(json.dumps(self.layout.manifest, sort_keys=True))
        _io.save_npz(path, arrays)

    # information ----------------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """The normalised layout manifest."""
        return self.layout.manifest

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the manifest and the weights (as stored, in this explainer's dtype)."""
        return fingerprint(self.layout, self.weights)

    @property
    def trace_count(self) -> int:
        """How often the compiled functions were traced so far (all methods together)."""
        return sum(c.traces for c in self._compiled.values())

    def working_set_bytes(self, time_steps: int) -> int:
        """Bytes of forward activations kept per sample for a sequence of ``time_steps``.

        The inputs plus what every node keeps for the backward passes (each node type declares
        it: ``cache_floats``; a recurrent direction keeps ``CACHE_VECTORS`` H-vectors per step);
        the backward pass adds about as much again, transiently.

        Args:
            time_steps: the sequence length T.

        Returns:
            Bytes per sample (``batch_size="auto"`` divides ``memory_budget`` by it).
        """
        layout = self.layout
        itemsize = np.dtype(self.dtype).itemsize
        total = sum(
            (time_steps if spec.sequence else 1) * layout.attribution_size(k) for k, spec in enumerate(layout.inputs)
        )
        sequences = layout.sequence_outputs
        for spec, reads in zip(layout.layers, layout.edges, strict=True):
            first = reads[0]
            reads_sequence = layout.inputs[-1 - first].sequence if first < 0 else sequences[first]
            steps = time_steps if reads_sequence else 1
            total += NODES[spec.kind].cache_floats(spec, steps)
        return 2 * total * itemsize

    # running --------------------------------------------------------------------------------

    def _x_specs(self) -> list[backend.TensorSpec]:
        """One spec per network input: (B, T) int32 token ids, (B, T, D) floats or a (B, D) vector."""
        return [
            backend.TensorSpec((None, None), "int32")
            if spec.tokens
            else backend.TensorSpec((None, None, spec.features) if spec.sequence else (None, spec.features), self.dtype)
            for spec in self.layout.inputs
        ]

    def _function(self, method: str, has_mask: bool) -> backend.Compiled:
        """The compiled call of ``method`` (or ``"score"``); arguments travel as a :class:`CallArgs`."""
        key = (method, has_mask)
        if key not in self._compiled:
            layout, rules = self.layout, self.rules
            count = len(layout.inputs)
            extra_specs = [] if method == "score" else _extra_specs(method, layout.input_size, self.dtype)
            template = CallArgs(
                weights=[backend.TensorSpec(w.shape, self.dtype) for w in self.weights],
                xs=tuple(self._x_specs()),
                masks=tuple(backend.TensorSpec((None, None), "bool") for _ in range(count)) if has_mask else (),
                target=backend.TensorSpec((None,), "int32") if method != "score" else None,
                step=backend.TensorSpec((None,), "int32") if method != "score" else None,
                samples=tuple(spec for kind, spec in extra_specs if kind == "inputs"),
                eps=backend.TensorSpec((), self.dtype) if method != "score" else None,
                bias_factor=backend.TensorSpec((), self.dtype) if method != "score" else None,
                shared=tuple(spec for kind, spec in extra_specs if kind != "inputs"),
            )
            per_step = layout.per_step

            def unpack(flat: Sequence[Any]) -> tuple[Any, Any, CallArgs]:
                args = template.unflatten(flat)
                xs = args.xs if count > 1 else args.xs[0]
                masks = (args.masks if count > 1 else args.masks[0]) if has_mask else None
                return xs, masks, args

            if method == "score":

                def run(*flat: Any) -> Any:
                    xs, masks, args = unpack(flat)
                    return scores(layout, args.weights, xs, masks)

            else:
                implementation = METHODS[method]

                def run(*flat: Any) -> Any:
                    xs, masks, args = unpack(flat)
                    result = implementation(
                        layout, rules, args.weights, xs, masks, args.target, args.eps, args.bias_factor,
                        *args.samples, *args.shared, step=args.step if per_step else None,
                    )  # fmt: skip
                    relevance = result.relevance if isinstance(result.relevance, tuple) else (result.relevance,)
                    return (*relevance, result.scores, result.target, result.initial_state, result.explained)

            loop_width = max(NODES[spec.kind].loop_width(spec) for spec in layout.layers)
            self._compiled[key] = backend.Compiled(
                run, template.flatten(), jit_compile=self.jit_compile, batch_args=template.batch_positions(),
                loop_width=loop_width,
            )  # fmt: skip
        return self._compiled[key]

    def _check_x(self, x: Any) -> Any:
        """Validate ``x``: one array for a single-input network, else a tuple (one per input)."""
        inputs = self.layout.inputs
        if len(inputs) == 1:
            return self._check_input(x, 0, "x")
        if isinstance(x, Mapping):
            names = [spec.name for spec in inputs]
            unknown = sorted(set(x) - set(names))
            missing = [name for name in names if name not in x]
            if unknown or missing:
                raise InputError(
                    f"x names inputs {sorted(x)}; the network's inputs are {names} (missing {missing}, "
                    f"unknown {unknown})"
                )
            x = [x[name] for name in names]
        if not isinstance(x, (list, tuple)) or len(x) != len(inputs):
            raise InputError(
                f"this network has {len(inputs)} inputs {[spec.name for spec in inputs]}: pass x as a list of "
                f"{len(inputs)} arrays or a dict by input name"
            )
        arrays = tuple(self._check_input(value, k, f"x[{inputs[k].name!r}]") for k, value in enumerate(x))
        batches = {a.shape[0] for a in arrays}
        if len(batches) > 1:
            raise InputError(f"the inputs have different batch sizes {[a.shape[0] for a in arrays]}; they must agree")
        return arrays

    def _check_input(self, x: Any, k: int, label: str) -> np.ndarray:
        spec = self.layout.inputs[k]
        if spec.text is not None:
            texts = as_texts(x)
            if texts is not None:  # raw texts: tokenized as the model's TextVectorization does
                x = spec.text.encode(texts).ids
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{label} cannot be read as an array ({exc})") from exc
        if spec.tokens:
            point = self.layout.attribution_edges[k]
            embedding = self.layout.layers[point]
            vocabulary = embedding.input_dim  # type: ignore[attr-defined]
            if array.ndim != 2:
                raise InputError(
                    f"{label} must be (batch, time) integer token ids for this network (it starts with an "
                    f"embedding); got shape {array.shape}"
                )
            if array.dtype.kind not in "iu":
                raise InputError(f"{label} must hold integer token ids; got dtype {array.dtype}")
            _check_not_empty(array, label)
            if array.size and (array.min() < 0 or array.max() >= vocabulary):
                raise InputError(
                    f"{label} holds token ids outside the vocabulary [0, {vocabulary}): min {array.min()}, "
                    f"max {array.max()}"
                )
            return array.astype(np.int32, copy=False)
        features = spec.features
        if not spec.sequence:
            if array.ndim != 2 or array.shape[1] != features:
                raise InputError(
                    f"{label} is one vector per sample: it must have shape (batch, {features}); got {array.shape}"
                )
        elif array.ndim != 3:
            hint = " (one sequence? add a batch axis: x[None])" if array.ndim == 2 else ""
            raise InputError(f"{label} must have shape (batch, time, {features}); got {array.shape}{hint}")
        if spec.sequence and array.shape[2] != features:
            raise InputError(
                f"{label} has {array.shape[2]} features per step but the network's first layer expects "
                f"{features}: {label} must have shape (batch, time, {features})"
            )
        if array.dtype.kind not in "fiu":
            raise InputError(f"{label} must hold real numbers; got dtype {array.dtype}")
        _check_not_empty(array, label)
        array = np.asarray(array, dtype=self.dtype)
        finite = np.isfinite(array)
        if not finite.all():
            where = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise InputError(
                f"{label} contains {int((~finite).sum())} NaN or infinite values (first at index {where}); "
                "clean or impute them before explaining"
            )
        return array

    def _check_mask(self, x: Any, mask: Any | None, lengths: Any | None, allow_empty: bool = False) -> Any:
        """The step masks: one (B, T) bool array (or None) per input; a bare one for one input.

        ``allow_empty``: a sample without a valid step is accepted (scoring), not refused.
        """
        count = len(self.layout.inputs)
        if count == 1:
            return self._check_input_mask(x, 0, mask, lengths, allow_empty)
        masks = [None] * count if mask is None else list(mask)
        spans = [None] * count if lengths is None else list(lengths)
        if len(masks) != count or len(spans) != count:
            raise InputError(f"for a network with {count} inputs pass mask= and lengths= as lists of {count} entries")
        result = tuple(self._check_input_mask(x[k], k, masks[k], spans[k], allow_empty) for k in range(count))
        if all(m is None for m in result):
            return None
        # a vector input (no time axis) travels with a (B, 1) all-True placeholder the walk ignores
        shapes = [x[k].shape[:2] if spec.sequence else (len(x[k]), 1) for k, spec in enumerate(self.layout.inputs)]
        return tuple(np.ones(shapes[k], dtype=bool) if m is None else m for k, m in enumerate(result))

    def _check_input_mask(
        self, x: np.ndarray, k: int, mask: Any | None, lengths: Any | None, allow_empty: bool = False
    ) -> np.ndarray | None:
        batch, steps = x.shape[:2]
        if mask is not None and lengths is not None:
            raise InputError("pass either mask= or lengths=, not both")
        spec = self.layout.inputs[k]
        if not spec.sequence:
            if mask is not None or lengths is not None:
                raise InputError(
                    f"input {spec.name!r} is one vector per sample and has no time steps to mask: pass None for "
                    "its entry of mask= / lengths="
                )
            return None
        result: np.ndarray | None = None
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
                raise InputError(f"lengths must be ({batch},) integers; got shape {lengths.shape}, {lengths.dtype}")
            if lengths.min() < 1 or lengths.max() > steps:
                raise InputError(f"lengths must lie in [1, {steps}]; got min {lengths.min()}, max {lengths.max()}")
            result = np.arange(steps)[None, :] < lengths[:, None]
        elif mask is not None:
            result = np.asarray(mask)
            if result.shape != (batch, steps):
                raise InputError(f"mask must have shape (batch, time) = {(batch, steps)}; got {result.shape}")
            if result.dtype != bool:
                if result.dtype.kind not in "iub" or not np.isin(result, (0, 1)).all():
                    raise InputError("mask must be boolean (True = valid step) or 0/1 integers")
                result = result.astype(bool)
            if not allow_empty and not result.any(axis=1).all():
                empty = int(np.flatnonzero(~result.any(axis=1))[0])
                raise InputError(f"mask marks no valid step in sample {empty}; every sequence needs one")
        if spec.tokens:
            embedding = self.layout.layers[self.layout.attribution_edges[k]]
            if embedding.mask_zero:  # type: ignore[attr-defined]
                token_mask = x != 0
                result = token_mask if result is None else result & token_mask
                if not allow_empty and not result.any(axis=1).all():
                    empty = int(np.flatnonzero(~result.any(axis=1))[0])
                    raise InputError(f"sample {empty} consists of padding (token id 0) only")
        mask_value = spec.mask_value
        if mask_value is not None:
            # Keras Masking: a step is masked when every feature equals mask_value
            step_mask = np.any(x != np.asarray(mask_value, dtype=x.dtype), axis=-1)
            result = step_mask if result is None else result & step_mask
            if not allow_empty and not result.any(axis=1).all():
                empty = int(np.flatnonzero(~result.any(axis=1))[0])
                raise InputError(
                    f"sample {empty} consists of masked steps only (every feature equals mask_value={mask_value})"
                )
        return result

    def _check_target(self, target: Any, batch: int) -> np.ndarray:
        classes = self.layout.num_outputs
        if target is None:
            return np.full((batch,), -1, dtype=np.int32)
        array = np.asarray(target)
        if array.dtype.kind not in "iu" or array.dtype == bool:
            raise InputError(f"target must be None, an int or ({batch},) integers; got dtype {array.dtype}")
        if array.ndim == 0:
            array = np.full((batch,), int(array))
        if array.shape != (batch,):
            raise InputError(f"target must be None, an int or an array of shape ({batch},); got {array.shape}")
        if array.min() < 0 or array.max() >= classes:
            raise InputError(
                f"target out of range: the network has {classes} outputs (0..{classes - 1}); "
                f"got min {array.min()}, max {array.max()}"
            )
        return array.astype(np.int32)

    def _chunk_size(self, batch: int, steps: int, batch_size: int | None) -> int:
        if batch_size is not None:
            if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
                raise InputError(f"batch_size must be a positive int or None; got {batch_size!r}")
            return int(batch_size)
        per_sample = max(self.working_set_bytes(steps), 1)
        fitting = max(1, self.memory_budget // per_sample)
        # a budget-limited chunk is a bucket, so JAX/XLA batch padding does not inflate it
        return batch if batch <= fitting else backend.bucket_below(fitting)

    def explain(
        self,
        x: Any,
        target: Any = None,
        method: str = "lrp",
        eps: float = 1e-3,
        bias_factor: float = 0.0,
        mask: Any = None,
        lengths: Any = None,
        batch_size: int | None = None,
        steps: int = 32,
        baseline: Any = None,
        seed: int = 0,
        strategy: Any = None,
        step: Any = None,
    ) -> Explanation:
        """Explain the scores of a batch.

        Args:
            x: (B, T, D) floats, or (B, T) integer token ids for a network with an embedding,
                or a list of raw strings for a model converted with its ``TextVectorization``
                (``Explanation.tokens`` then holds the tokens); for a network with several
                inputs a list (or a dict by input name) of them, and ``relevance`` is then a
                tuple with one array per input.
            target: None (explain the predicted class of each sample), an int (the same class
                for all), or (B,) integers.
            method: one of ``METHODS``: ``"lrp"``, ``"gradient_x_input"``, ``"sensitivity"``,
                ``"integrated_gradients"``, ``"occlusion"``, ``"random"`` (a control).
            eps: LRP stabiliser ε ≥ 0 (``z + ε·sign(z)``, sign(0) = +1).
            bias_factor: LRP share of bias and stabiliser that is redistributed, in [0, 1]:
                1 conserves relevance exactly, 0 absorbs it (recommended for explanations).
            mask: (B, T) bool, True where the step is valid (pre- or post-padding); masked
                steps carry the state through and get zero relevance.
            lengths: (B,) valid lengths for post-padded data (alternative to ``mask``).
            batch_size: samples per compiled call; None picks it from ``memory_budget``.
            steps: ``integrated_gradients`` only: the number of trapezoid intervals on the
                path (``steps + 1`` gradient evaluations, batched; chunked by ``memory_budget``).
            baseline: ``integrated_gradients`` and ``occlusion`` only: None (zeros), a number,
                or an array broadcastable to (B, T, D) (embedding vectors for token models).
            seed: ``random`` only: the seed of the control's uniform noise.
            strategy: a ``tf.distribute.Strategy`` (TensorFlow backend): each compiled call's
                batch is split across its replicas and the results gathered in order.
            step: networks with per-step outputs (scores (B, T, C)) only: the output step to
                explain (an int, or (B,) integers; negative counts from the end), or None for
                the sum of the target's scores over the valid steps.

        Returns:
            An :class:`Explanation` with numpy arrays.

        Raises:
            InputError: for any invalid argument; the message names it and the fix.
        """
        _check_options(method, eps, bias_factor)
        if strategy is not None:
            backend.check_strategy(strategy)
        if method in EXTRA_INPUTS and (len(self.layout.inputs) > 1 or not self.layout.inputs[0].sequence):
            raise InputError(
                f"{method} takes networks with one input (a sequence); for several inputs or a vector input use "
                "lrp, gradient_x_input or sensitivity"
            )
        xs = self._check_x(x)
        valid = self._check_mask(xs, mask, lengths)
        first = xs if len(self.layout.inputs) == 1 else xs[0]
        targets = self._check_target(target, first.shape[0])
        horizon = _as_list(xs)[self.layout.output_time_input].shape[1] if self.layout.per_step else 1
        steps_ = self._check_step(step, first.shape[0], horizon)
        scalars = (np.asarray(eps, dtype=self.dtype), np.asarray(bias_factor, dtype=self.dtype))
        samples, shared_chunks = self._method_extras(method, first, batch_size, steps, baseline, seed)
        count = len(self.layout.inputs)
        relevance: list[np.ndarray] = []
        for shared in shared_chunks:  # partial results over chunks of IG points / occluded steps add up
            *parts, scores_, target_, initial, explained = self._run_chunks(
                method, xs, valid, batch_size, per_sample=(targets, steps_, *samples), constants=(*scalars, *shared),
                strategy=strategy,
            )
            relevance = parts if not relevance else [r + p for r, p in zip(relevance, parts, strict=True)]
        if not all(np.isfinite(r).all() for r in relevance):  # checked per input
            raise InputError(
                f"{method} produced non-finite values (a stabilised denominator was zero); use eps > 0"
                if eps == 0
                else f"{method} produced non-finite values; check the weights' scale"
            )
        explanation = Explanation(
            relevance=relevance[0] if count == 1 else tuple(relevance),
            scores=scores_,
            target=target_.astype(np.int64),
            initial_state_relevance=initial,
            method=method,
            eps=float(eps),
            bias_factor=float(bias_factor),
            mask=self._step_masks(valid),
            explained=explained,
            tokens=self._tokens_of(x),
        )
        return conservation.checked(explanation)  # warns once (TfLrpWarning) on numeric blow-up

    def _step_masks(self, valid: Any) -> Any:
        """The explanation's masks: as checked, with None for a vector input (it has no steps)."""
        if not isinstance(valid, tuple):
            return valid
        return tuple(m if spec.sequence else None for m, spec in zip(valid, self.layout.inputs, strict=True))

    def _tokens_of(self, x: Any) -> Any:
        """The tokens of each sample of the text inputs given as raw texts (see ``Explanation.tokens``)."""
        inputs = self.layout.inputs
        if not any(spec.text is not None for spec in inputs):
            return None
        if len(inputs) == 1:
            values = [x]
        elif isinstance(x, Mapping):
            values = [x.get(spec.name) for spec in inputs]
        else:
            values = list(x)
        found: list[Any] = []
        for spec, value in zip(inputs, values, strict=True):
            texts = as_texts(value) if spec.text is not None else None
            found.append(None if texts is None or spec.text is None else spec.text.encode(texts).tokens)
        return found[0] if len(inputs) == 1 else tuple(found)

    def _check_step(self, step: Any, batch: int, steps: int) -> np.ndarray:
        """(B,) int32 explained output steps, ``-1`` for all (None); only for per-step outputs."""
        if step is None:
            return np.full((batch,), -1, dtype=np.int32)
        if not self.layout.per_step:
            raise InputError("step= is for networks with per-step outputs (scores (B, T, C)); this one has (B, C)")
        array = np.asarray(step)
        if array.dtype.kind not in "iu" or array.dtype == bool:
            raise InputError(f"step must be None, an int or ({batch},) integers; got dtype {array.dtype}")
        if array.ndim == 0:
            array = np.full((batch,), int(array))
        if array.shape != (batch,):
            raise InputError(f"step must be None, an int or an array of shape ({batch},); got {array.shape}")
        if array.min() < -steps or array.max() >= steps:
            raise InputError(
                f"step out of range: the sequences have {steps} steps; got min {array.min()}, max {array.max()}"
            )
        return np.where(array < 0, array + steps, array).astype(np.int32)

    def _method_extras(
        self, method: str, x: np.ndarray, batch_size: int | None, steps: Any, baseline: Any, seed: Any
    ) -> tuple[tuple[np.ndarray, ...], list[tuple[np.ndarray, ...]]]:
        """Validate the method options; build the per-sample extras and the chunks of shared ones."""
        names = {name for name, _ in EXTRA_INPUTS.get(method, ())}
        if baseline is not None and "baseline" not in names:
            raise InputError(f"baseline= is used by integrated_gradients and occlusion only, not by {method!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise InputError(f"steps must be a positive int (integrated_gradients' intervals); got {steps!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InputError(f"seed must be a non-negative int; got {seed!r}")
        shape = (*x.shape[:2], self.layout.input_size)
        if method == "random":
            noise = np.random.default_rng(int(seed)).uniform(-1.0, 1.0, size=shape).astype(self.dtype)
            return (noise,), [()]
        if "baseline" not in names:
            return (), [()]
        base = self._check_baseline(baseline, shape)
        calls = max(1, self.memory_budget // max(self.working_set_bytes(x.shape[1]), 1))
        per_call = max(1, calls // self._chunk_size(x.shape[0], x.shape[1], batch_size))
        if method == "integrated_gradients":
            alphas = np.linspace(0.0, 1.0, int(steps) + 1)
            weights = np.full(int(steps) + 1, 1.0 / int(steps))
            weights[[0, -1]] /= 2  # the trapezoid rule
            chunks: list[tuple[np.ndarray, ...]] = [
                (alphas[i : i + per_call].astype(self.dtype), weights[i : i + per_call].astype(self.dtype))
                for i in range(0, len(alphas), per_call)
            ]
            return (base,), chunks
        positions = np.arange(x.shape[1], dtype=np.int32)
        return (base,), [(positions[i : i + per_call],) for i in range(0, len(positions), per_call)]

    def _check_baseline(self, baseline: Any, shape: tuple[int, int, int]) -> np.ndarray:
        if baseline is None:
            return np.zeros(shape, dtype=self.dtype)
        try:
            array = np.asarray(baseline, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"baseline cannot be read as a float array ({exc})") from exc
        try:
            array = np.broadcast_to(array, shape)
        except ValueError as exc:
            raise InputError(
                f"baseline of shape {array.shape} does not broadcast to the (embedded) inputs' shape {shape}; "
                "pass a number, a (D,), (T, D) or (B, T, D) array"
            ) from exc
        if not np.isfinite(array).all():
            raise InputError("baseline contains NaN or infinite values")
        return np.ascontiguousarray(array)

    def explain_dataset(
        self,
        data: Any,
        batch_size: int | str = "auto",
        out: str | os.PathLike[str] | None = None,
        method: str = "lrp",
        targets: Any = None,
        eps: float = 1e-3,
        bias_factor: float = 0.0,
        lengths: Any = None,
        mask: Any = None,
        progress: bool | None = None,
        memory_budget: int | None = None,
        resume: bool = True,
        strategy: Any = None,
        step: Any = None,
        **options: Any,
    ) -> Explanation | dataset.OutputFiles:
        """Explain a data set of any size in chunks; optionally stream into a resumable ``.npy``.

        See :mod:`tf_lrp.dataset` and ``docs/dataset.md``.

        Args:
            data: (N, T, D) / (N, T) array or ``np.memmap``, an ``.npy`` path (memory-mapped)
                or ``.npz`` path (keys ``x``, optional ``lengths`` / ``mask``), a
                ``tf.data.Dataset`` or an iterable of batches (arrays, ``(x, lengths)`` tuples
                or dicts with ``x`` and ``lengths`` / ``mask``). For a network with several
                inputs: a list (or a dict by input name) of arrays, an ``.npz`` with keys
                ``x/<input>`` (optional ``lengths/<input>``, ``mask/<input>``), or batches that
                are such lists or dicts (or ``{"x": ..., "lengths": ..., "mask": ...}`` with
                one entry per input in each); ``relevance`` is then one array per input.
            batch_size: ``"auto"`` (largest chunk whose working set fits ``memory_budget``) or
                a positive int.
            out: ``"relevances.npy"``: write there (plus scores, targets, initial-state
                relevance and a JSON sidecar beside it) and return the paths.
            method: one of ``METHODS``.
            targets: None (predicted class), an int, or (N,) integers.
            eps: LRP stabiliser ε ≥ 0.
            bias_factor: LRP bias share in [0, 1].
            lengths: (N,) valid lengths of post-padded data (arrays and paths); for several
                inputs a list (or a dict by input name) with an entry (or None) per input.
            mask: (N, T) bool, True on valid steps (arrays and paths); a list or dict for several
                inputs.
            progress: True: a tqdm bar; False: none; None: a bar on a terminal or in a notebook, a
                plain progress line every 30 s otherwise (logs, CI, batch jobs).
            memory_budget: bytes per chunk for ``batch_size="auto"``; None: 30 % of the free
                memory of the GPU in use (no 1,024-sample cap there), else a quarter of the
                available host memory.
            resume: continue the run recorded beside ``out``; False starts over.
            strategy: a ``tf.distribute.Strategy`` (TensorFlow backend, e.g.
                ``tf.distribute.MirroredStrategy()``): each chunk is split across its replicas
                and gathered in order; results equal the single-device run. See ``docs/scaling.md``.
            step: networks with per-step outputs only: the output step to explain (one int,
                negative counts from the end), or None for the sum over the valid steps, as in
                :meth:`explain`.
            **options: scalar method options passed to :meth:`explain` (``steps``, ``seed``).

        Returns:
            An :class:`Explanation` (``out=None``) or :class:`tf_lrp.dataset.OutputFiles`.

        Raises:
            InputError: for invalid arguments or data, or a recorded run that does not match.
        """
        _check_options(method, eps, bias_factor)
        if strategy is not None:
            backend.check_strategy(strategy)
        layout = self.layout
        names = [spec.name for spec in layout.inputs]
        vectors = [k for k, spec in enumerate(layout.inputs) if not spec.sequence]
        if vectors:  # the driver reads sequences: a vector input travels as one step, (N, 1, S)
            data = _vectors_as_one_step(data, layout, vectors)
        if len(names) > 1 and method in EXTRA_INPUTS:
            raise InputError(
                f"{method} takes networks with one input; for several inputs use lrp, gradient_x_input or sensitivity"
            )
        if step is not None:
            if not layout.per_step:
                raise InputError("step= is for networks with per-step outputs (scores (B, T, C)); this one has (B, C)")
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
                raise InputError(
                    f"explain_dataset takes step=None or one int; got {type(step).__name__}: for a step per sample "
                    "call explain on batches"
                )
            step = int(step)
        for key, value in options.items():
            if not isinstance(value, (int, float, str, type(None))):
                raise InputError(f"explain_dataset passes only scalar options to explain; {key}= is {type(value)}")
        if targets is not None and np.ndim(targets) == 1:
            targets = self._check_target(targets, len(targets))
        elif targets is not None:
            self._check_target(targets, 1)

        def run(x: Any, target: Any, chunk_mask: Any, chunk_lengths: Any) -> tuple[Any, ...]:
            if vectors:  # back to (n, S), without a mask; the results one step again
                x = [v[:, 0, :] if k in vectors else v for k, v in enumerate(x)]
                chunk_mask, chunk_lengths = (
                    None if given is None else [None if k in vectors else m for k, m in enumerate(given)]
                    for given in (chunk_mask, chunk_lengths)
                )
            result = self.explain(
                x, target, method, eps, bias_factor, chunk_mask, chunk_lengths, batch_size=len(_as_list(x)[0]),
                strategy=strategy, step=step, **options,
            )  # fmt: skip
            relevance, masks = result.relevance, result.mask
            if vectors:
                relevance = tuple(r[:, None, :] if k in vectors else r for k, r in enumerate(relevance))
                if isinstance(masks, tuple):
                    masks = tuple(
                        np.ones((len(r), 1), bool) if m is None else m for m, r in zip(masks, relevance, strict=True)
                    )
            return relevance, result.scores, result.target, result.initial_state_relevance, masks, result.explained

        record: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "dtype": self.dtype,
            "rules": repr(self.rules),
            "backend": backend.name(),
            "method": method,
            "eps": float(eps),
            "bias_factor": float(bias_factor),
            "options": dict(sorted(options.items())),
        }
        if len(names) > 1:  # one-input records stay as they were, so that their runs still resume
            record["inputs"] = names
        if layout.per_step:
            record["step"] = step
        inputs = []
        for k, spec in enumerate(layout.inputs):
            point = layout.attribution_edges[k]
            mask_zero = spec.tokens and bool(layout.layers[point].mask_zero)  # type: ignore[attr-defined]
            shape = () if spec.tokens else (spec.features,)  # a vector input: one step of its features
            inputs.append(dataset.InputInfo(spec.name, shape, layout.attribution_size(k), mask_zero))
        result = dataset.explain_dataset(
            run,
            data,
            record=record,
            per_sample_bytes=self.working_set_bytes,
            feature_shape=inputs[0].feature_shape,
            features=inputs[0].features,
            output_dtype=self.dtype,
            num_outputs=layout.num_outputs,
            mask_zero=inputs[0].mask_zero,
            batch_size=batch_size,
            out=out,
            targets=targets,
            lengths=lengths,
            mask=mask,
            progress=progress,
            memory_budget=memory_budget,
            resume=resume,
            inputs=inputs,
            per_step=layout.per_step,
            crop=not any(NODES[spec.kind].reads_padding for spec in layout.layers),
        )
        if isinstance(result, dataset.OutputFiles):
            return result
        relevance = result["relevance"] if len(names) == 1 else tuple(result[f"relevance/{name}"] for name in names)
        masks = result["mask"]
        if vectors:  # in memory, a vector input's relevance is (N, S) as from explain
            relevance = tuple(r[:, 0, :] if k in vectors else r for k, r in enumerate(relevance))
            if masks is not None:
                masks = tuple(None if k in vectors else m for k, m in enumerate(masks))
        return Explanation(
            relevance=relevance,
            scores=result["scores"],
            target=result["targets"],
            initial_state_relevance=result["initial_state_relevance"],
            method=method,
            eps=float(eps),
            bias_factor=float(bias_factor),
            mask=masks,
            explained=result.get("explained"),
        )

    def score(self, x: Any, mask: Any = None, lengths: Any = None, batch_size: int | None = None) -> np.ndarray:
        """The (B, C) scores (the last dense layer's pre-activation) of a batch.

        A sample without a valid step (all padding or masked) is scored as Keras does: the
        recurrent layers keep their zero initial state, so it scores what the head makes of it.

        Args:
            x: (B, T, D) floats or (B, T) token ids (a tuple or dict of them for a network with
                several inputs).
            mask: (B, T) bool, True on valid steps.
            lengths: (B,) valid lengths of post-padded data (alternative to ``mask``).
            batch_size: samples per compiled call; None picks it from ``memory_budget``.

        Returns:
            (B, C) scores.
        """
        xs = self._check_x(x)
        valid = self._check_mask(xs, mask, lengths, allow_empty=True)
        (result,) = self._run_chunks("score", xs, valid, batch_size)
        return result

    def _run_chunks(
        self,
        method: str,
        x: Any,
        mask: Any,
        batch_size: int | None,
        per_sample: tuple[np.ndarray, ...] = (),
        constants: tuple[np.ndarray, ...] = (),
        strategy: Any = None,
    ) -> tuple[np.ndarray, ...]:
        """Run a compiled function chunk by chunk and concatenate its outputs along the batch.

        ``per_sample`` is ``(target, step, *samples)`` and ``constants`` ``(eps, bias_factor,
        *shared)`` for a method, both empty for ``"score"``.
        """
        xs, masks = _as_list(x), [] if mask is None else _as_list(mask)
        function = self._function(method, mask is not None)
        batch, steps = xs[0].shape[0], max(a.shape[1] for a in xs)
        chunk = self._chunk_size(batch, steps, batch_size)
        parts = []
        for start in range(0, batch, chunk):
            window = slice(start, start + chunk)
            rows = [a[window] for a in per_sample]
            args = CallArgs(
                weights=self.weights,
                xs=tuple(a[window] for a in xs),
                masks=tuple(m[window] for m in masks),
                target=rows[0] if rows else None,
                step=rows[1] if rows else None,
                samples=tuple(rows[2:]),
                eps=constants[0] if constants else None,
                bias_factor=constants[1] if constants else None,
                shared=tuple(constants[2:]),
            ).flatten()
            result = function(*args) if strategy is None else function.run_distributed(strategy, *args)
            parts.append(result if isinstance(result, tuple) else (result,))
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts, strict=True))

    def __repr__(self) -> str:
        layers = self.layout.describe().replace("\n", "; ")
        return f"Explainer({layers}; dtype={self.dtype}, backend={backend.name()})"


def _extra_specs(method: str, input_size: int, dtype: str) -> list[tuple[str, backend.TensorSpec]]:
    """(kind, spec) of each extra argument of ``method`` (see ``methods.EXTRA_INPUTS``)."""
    specs = {
        "inputs": backend.TensorSpec((None, None, input_size), dtype),
        "points": backend.TensorSpec((None,), dtype),
        "positions": backend.TensorSpec((None,), "int32"),
    }
    return [(kind, specs[kind]) for _, kind in EXTRA_INPUTS.get(method, ())]


def _check_options(method: str, eps: Any, bias_factor: Any) -> None:
    """Validate the method name, ε and the bias factor (shared by explain and explain_dataset)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    check_lrp_numbers(eps, bias_factor)


def _check_cast(layout: NetworkLayout, weights: Sequence[np.ndarray], dtype: str) -> None:
    """Weights that would overflow to inf when cast to the compute dtype are refused."""
    largest = np.finfo(dtype).max
    for spec, array in zip(layout.arrays, weights, strict=True):
        bad = int(np.count_nonzero(np.abs(array) > largest))
        if bad:
            raise InputError(
                f"layer {spec.layer} array {spec.name!r}: {bad} of {array.size} weights exceed the range of {dtype} "
                f"(largest magnitude {np.finfo(dtype).max:.3g}) and would become infinite; use dtype='float64'"
            )


def _as_list(value: Any) -> list[Any]:
    """A tuple or list as a list; anything else as a one-element list."""
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _vectors_as_one_step(data: Any, layout: NetworkLayout, vectors: Sequence[int]) -> Any:
    """In-memory data with vector inputs (N, S) as the one-step sequences (N, 1, S) the driver reads."""
    names = [spec.name for spec in layout.inputs]
    if isinstance(data, Mapping) and set(data) == set(names):
        return {name: np.asarray(value)[:, None, :] if names.index(name) in vectors else value
                for name, value in data.items()}  # fmt: skip
    if isinstance(data, (list, tuple)) and len(data) == len(names):
        return [np.asarray(value)[:, None, :] if k in vectors else value for k, value in enumerate(data)]
    raise InputError(
        f"input(s) {[names[k] for k in vectors]} are one vector per sample: explain_dataset takes such a network's "
        "data in memory, as a list (or a dict by input name) of arrays; their relevance is (N, 1, S)"
    )


def _check_not_empty(array: np.ndarray, label: str = "x") -> None:
    if array.shape[0] == 0:
        raise InputError(f"{label} is empty: the batch has 0 samples")
    if array.shape[1] == 0:
        raise InputError(f"{label} has 0 time steps; every sequence needs at least one")


__all__ = ["Explainer", "Explanation"]
