"""PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (+ ``nn.Linear`` head) state_dicts -> tf_lrp layouts.

The converter is the canonizer of tf_lrp: every framework difference is removed here, once,
before the numeric core sees the weights (spec ``docs/gru_lrp.md`` §9):

* LSTM: ``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``,
  ``bias = bias_ih + bias_hh``; PyTorch's gate order i, f, g, o equals Keras's i, f, c, o.
* GRU: the row blocks r, z, n are reordered to Keras's z, r, h and transposed; the biases stay
  separate as the (2, 3H) bias of ``reset_after=True`` (row 0 input, row 1 recurrent), because
  PyTorch applies the reset gate to ``W_hn h + b_hn``. A PyTorch GRU is a different function
  from a Keras ``reset_after=False`` GRU, so that mapping is refused.
* RNN (``nn.RNN``, Keras ``SimpleRNN``): ``kernel = weight_ih.T``, ``recurrent_kernel =
  weight_hh.T``, ``bias = bias_ih + bias_hh``; its nonlinearity (tanh / relu) is not in the
  state_dict, so it is read from the module or passed.
* ``nn.Linear``: ``kernel = weight.T`` (D, C), ``bias = bias``.
* ``l{k}_reverse`` is the backward direction of layer k; layer k > 0 reads ``[fw ; bw]`` in
  both frameworks. ``batch_first`` only changes how PyTorch reads its input, not the weights:
  tf_lrp always takes (batch, time, features).

Values may be numpy arrays or torch tensors (read with ``.detach().cpu().numpy()``); torch
itself is imported only by :func:`load_state_dict`, for ``.pt`` / ``.pth`` files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import load_npz
from ..errors import ConversionError, InputError
from ..layout import FORMAT, FORMAT_VERSION, GATES, DenseSpec, LayerSpec, RecurrentSpec, to_manifest, validate_manifest
from . import Converted

#: PyTorch GRU row blocks, in PyTorch order.
TORCH_GRU_GATES: tuple[str, ...] = ("reset", "update", "candidate")
_RNN_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$"
)
_EXPLAINER_HINT = "tf_lrp.convert.from_torch(model.state_dict(), head='auto')"


def _to_numpy(value: Any, key: str) -> np.ndarray:
    """A numpy copy of a numpy array or a torch tensor (duck-typed, no torch import)."""
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
        try:
            value = value.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            value = value.float().numpy()
    try:
        array = np.array(value)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f"state_dict entry {key!r} cannot be read as an array ({exc})") from exc
    if array.dtype.kind != "f":
        raise ConversionError(f"state_dict entry {key!r} has dtype {array.dtype}; expected floating-point weights")
    return array


def _as_state_dict(state_dict: Any) -> dict[str, np.ndarray]:
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    if not isinstance(state_dict, Mapping):
        raise ConversionError(
            "from_torch takes a state_dict (a mapping of names to tensors or arrays), got "
            f"{type(state_dict).__name__}; "
            "pass model.state_dict() or load a file with tf_lrp.convert.torch.load_state_dict(path)"
        )
    return {str(key): value for key, value in state_dict.items()}


def _find_prefix(keys: list[str], rnn_prefix: str | None) -> str:
    if rnn_prefix is not None:
        if f"{rnn_prefix}weight_ih_l0" not in keys:
            raise ConversionError(
                f"no key {rnn_prefix + 'weight_ih_l0'!r} in the state_dict (rnn_prefix={rnn_prefix!r}); "
                f"recurrent keys found: {sorted(k for k in keys if _RNN_KEY.match(k))[:8]}"
            )
        return rnn_prefix
    prefixes = sorted({m.group("prefix") for k in keys if (m := _RNN_KEY.match(k)) and k.endswith("weight_ih_l0")})
    if not prefixes:
        raise ConversionError(
            "the state_dict has no 'weight_ih_l0' entry, so it holds no nn.LSTM / nn.GRU; "
            f"keys are {sorted(keys)[:10]}{' ...' if len(keys) > 10 else ''}"
        )
    if len(prefixes) > 1:
        raise ConversionError(
            f"the state_dict holds several recurrent modules (prefixes {prefixes}); choose one with rnn_prefix=..."
        )
    return prefixes[0]


def _find_head(
    state: dict[str, np.ndarray], taken: set[str], head: str | None
) -> tuple[str, np.ndarray, np.ndarray | None]:
    rest = sorted(set(state) - taken)
    if head is None:
        raise ConversionError(
            "head=None: without an output layer the network has no score to explain (a tf_lrp manifest ends in a "
            "dense layer). Include the nn.Linear head in the state_dict and pass head='auto' or its prefix, "
            "e.g. head='fc.'"
        )
    if head == "auto":
        candidates = sorted({k[: -len("weight")] for k in rest if k.endswith("weight")})
        if not candidates:
            raise ConversionError(
                "no nn.Linear head found (no '<prefix>weight' key besides the recurrent module's); a tf_lrp "
                "manifest ends in a dense layer: add the head's weight and bias to the state_dict "
                f"(e.g. {_EXPLAINER_HINT})"
            )
        if len(candidates) > 1:
            raise ConversionError(
                f"several candidate heads {candidates}; name the output nn.Linear with head='<prefix>' "
                "(tf_lrp converts a single linear head)"
            )
        head = candidates[0]
    weight_key, bias_key = f"{head}weight", f"{head}bias"
    if weight_key not in state:
        raise ConversionError(f"head={head!r}: no key {weight_key!r} in the state_dict; keys besides the RNN: {rest}")
    weight = _to_numpy(state[weight_key], weight_key)
    if weight.ndim != 2:
        raise ConversionError(
            f"{weight_key!r} has shape {weight.shape}; an nn.Linear weight is (out_features, in_features)"
        )
    bias = _to_numpy(state[bias_key], bias_key) if bias_key in state else None
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ConversionError(
            f"{bias_key!r} has shape {bias.shape}; expected ({weight.shape[0]},) to match {weight_key!r}"
        )
    return head, weight, bias


def _module_nonlinearity(module: Any) -> str | None:
    """The ``nonlinearity`` of the ``nn.RNN`` inside ``module`` (None for a state_dict or no nn.RNN)."""
    modules = getattr(module, "modules", None)
    if not callable(modules):
        return None
    found = [m.nonlinearity for m in modules() if type(m).__name__ == "RNN" and hasattr(m, "nonlinearity")]
    return str(found[0]) if found else None


def _gru_rows(matrix: np.ndarray, units: int) -> np.ndarray:
    """Reorder the PyTorch row blocks (r, z, n) into Keras order (z, r, h) along axis 0."""
    blocks = {gate: matrix[index * units : (index + 1) * units] for index, gate in enumerate(TORCH_GRU_GATES)}
    return np.concatenate([blocks[gate] for gate in GATES["gru"]], axis=0)


def from_torch(
    state_dict: Any,
    *,
    head: str | None = "auto",
    cell: str | None = None,
    num_layers: int | None = None,
    bidirectional: bool | None = None,
    batch_first: bool = True,
    rnn_prefix: str | None = None,
    head_activation: str = "linear",
    reset_after: bool = True,
    nonlinearity: str | None = None,
) -> Converted:
    """Convert an ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state_dict with an ``nn.Linear`` head.

    Args:
        state_dict: ``model.state_dict()`` (values torch tensors or numpy arrays), or a module
            with a ``state_dict()`` method. It may hold the RNN's keys (``weight_ih_l0``, ...,
            optionally under a prefix such as ``"lstm."``) and the head's ``weight`` / ``bias``.
        head: ``"auto"`` (the one ``<prefix>weight`` key outside the RNN), a prefix such as
            ``"fc."``, or None, which is refused: the explained score is the head's output.
        cell: ``"lstm"``, ``"gru"`` or ``"simple_rnn"``; None infers it from ``weight_hh_l0``
            (4H rows: LSTM, 3H: GRU, H: ``nn.RNN``).
        num_layers: None infers it from the keys; a number is checked against them.
        bidirectional: None infers it from ``*_reverse`` keys; a bool is checked against them.
        batch_first: accepted for symmetry with ``nn.LSTM``; it does not change the weights
            (tf_lrp always takes (batch, time, features)).
        rnn_prefix: the recurrent module's key prefix, e.g. ``"lstm."``; None finds it.
        head_activation: the activation of the head (recorded in the manifest; the explained
            score is its pre-activation).
        reset_after: GRU only; must be True (see module docstring).
        nonlinearity: ``nn.RNN`` only: ``"tanh"`` or ``"relu"``, which a state_dict does not
            record; None reads it from the module when one is given (a bare state_dict of an
            ``nn.RNN`` then needs it).

    Returns:
        :class:`~tf_lrp.convert.Converted` ``(manifest, weights)`` in Keras order.

    Raises:
        ConversionError: naming the key at fault and the fix: a missing or unknown key, a
            projection (``proj_size != 0``), sizes that do not chain, an inconsistent
            ``cell`` / ``num_layers`` / ``bidirectional``, ``reset_after=False`` for a GRU.
    """
    del batch_first  # documents the torch module's input layout only
    if nonlinearity is None:
        nonlinearity = _module_nonlinearity(state_dict)
    state = _as_state_dict(state_dict)
    keys = list(state)
    prefix = _find_prefix(keys, rnn_prefix)
    rnn_keys = {k for k in keys if (m := _RNN_KEY.match(k)) and m.group("prefix") == prefix}
    projections = sorted(k for k in rnn_keys if "weight_hr" in k)
    if projections:
        raise ConversionError(
            f"{projections[0]!r}: an LSTM with proj_size != 0 (a projected state) has no Keras equivalent; "
            "tf_lrp supports proj_size=0 only"
        )
    arrays = {k: _to_numpy(state[k], k) for k in rnn_keys}
    hh = arrays.get(f"{prefix}weight_hh_l0")
    if hh is None or hh.ndim != 2:
        raise ConversionError(f"{prefix + 'weight_hh_l0'!r} is missing or not 2-D; it must be (gates*H, H)")
    units = hh.shape[1]
    if hh.shape[0] % units:
        raise ConversionError(f"{prefix + 'weight_hh_l0'!r} has shape {hh.shape}; expected (4H, H) or (3H, H)")
    inferred = {len(gates): kind for kind, gates in GATES.items()}.get(hh.shape[0] // units)
    if inferred is None:
        raise ConversionError(
            f"{prefix + 'weight_hh_l0'!r} has shape {hh.shape}: {hh.shape[0] // units} gate blocks; "
            "nn.LSTM has 4, nn.GRU has 3, nn.RNN has 1"
        )
    if cell is not None and cell != inferred:
        article = "an" if inferred == "lstm" else "a"
        raise ConversionError(
            f"cell={cell!r} but {prefix + 'weight_hh_l0'!r} has shape {hh.shape}, which is {article} "
            f"{inferred.upper()}; pass cell={inferred!r} or None"
        )
    cell = inferred
    if cell == "gru" and not reset_after:
        raise ConversionError(
            "reset_after=False cannot represent a PyTorch GRU: PyTorch applies the reset gate after the recurrent "
            "product (r ⊙ (W_hn h + b_hn)), which is Keras's reset_after=True; reset_after=False is a different "
            "function (errors of order 1 on random weights). Use reset_after=True (the default)."
        )
    if cell != "gru" and not reset_after:
        raise ConversionError(
            f"reset_after is a GRU option; an {cell.upper()} has no reset gate: leave reset_after=True"
        )
    activation = "tanh"
    if cell == "simple_rnn":
        if nonlinearity not in ("tanh", "relu"):
            raise ConversionError(
                f"an nn.RNN state_dict does not record its nonlinearity: pass nonlinearity='tanh' or 'relu' "
                f"(got {nonlinearity!r}), or pass the module itself"
            )
        activation = nonlinearity
    elif nonlinearity is not None and _module_nonlinearity(state_dict) is None:
        raise ConversionError(f"nonlinearity is an nn.RNN option; an nn.{cell.upper()} has none: leave it None")
    gates = len(GATES[cell])
    matches = [m for k in rnn_keys if (m := _RNN_KEY.match(k))]
    layers_found = 1 + max(int(m.group("layer")) for m in matches)
    has_reverse = any(m.group("rev") for m in matches)
    if num_layers is not None and num_layers != layers_found:
        raise ConversionError(
            f"num_layers={num_layers} but the state_dict holds layers l0..l{layers_found - 1} under {prefix!r}; "
            f"pass num_layers={layers_found} or None"
        )
    if bidirectional is not None and bidirectional != has_reverse:
        found = "has" if has_reverse else "has no"
        raise ConversionError(
            f"bidirectional={bidirectional} but the state_dict {found} '*_reverse' keys; "
            f"pass bidirectional={has_reverse} or None"
        )
    suffixes = ("", "_reverse") if has_reverse else ("",)
    use_bias = f"{prefix}bias_ih_l0" in arrays
    expected: list[str] = []
    for layer in range(layers_found):
        for suffix in suffixes:
            for kind in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if use_bias else ()):
                expected.append(f"{prefix}{kind}_l{layer}{suffix}")
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise ConversionError(
            f"state_dict is missing {missing[0]!r} (and {len(missing) - 1} more) for a {layers_found}-layer "
            f"{'bidirectional ' if has_reverse else ''}{cell.upper()}; save the whole module's state_dict()"
        )
    unknown = sorted(set(arrays) - set(expected))
    if unknown:
        raise ConversionError(f"unexpected recurrent key {unknown[0]!r}; expected exactly {expected}")

    directions = len(suffixes)
    layers: list[LayerSpec] = []
    weights: list[np.ndarray] = []
    input_size: int | None = None
    first_input = 0
    for layer in range(layers_found):
        for suffix in suffixes:
            name = f"{prefix}%s_l{layer}{suffix}"
            w_ih, w_hh = arrays[name % "weight_ih"], arrays[name % "weight_hh"]
            want_in = input_size if layer > 0 else None
            if w_hh.shape != (gates * units, units):
                raise ConversionError(
                    f"{name % 'weight_hh'!r} has shape {w_hh.shape}; expected ({gates * units}, {units}) "
                    f"like {prefix + 'weight_hh_l0'!r} (all layers of one nn.{cell.upper()} share hidden_size)"
                )
            if w_ih.ndim != 2 or w_ih.shape[0] != gates * units or (want_in is not None and w_ih.shape[1] != want_in):
                want = f"({gates * units}, {want_in if want_in is not None else 'input_size'})"
                raise ConversionError(f"{name % 'weight_ih'!r} has shape {w_ih.shape}; expected {want}")
            if layer == 0 and suffix == "":
                first_input = w_ih.shape[1]
            elif layer == 0 and w_ih.shape[1] != first_input:
                raise ConversionError(
                    f"{name % 'weight_ih'!r} has shape {w_ih.shape}; expected ({gates * units}, {first_input})"
                )
            biases = []
            if use_bias:
                for kind in ("bias_ih", "bias_hh"):
                    bias = arrays[name % kind]
                    if bias.shape != (gates * units,):
                        raise ConversionError(
                            f"{name % kind!r} has shape {bias.shape}; expected ({gates * units},)"
                        )
                    biases.append(bias)
            if cell in ("lstm", "simple_rnn"):  # same gate order as Keras; the two biases add up
                weights += [w_ih.T.copy(), w_hh.T.copy()]
                if use_bias:
                    weights.append(biases[0] + biases[1])
            else:
                weights += [_gru_rows(w_ih, units).T.copy(), _gru_rows(w_hh, units).T.copy()]
                if use_bias:
                    weights.append(np.stack([_gru_rows(b, units) for b in biases]))
        layers.append(
            RecurrentSpec(
                cell=cell,
                units=units,
                input_size=first_input if layer == 0 else directions * units,
                direction="bidirectional" if has_reverse else "forward",
                return_sequences=layer < layers_found - 1,
                reset_after=True,
                activation=activation,
                use_bias=use_bias,
            )
        )
        input_size = directions * units

    head_prefix, head_weight, head_bias = _find_head(state, rnn_keys, head)
    leftover = sorted(set(state) - rnn_keys - {f"{head_prefix}weight", f"{head_prefix}bias"})
    if leftover:
        raise ConversionError(
            f"unknown state_dict key {leftover[0]!r} (of {leftover}); from_torch converts one nn.LSTM/nn.GRU and one "
            "nn.Linear head: drop other entries (e.g. an embedding) before converting"
        )
    if head_weight.shape[1] != directions * units:
        raise ConversionError(
            f"{head_prefix + 'weight'!r} has shape {head_weight.shape}; the head reads the top layer's final state "
            f"of width {directions * units}, so expected (out_features, {directions * units})"
        )
    weights.append(head_weight.T.copy())
    if head_bias is not None:
        weights.append(head_bias)
    layers.append(
        DenseSpec(
            units=head_weight.shape[0],
            input_size=directions * units,
            activation=head_activation,
            use_bias=head_bias is not None,
        )
    )
    manifest = to_manifest(layers)
    validate_manifest(manifest)
    return Converted(manifest, weights)


def _seq2seq_gru(state: dict[str, Any], prefix: str, role: str) -> tuple[int, list[np.ndarray]]:
    """Convert one unidirectional ``nn.GRU`` under ``prefix``: (num_layers, Keras-ordered arrays)."""
    weights: list[np.ndarray] = []
    layer = 0
    while f"{prefix}weight_ih_l{layer}" in state:
        arrays = {}
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            key = f"{prefix}{kind}_l{layer}"
            if key not in state:
                raise ConversionError(f"{role}: state_dict is missing {key!r}; the {role} must be an nn.GRU with bias")
            arrays[kind] = _to_numpy(state[key], key)
        w_hh = arrays["weight_hh"]
        if w_hh.ndim != 2 or w_hh.shape[0] != 3 * w_hh.shape[1]:
            raise ConversionError(
                f"{prefix + 'weight_hh_l' + str(layer)!r} has shape {w_hh.shape}; the {role} must be an nn.GRU: (3H, H)"
            )
        units = w_hh.shape[1]
        weights += [
            _gru_rows(arrays["weight_ih"], units).T.copy(),
            _gru_rows(w_hh, units).T.copy(),
            np.stack([_gru_rows(arrays["bias_ih"], units), _gru_rows(arrays["bias_hh"], units)]),
        ]
        layer += 1
    if any(k.startswith(prefix) and k.endswith("_reverse") for k in state):
        raise ConversionError(f"{role} {prefix!r} is bidirectional; the forecaster's GRUs are unidirectional")
    if layer == 0:
        raise ConversionError(f"no {prefix + 'weight_ih_l0'!r} in the state_dict: name the {role} GRU's prefix")
    return layer, weights


def from_torch_seq2seq(
    state_dict: Any,
    *,
    encoder_prefix: str | None = None,
    decoder_prefix: str | None = None,
    head1: str | None = None,
    head2: str | None = None,
) -> Converted:
    """Convert a PyTorch GRU encoder-decoder forecaster (Mirzavand Borujeni et al. 2023).

    The model: an ``nn.GRU`` encoder, an ``nn.GRU`` decoder with as many layers, run one step at
    a time on ``[ŷ_(t−1) ; x_future_t]``, and a head ``out2(relu(out1([h ; static])))`` where
    ``out2`` has no bias (see ``docs/forecaster.md``).

    Args:
        state_dict: the model's ``state_dict()`` (tensors or numpy arrays), or the module.
        encoder_prefix: key prefix of the encoder GRU (e.g. ``"encoder.rnn_layer."``); None:
            the one recurrent prefix that contains ``"enc"``.
        decoder_prefix: the decoder GRU's prefix; None: the one that contains ``"dec"``.
        head1: prefix of the head's first ``nn.Linear`` (with bias); None: the linear layer
            with a bias.
        head2: prefix of the output ``nn.Linear`` (no bias); None: the linear layer without one.

    Returns:
        :class:`~tf_lrp.convert.Converted` with a ``seq2seq`` manifest and the weights in the
        order of ``weights_schema.json`` (``Seq2SeqExplainer.from_manifest(*converted)``).

    Raises:
        ConversionError: naming the key or prefix at fault and the fix.
    """
    state = _as_state_dict(state_dict)
    keys = list(state)
    prefixes = sorted({m.group("prefix") for k in keys if (m := _RNN_KEY.match(k)) and k.endswith("weight_ih_l0")})

    def pick(given: str | None, word: str, role: str) -> str:
        if given is not None:
            return given
        found = [p for p in prefixes if word in p.lower()]
        if len(found) != 1:
            raise ConversionError(
                f"cannot tell the {role} GRU from the recurrent prefixes {prefixes}; pass {role}_prefix='...'"
            )
        return found[0]

    encoder, decoder = pick(encoder_prefix, "enc", "encoder"), pick(decoder_prefix, "dec", "decoder")
    encoder_layers, encoder_weights = _seq2seq_gru(state, encoder, "encoder")
    decoder_layers, decoder_weights = _seq2seq_gru(state, decoder, "decoder")
    if encoder_layers != decoder_layers:
        raise ConversionError(
            f"the encoder has {encoder_layers} layers and the decoder {decoder_layers}; decoder layer l starts from "
            "encoder layer l's final state, so they must be equally deep"
        )
    gru_keys = {k for k in keys if (m := _RNN_KEY.match(k)) and m.group("prefix") in (encoder, decoder)}
    linear = sorted({k[: -len("weight")] for k in set(keys) - gru_keys if k.endswith("weight")})
    if head1 is None:
        with_bias = [p for p in linear if f"{p}bias" in state]
        if len(with_bias) != 1:
            raise ConversionError(f"cannot find the head's first nn.Linear among {linear}; pass head1='...'")
        head1 = with_bias[0]
    if head2 is None:
        without = [p for p in linear if f"{p}bias" not in state]
        if len(without) != 1:
            raise ConversionError(f"cannot find the bias-free output nn.Linear among {linear}; pass head2='...'")
        head2 = without[0]
    for key in (f"{head1}weight", f"{head1}bias", f"{head2}weight"):
        if key not in state:
            raise ConversionError(f"state_dict has no {key!r}; check head1 / head2")
    if f"{head2}bias" in state:
        raise ConversionError(f"{head2 + 'bias'!r}: the forecaster's output layer has no bias (nn.Linear(bias=False))")
    used = gru_keys | {f"{head1}weight", f"{head1}bias", f"{head2}weight"}
    leftover = sorted(set(keys) - used)
    if leftover:
        raise ConversionError(
            f"unknown state_dict key {leftover[0]!r} (of {leftover}); it is not part of the forecaster"
        )
    w1, b1, w2 = (_to_numpy(state[k], k) for k in (f"{head1}weight", f"{head1}bias", f"{head2}weight"))
    units = encoder_weights[1].shape[0]
    input_size = encoder_weights[0].shape[0]
    outputs = w2.shape[0]
    if w1.ndim != 2 or w2.ndim != 2 or w1.shape[1] < units or w2.shape[1] != w1.shape[0]:
        raise ConversionError(
            f"head shapes {head1}weight {w1.shape}, {head2}weight {w2.shape} do not chain: expected "
            f"(H', {units} + S) and (O, H')"
        )
    entry = {
        "kind": "seq2seq",
        "num_layers": encoder_layers,
        "units": units,
        "input_size": input_size,
        "outputs": outputs,
        "future_size": decoder_weights[0].shape[0] - outputs,
        "static_size": w1.shape[1] - units,
        "head_units": w1.shape[0],
    }
    if entry["future_size"] < 0:
        raise ConversionError(
            f"the decoder reads {decoder_weights[0].shape[0]} features per step but the head forecasts {outputs}; "
            "the decoder's input is [previous forecast ; known-future features]"
        )
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "layers": [entry]}
    return Converted(manifest, [*encoder_weights, *decoder_weights, w1.T.copy(), b1, w2.T.copy()])


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a state_dict from ``.npz`` (no pickle) or ``.pt`` / ``.pth`` (``torch.load(weights_only=True)``).

    Args:
        path: the file.

    Returns:
        A dict from key to numpy array.

    Raises:
        InputError: the file is missing, has another suffix, or torch is needed but missing.
        ConversionError: the file does not hold a plain state_dict.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"state_dict file {str(file)!r} does not exist")
    suffix = file.suffix.lower()
    if suffix == ".npz":
        return load_npz(file)
    if suffix not in (".pt", ".pth"):
        raise InputError(f"{str(file)!r}: expected a .npz, .pt or .pth file; got suffix {suffix!r}")
    try:
        import torch
    except ImportError as exc:
        raise InputError(
            f"reading {str(file)!r} needs PyTorch: pip install 'tf_lrp[torch]', or save the state_dict as .npz: "
            "numpy.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})"
        ) from exc
    try:
        loaded = torch.load(file, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for unsafe or broken files
        raise ConversionError(
            f"{str(file)!r} cannot be loaded safely (torch.load(weights_only=True): {exc}); "
            "save model.state_dict(), not the whole module"
        ) from exc
    if isinstance(loaded, Mapping) and "state_dict" in loaded and isinstance(loaded["state_dict"], Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ConversionError(f"{str(file)!r} holds a {type(loaded).__name__}, not a state_dict (a dict of tensors)")
    return {str(k): _to_numpy(v, str(k)) for k, v in loaded.items()}


__all__ = ["from_torch", "from_torch_seq2seq", "load_state_dict"]
