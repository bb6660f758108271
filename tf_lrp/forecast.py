"""The forecaster's constructors and diagnostics: :class:`Seq2SeqExplainer`, :class:`ForecastExplanation`.

The GRU encoder-decoder (Mirzavand Borujeni et al. 2023; see :mod:`tf_lrp.nodes.forecaster` and
``docs/forecaster.md``) is one node of the layer graph, so :class:`~tf_lrp.Explainer` serves it
like any network (``Seq2SeqExplainer.explainer``, or ``Explainer.load`` on a saved forecaster):
its inputs are ``history``, ``future`` and ``static``, ``explain(x, step=t, target=o)``,
``explain_dataset`` (resumable), scores, conservation reports. :class:`Seq2SeqExplainer` keeps the
forecaster's own file format and calls (``forecast``, ``explain(x, x_future, static, step,
output)``) as thin wrappers over that explainer; its ``explain`` also returns the forecaster's
diagnostics (the seed path, the feedback, the static relevance per step).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _io, backend
from .errors import InputError, LayoutError
from .explainer import DTYPES, Explainer
from .layout import forecaster_layout
from .network import GRADIENT, LRP, Context
from .rules import RuleSet, as_ruleset, check_lrp_numbers
from .seq2seq import (
    Seq2SeqSpec,
    backward,
    check_seq2seq_weights,
    forward,
    manifest_json,
    seed_mask,
    validate_seq2seq_manifest,
)

MANIFEST_KEY = "__manifest__"
#: Methods of :meth:`Seq2SeqExplainer.explain`.
FORECAST_METHODS = ("lrp", "gradient_x_input", "gradient")


@dataclass(frozen=True)
class ForecastExplanation:
    """The result of :meth:`Seq2SeqExplainer.explain` (numpy arrays).

    Attributes:
        forecasts: (B, T_out, O) the forecasts ŷ.
        history: (B, T_in, F) relevance of the history, **including** the seed path: the
            relevance of ``x[:, -1, :O]`` through its use as the decoder's first input
            (``seed``) is added at ``[:, -1, :O]``.
        history_without_seed: (B, T_in, F) the same without that addition (encoder path only).
        seed: (B, O) relevance of the last observed targets through the decoder seed.
        future: (B, T_out, F_dec) relevance of the known-future inputs (0 after the explained step).
        static: (B, S) relevance of the static features, summed over the decoder steps.
        static_per_step: (B, T_out, S) the same per decoder step.
        feedback: (B, T_out, O) relevance arriving at ŷ_t from step t+1's input (a diagnostic).
        initial_state_relevance: (B,) LRP relevance absorbed by the encoder's zero initial
            states (0 when bias_factor = 0 and for Gradient×Input).
        step: the explained step, or None for all steps summed.
        output: the explained target index.
        method, eps, bias_factor: how it was computed.
    """

    forecasts: np.ndarray
    history: np.ndarray
    history_without_seed: np.ndarray
    seed: np.ndarray
    future: np.ndarray
    static: np.ndarray
    static_per_step: np.ndarray
    feedback: np.ndarray
    initial_state_relevance: np.ndarray
    step: int | None
    output: int
    method: str
    eps: float
    bias_factor: float

    @property
    def explained(self) -> np.ndarray:
        """(B,) the explained quantity: ``forecasts[:, step, output]`` or its sum over steps."""
        series = self.forecasts[:, :, self.output]
        return series.sum(axis=1) if self.step is None else series[:, self.step]

    @property
    def total(self) -> np.ndarray:
        """(B,) the relevance of every input plus the initial states."""
        return (
            self.history.sum(axis=(1, 2))
            + self.future.sum(axis=(1, 2))
            + self.static.sum(axis=1)
            + self.initial_state_relevance
        )

    @property
    def absorbed(self) -> np.ndarray:
        """(B,) ``explained - total``: absorbed by biases and stabilisers (0 for LRP with bias_factor = 1)."""
        return self.explained - self.total

    @property
    def conservation_error(self) -> np.ndarray:
        """(B,) ``|absorbed| / max(|explained|, tiny)``."""
        scale = np.maximum(np.abs(self.explained), np.finfo(self.forecasts.dtype).tiny)
        return np.abs(self.absorbed) / scale


def _infer_spec(arrays: Sequence[np.ndarray], num_layers: int, outputs: int) -> Seq2SeqSpec:
    """Read the sizes of a forecaster off its Keras-ordered weight list."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
        raise InputError(f"num_layers must be a positive int; got {num_layers!r}")
    if isinstance(outputs, bool) or not isinstance(outputs, (int, np.integer)) or outputs < 1:
        raise InputError(f"outputs must be a positive int; got {outputs!r}")
    expected = 6 * num_layers + 3
    if len(arrays) != expected:
        raise LayoutError(
            f"a {num_layers}-layer forecaster has {expected} weight arrays (per encoder and decoder layer: kernel, "
            f"recurrent_kernel, bias; then head1_kernel, head1_bias, head2_kernel); got {len(arrays)}. "
            "Check num_layers and pass the reference files' keras_weight_order"
        )
    shapes = [np.shape(a) for a in arrays]
    recurrent = shapes[1]
    if len(recurrent) != 2 or recurrent[1] != 3 * recurrent[0]:
        raise LayoutError(
            f"enc_l0_recurrent_kernel (array 1) has shape {recurrent}; expected (H, 3H) in Keras GRU layout"
        )
    units = recurrent[0]
    offset = 3 * num_layers
    encoder_in, decoder_in = shapes[0], shapes[offset]
    head1, head2 = shapes[2 * offset], shapes[2 * offset + 2]
    for label, shape in (("enc_l0_kernel", encoder_in), ("dec_l0_kernel", decoder_in), ("head1_kernel", head1)):
        if len(shape) != 2:
            raise LayoutError(f"{label} has shape {shape}; expected a 2-D kernel")
    if len(head2) != 2 or head2[1] != outputs:
        raise LayoutError(f"head2_kernel (the last array) has shape {head2}; expected (head_units, outputs={outputs})")
    future_size = decoder_in[0] - outputs
    static_size = head1[0] - units
    if future_size < 0 or static_size < 0:
        raise LayoutError(
            f"dec_l0_kernel {decoder_in} / head1_kernel {head1} are too small for outputs={outputs}, units={units}: "
            "the decoder's first layer reads outputs + future features, the head reads units + static features"
        )
    return Seq2SeqSpec(
        num_layers=int(num_layers),
        units=int(units),
        input_size=int(encoder_in[0]),
        outputs=int(outputs),
        future_size=int(future_size),
        static_size=int(static_size),
        head_units=int(head1[1]),
    )


class Seq2SeqExplainer:
    """Explains the forecasts of a GRU encoder-decoder with LRP or Gradient×Input.

    Build one with :meth:`from_weights`, :meth:`from_manifest` or :meth:`load`.

    Args:
        spec: the forecaster's sizes.
        weights: arrays in Keras order, or a dict keyed by the schema's names
            (``enc_l0_kernel``, ..., ``head2_kernel``).
        dtype: ``"float32"`` or ``"float64"``.
        rules: a :class:`~tf_lrp.rules.RuleSet` or preset name; default ``"arras2017"``.
            Per-layer overrides (``RuleSet(layers=...)``) are not supported here; ``output``
            is the rule of ``head2``, ``head`` that of ``head1``.
        jit_compile: TensorFlow: ``"auto"`` (default) compiles each step of the time loops
            with XLA (fused elementwise work), ``True`` the whole call, ``False`` nothing.
    """

    def __init__(
        self,
        spec: Seq2SeqSpec,
        weights: Sequence[Any] | Mapping[str, Any],
        dtype: str = "float32",
        rules: RuleSet | str | None = None,
        jit_compile: bool | str = "auto",
    ) -> None:
        if dtype not in DTYPES:
            raise InputError(f"dtype must be one of {DTYPES}; got {dtype!r}")
        self.spec = spec
        self.dtype = dtype
        self.rules = as_ruleset(rules)
        if self.rules.layers:
            raise InputError(
                "the forecaster takes one rule set for all its layers: RuleSet(product=..., sum_spread=..., "
                "head=..., output=...); per-layer rules (RuleSet(layers=...)) are for Explainer networks only"
            )
        self.jit_compile = backend.check_jit_compile(jit_compile)
        checked = check_seq2seq_weights(spec, weights)
        self.weights: list[np.ndarray] = [np.ascontiguousarray(w, dtype=dtype) for w in checked]
        self._compiled: dict[str, backend.Compiled] = {}
        #: the :class:`~tf_lrp.Explainer` of the same network (inputs ``history``, ``future``
        #: and, with static features, ``static``): ``explain(x, step=t, target=o)``,
        #: ``explain_dataset``, ``score`` — what every other network gets
        self.explainer = Explainer(forecaster_layout(spec), self.weights, dtype=dtype, rules=self.rules,
                                   jit_compile=self.jit_compile)  # fmt: skip

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[Any] | Mapping[str, Any],
        num_layers: int,
        outputs: int,
        dtype: str = "float32",
        **options: Any,
    ) -> Seq2SeqExplainer:
        """Build from the forecaster's weights, sizes read off their shapes.

        Args:
            weights: the list ``enc_l0_kernel, enc_l0_recurrent_kernel, enc_l0_bias, ...,
                dec_l0_kernel, ..., head1_kernel, head1_bias, head2_kernel`` (the reference files'
                ``keras_weight_order``), or a dict keyed by those names.
            num_layers: L (encoder and decoder alike).
            outputs: O, forecast targets per step (the first O history features).
            dtype: ``"float32"`` or ``"float64"``.
            **options: passed to :class:`Seq2SeqExplainer` (``rules``, ``jit_compile``).

        Returns:
            The forecaster's explainer.

        Raises:
            LayoutError: when the arrays do not describe such a forecaster (the message names
                the array, the expected and actual shape).
            InputError: for a bad ``num_layers``, ``outputs`` or ``dtype``.
        """
        if isinstance(weights, Mapping):
            names = ["enc_l0_recurrent_kernel"]
            if not all(n in weights for n in names):
                raise LayoutError(f"the weight dict has no {names[0]!r}; expected the names of weights_schema.json")
            probe = Seq2SeqSpec(num_layers=int(num_layers), units=1, input_size=1, outputs=1)
            missing = [s.name for s in probe.arrays if s.name not in weights]
            if missing:
                raise LayoutError(f"the weight dict lacks {missing} for num_layers={num_layers}")
            arrays = [np.asarray(weights[s.name]) for s in probe.arrays]
        else:
            arrays = [np.asarray(w) for w in weights]
        spec = _infer_spec(arrays, num_layers, outputs)
        validate_seq2seq_manifest(spec.manifest)
        return cls(spec, weights if isinstance(weights, Mapping) else arrays, dtype=dtype, **options)

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], weights: Sequence[Any] | Mapping[str, Any], **options: Any
    ) -> Seq2SeqExplainer:
        """Build from a ``seq2seq`` manifest (see ``weights_schema.json``) and its weights.

        Args:
            manifest: the ``seq2seq`` layout, validated against the schema.
            weights: the arrays in the manifest's order, or a dict keyed by their names.
            **options: passed to :class:`Seq2SeqExplainer` (``dtype``, ``rules``, ``jit_compile``).

        Returns:
            The forecaster's explainer.
        """
        return cls(validate_seq2seq_manifest(manifest), weights, **options)

    @classmethod
    def from_torch(cls, state_dict: Any, dtype: str = "float32", **options: Any) -> Seq2SeqExplainer:
        """Build from a PyTorch forecaster's ``state_dict`` (or the module, or a ``.pt``/``.pth``/``.npz`` path).

        Args:
            state_dict: see :func:`tf_lrp.convert.torch.from_torch_seq2seq`.
            dtype: ``"float32"`` or ``"float64"``.
            **options: ``encoder_prefix``, ``decoder_prefix``, ``head1``, ``head2`` go to the
                converter; ``rules`` and ``jit_compile`` to :class:`Seq2SeqExplainer`.

        Returns:
            The forecaster's explainer.

        Raises:
            ConversionError: when the state_dict is not such a forecaster.
        """
        from .convert.torch import from_torch_seq2seq, load_state_dict

        names = ("encoder_prefix", "decoder_prefix", "head1", "head2")
        convert_options = {k: options.pop(k) for k in names if k in options}
        if isinstance(state_dict, (str, os.PathLike)):
            state_dict = load_state_dict(state_dict)
        manifest, weights = from_torch_seq2seq(state_dict, **convert_options)
        return cls.from_manifest(manifest, weights, dtype=dtype, **options)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> Seq2SeqExplainer:
        """Load a forecaster saved with :meth:`save` (plain arrays, no unpickling).

        Args:
            path: the ``.npz`` file.
            **options: passed to :class:`Seq2SeqExplainer`; ``dtype`` defaults to the stored one.

        Returns:
            The forecaster's explainer.
        """
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
        arrays = {spec.name: w for spec, w in zip(self.spec.arrays, self.weights, strict=True)}
        arrays[MANIFEST_KEY] = np.asarray(manifest_json(self.spec))
        _io.save_npz(path, arrays)

    # information ----------------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """The normalised manifest."""
        return self.spec.manifest

    @property
    def trace_count(self) -> int:
        """How often the compiled functions were traced so far (this one's and its explainer's)."""
        return sum(c.traces for c in self._compiled.values()) + self.explainer.trace_count

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the manifest and the weights (as stored, in this explainer's dtype)."""
        import hashlib

        digest = hashlib.sha256(manifest_json(self.spec).encode("utf-8"))
        for array in self.weights:
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    # running --------------------------------------------------------------------------------

    def _function(self, method: str) -> backend.Compiled:
        if method not in self._compiled:
            spec, rules, dtype = self.spec, self.rules, self.dtype
            signature: list[Any] = [
                [backend.TensorSpec(w.shape, dtype) for w in self.weights],
                backend.TensorSpec((None, None, spec.input_size), dtype),
                backend.TensorSpec((None, None, spec.future_size), dtype),
                backend.TensorSpec((None, spec.static_size), dtype),
            ]
            lrp = method == "lrp"
            scalar = backend.TensorSpec((), dtype)
            signature += [backend.TensorSpec((None,), dtype), backend.TensorSpec((spec.outputs,), dtype)]
            signature += [scalar, scalar]

            def run(arrays: Any, x: Any, x_future: Any, static: Any, *rest: Any) -> Any:
                step_weights, one_hot, eps, bias_factor = rest
                fwd = forward(spec, arrays, x, x_future, static)
                mask = seed_mask(step_weights, one_hot)
                seed = fwd.forecasts * mask if lrp else mask + 0 * fwd.forecasts
                back = backward(LRP if lrp else GRADIENT, spec, arrays, fwd, seed, Context(eps, bias_factor, rules))
                return (fwd.forecasts, *back)

            # x, x_future, static are batch-major and every output is: a shape-specialising
            # backend (JAX, XLA) pads the batch to a bucket instead of compiling per batch size
            self._compiled[method] = backend.Compiled(
                run, signature, jit_compile=self.jit_compile, batch_args=(1, 2, 3), loop_width=spec.units
            )
        return self._compiled[method]

    def _check_inputs(
        self, x: Any, x_future: Any, static: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        spec = self.spec
        history = _array("x", x, 3, f"(batch, T_in, {spec.input_size})", self.dtype)
        if history.shape[2] != spec.input_size:
            raise InputError(
                f"x has {history.shape[2]} features per step; the encoder expects {spec.input_size}: "
                f"x must be (batch, T_in, {spec.input_size})"
            )
        batch = history.shape[0]
        if x_future is None:
            raise InputError(
                f"x_future is required: (batch, T_out, {spec.future_size}) known-future inputs; its time axis sets the "
                "forecast horizon (with no future features pass np.zeros((batch, T_out, 0)))"
            )
        future = _array("x_future", x_future, 3, f"(batch, T_out, {spec.future_size})", self.dtype)
        if future.shape[0] != batch or future.shape[2] != spec.future_size:
            raise InputError(
                f"x_future must be (batch={batch}, T_out, {spec.future_size}); got {future.shape}"
            )
        if future.shape[1] == 0:
            raise InputError("x_future has 0 time steps; the forecast horizon T_out must be at least 1")
        if spec.static_size == 0:
            if static is not None and np.size(static) != 0:
                raise InputError(f"this forecaster has no static features; got static of shape {np.shape(static)}")
            static_array = np.zeros((batch, 0), dtype=self.dtype)
        else:
            if static is None:
                raise InputError(f"static is required: (batch, {spec.static_size}) static features")
            static_array = _array("static", static, 2, f"(batch, {spec.static_size})", self.dtype)
            if static_array.shape != (batch, spec.static_size):
                raise InputError(f"static must be (batch={batch}, {spec.static_size}); got {static_array.shape}")
        return history, future, static_array

    def _run(
        self, method: str, per_sample: tuple[np.ndarray, ...], constants: tuple[np.ndarray, ...], batch_size: Any
    ) -> tuple[np.ndarray, ...]:
        """Run a compiled function chunk by chunk; concatenate its (per-sample) outputs."""
        batch = per_sample[0].shape[0]
        chunk = _check_batch_size(batch_size) or batch
        function = self._function(method)
        parts = []
        for start in range(0, batch, chunk):
            result = function(self.weights, *(a[start : start + chunk] for a in per_sample), *constants)
            parts.append(result if isinstance(result, tuple) else (result,))
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts, strict=True))

    def forecast(self, x: Any, x_future: Any, static: Any = None, batch_size: int | None = None) -> np.ndarray:
        """The forecasts of a batch.

        Args:
            x: (B, T_in, F) history.
            x_future: (B, T_out, F_dec) known-future inputs; its time axis sets the horizon.
            static: (B, S) static features (required exactly when S > 0).
            batch_size: samples per compiled call (None: all at once).

        Returns:
            (B, T_out, O) forecasts.
        """
        _check_batch_size(batch_size)
        return self.explainer.score(self._inputs(x, x_future, static), batch_size=batch_size)

    def _step_and_output(self, step: Any, output: Any, horizon: int) -> tuple[int | None, int]:
        """The checked forecast step (None: all, negative counted from the end) and target index."""
        step = _index("step", step, horizon, "the horizon T_out (x_future's time axis)", allow_none=True)
        target = _index("output", output, self.spec.outputs, "the number of forecast targets O", allow_none=False)
        return step, int(target or 0)

    def _inputs(self, x: Any, x_future: Any, static: Any) -> list[np.ndarray]:
        """The checked inputs as the explainer's list: history, future and (S > 0) static."""
        history, future, static_array = self._check_inputs(x, x_future, static)
        return [history, future, static_array] if self.spec.static_size else [history, future]

    def explain_dataset(
        self,
        x: Any,
        x_future: Any,
        static: Any = None,
        step: int | None = None,
        output: int = 0,
        method: str = "lrp",
        eps: float = 1e-3,
        bias_factor: float = 0.0,
        **options: Any,
    ) -> Any:
        """Explain a whole data set in chunks, optionally into resumable files (``out=``).

        The forecaster's run of :meth:`tf_lrp.Explainer.explain_dataset` (see ``docs/dataset.md``):
        the relevance of each input is ``relevance/history``, ``relevance/future`` and
        ``relevance/static`` (the last (N, 1, S) in files, (N, S) in memory); the history's
        includes the seed path, as :attr:`ForecastExplanation.history` does.

        Args:
            x: (N, T_in, F) history (an array or a memory map).
            x_future: (N, T_out, F_dec) known-future inputs.
            static: (N, S) static features, or None when S = 0.
            step: the forecast step, or None for all steps summed.
            output: the target index.
            method: ``lrp``, ``gradient_x_input`` or ``sensitivity``.
            eps: LRP stabiliser ε ≥ 0.
            bias_factor: LRP share of bias and stabiliser that is redistributed, in [0, 1].
            **options: ``out``, ``batch_size``, ``resume``, ``progress``, ``memory_budget``,
                ``strategy`` of :meth:`tf_lrp.Explainer.explain_dataset`.

        Returns:
            An :class:`~tf_lrp.Explanation` (relevance: history, future[, static]) or, with
            ``out=``, the :class:`tf_lrp.dataset.OutputFiles`.
        """
        inputs = self._inputs(x, x_future, static)
        step, targets = self._step_and_output(step, output, inputs[1].shape[1])
        return self.explainer.explain_dataset(
            inputs, method=method, targets=targets, step=step, eps=eps, bias_factor=bias_factor, **options
        )

    def explain(
        self,
        x: Any,
        x_future: Any,
        static: Any = None,
        step: int | None = None,
        output: int = 0,
        method: str = "lrp",
        eps: float = 1e-3,
        bias_factor: float = 0.0,
        batch_size: int | None = None,
    ) -> ForecastExplanation:
        """Explain forecast ``step`` of target ``output`` (or all steps of it, summed).

        Args:
            x: (B, T_in, F) history; the first O features are the targets.
            x_future: (B, T_out, F_dec) known-future inputs; T_out is the horizon.
            static: (B, S) static features, or None when S = 0.
            step: the forecast step in ``[0, T_out)`` (negative counts from the end), or None to
                explain the sum of all steps (each seeded with its own value, one pass).
            output: the target index in ``[0, O)``.
            method: ``"lrp"``, ``"gradient_x_input"``, or ``"gradient"`` (the plain gradient of
                the explained forecast; the history map adds both uses of ``x[:, -1, :O]``).
            eps: LRP stabiliser ε ≥ 0.
            bias_factor: LRP share of bias and stabiliser that is redistributed, in [0, 1].
            batch_size: samples per compiled call (bounds memory: the forward activations of
                every step are kept for the backward pass); None: the whole batch at once.

        Returns:
            A :class:`ForecastExplanation`.

        Raises:
            InputError: for any invalid argument; the message names it and the fix.
        """
        if method not in FORECAST_METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {list(FORECAST_METHODS)}")
        check_lrp_numbers(eps, bias_factor)
        history, future, static_array = self._check_inputs(x, x_future, static)
        horizon, outputs = future.shape[1], self.spec.outputs
        step, output = self._step_and_output(step, output, horizon)
        step_weights = np.ones(horizon, dtype=self.dtype) if step is None else np.eye(horizon, dtype=self.dtype)[step]
        one_hot = np.eye(outputs, dtype=self.dtype)[output]
        scalars = (np.asarray(eps, dtype=self.dtype), np.asarray(bias_factor, dtype=self.dtype))
        core = "lrp" if method == "lrp" else "gradient"  # both gradient methods share one compiled function
        result = self._run(core, (history, future, static_array), (step_weights, one_hot, *scalars), batch_size)
        forecasts, hist, seed, fut, static_steps, feedback, initial = result
        if core == "gradient":
            initial = np.zeros_like(initial)
        if method == "gradient_x_input":
            last = history[:, -1, :outputs]
            hist, seed, fut = hist * history, seed * last, fut * future
            static_steps = static_steps * static_array[:, None, :]
            feedback = feedback * forecasts
        merged = hist.copy()
        merged[:, -1, :outputs] += seed
        for label, value in (("history", merged), ("future", fut), ("static", static_steps)):
            if not np.isfinite(value).all():
                hint = "use eps > 0" if eps == 0 else "check the weights' scale"
                raise InputError(
                    f"{method} produced non-finite {label} relevance (a stabilised denominator was 0); {hint}"
                )
        return ForecastExplanation(
            forecasts=forecasts,
            history=merged,
            history_without_seed=hist,
            seed=seed,
            future=fut,
            static=static_steps.sum(axis=1),
            static_per_step=static_steps,
            feedback=feedback,
            initial_state_relevance=initial,
            step=step,
            output=output,
            method=method,
            eps=float(eps),
            bias_factor=float(bias_factor),
        )

    def __repr__(self) -> str:
        return f"Seq2SeqExplainer({self.spec.describe()}; dtype={self.dtype}, backend={backend.name()})"


def _array(label: str, value: Any, ndim: int, shape: str, dtype: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label} cannot be read as an array ({exc})") from exc
    if array.ndim != ndim:
        raise InputError(f"{label} must have shape {shape}; got {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InputError(f"{label} must hold real numbers; got dtype {array.dtype}")
    if array.shape[0] == 0:
        raise InputError(f"{label} is empty: the batch has 0 samples")
    array = np.asarray(array, dtype=dtype)
    finite = np.isfinite(array)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise InputError(
            f"{label} contains {int((~finite).sum())} NaN or infinite values (first at index {where}); "
            "clean or impute them before explaining"
        )
    return array


def _check_batch_size(batch_size: Any) -> int | None:
    """``batch_size`` as a positive int, or None (the whole batch at once).

    Raises:
        InputError: for anything else.
    """
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int or None; got {batch_size!r}")
    return int(batch_size)


def _index(label: str, value: Any, size: int, what: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        none = "None (all steps) or " if allow_none else ""
        raise InputError(f"{label} must be {none}an int; got {value!r}")
    if not -size <= value < size:
        raise InputError(f"{label}={value} is out of range: {what} is {size}, so use 0..{size - 1} (or -{size}..-1)")
    return int(value) % size


__all__ = ["FORECAST_METHODS", "ForecastExplanation", "Seq2SeqExplainer"]
