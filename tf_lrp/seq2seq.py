"""The GRU encoder-decoder forecaster's own manifest and weight files (kind ``seq2seq``).

The forecaster (Mirzavand Borujeni et al. 2023) is one node of the layer graph:
:class:`~tf_lrp.layout.Seq2SeqSpec` is its spec, :mod:`tf_lrp.nodes.forecaster` its numerics
(re-exported here: ``forward``, ``backward``, ``group_params``, ...). This module reads the
forecaster's own version-1 manifest (one ``seq2seq`` layer) and its arrays (``enc_l{i}_kernel``
... ``head2_kernel``, Keras layout, in ``get_weights()`` order), as ``Seq2SeqExplainer`` saves them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import numpy as np

from .errors import LayoutError
from .layout import Seq2SeqSpec, load_schema
from .nodes.forecaster import (
    DecoderStep,
    ForecasterNode,
    Seq2SeqBackward,
    Seq2SeqForward,
    Seq2SeqParams,
    backward,
    forward,
    group_params,
    seed_mask,
)

KIND = "seq2seq"


def validate_seq2seq_manifest(manifest: Mapping[str, Any]) -> Seq2SeqSpec:
    """Validate a ``seq2seq`` manifest against ``weights_schema.json`` and for meaning.

    Raises:
        LayoutError: listing every schema violation, or the first inconsistency (more targets
            than history features, a manifest with other layers).
    """
    if not isinstance(manifest, Mapping):
        raise LayoutError(f"a layout manifest is a JSON object (dict); got {type(manifest).__name__}")
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        raise LayoutError("the layout manifest does not match weights_schema.json:\n  " + "\n  ".join(problems))
    layers = manifest["layers"]
    if len(layers) != 1 or layers[0]["kind"] != KIND:
        raise LayoutError(
            f"a forecaster manifest has exactly one layer of kind {KIND!r}; got kinds {[e['kind'] for e in layers]} "
            "(classifiers are built with tf_lrp.Explainer)"
        )
    spec = Seq2SeqSpec.from_entry(layers[0])
    if spec.outputs > spec.input_size:
        raise LayoutError(
            f"outputs={spec.outputs} exceeds input_size={spec.input_size}: the decoder's seed ŷ_(-1) is the last "
            f"observed targets x[:, -1, :outputs], so the first {spec.outputs} history features must be the targets"
        )
    return spec


def check_seq2seq_weights(spec: Seq2SeqSpec, weights: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
    """Check weights (a list in Keras order, or a dict keyed by the schema's names) against ``spec``.

    Returns:
        The arrays as numpy arrays, in Keras order.

    Raises:
        LayoutError: wrong count, missing or unknown names, wrong shapes (with the expression
            and a hint for the transposed PyTorch layout), non-float dtypes, NaN or inf.
    """
    specs = spec.arrays
    listing = ", ".join(f"{s.name} {s.shape}" for s in specs)
    if isinstance(weights, Mapping):
        names = {s.name for s in specs}
        missing = [s.name for s in specs if s.name not in weights]
        unknown = sorted(set(weights) - names)
        if missing or unknown:
            raise LayoutError(
                f"weights do not match the forecaster: missing {missing}, unknown {unknown}; expected {listing}"
            )
        arrays = [weights[s.name] for s in specs]
    else:
        arrays = list(weights)
        if len(arrays) != len(specs):
            raise LayoutError(
                f"expected {len(specs)} weight arrays for a {spec.num_layers}-layer forecaster (6 per layer pair + 3 "
                f"for the head), got {len(arrays)}. Expected, in order: {listing}"
            )
    checked = []
    for array_spec, value in zip(specs, arrays, strict=True):
        array = np.asarray(value)
        where = f"array {array_spec.name!r}"
        if array.dtype.kind != "f":
            raise LayoutError(f"{where}: dtype {array.dtype} is not a real floating type; pass float32 or float64")
        if array.shape != array_spec.shape:
            hint = (
                " This is the transposed (PyTorch) layout: transpose it (GRU weights also need the r, z, n -> z, r, h "
                "block reorder, see docs/pytorch.md)."
                if array.ndim == 2 and array.shape == array_spec.shape[::-1]
                else " Check the sizes (num_layers, outputs) and the order of the arrays."
            )
            expr = "(" + ", ".join(array_spec.shape_expr) + ")"
            raise LayoutError(f"{where}: expected shape {array_spec.shape} = {expr}, got {array.shape}.{hint}")
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise LayoutError(f"{where}: {bad} of {array.size} values are NaN or infinite")
        checked.append(array)
    return checked


def manifest_json(spec: Seq2SeqSpec) -> str:
    """The normalised manifest as canonical JSON."""
    return json.dumps(spec.manifest, sort_keys=True)


__all__ = [
    "KIND",
    "DecoderStep",
    "ForecasterNode",
    "Seq2SeqBackward",
    "Seq2SeqForward",
    "Seq2SeqParams",
    "Seq2SeqSpec",
    "backward",
    "check_seq2seq_weights",
    "forward",
    "group_params",
    "manifest_json",
    "seed_mask",
    "validate_seq2seq_manifest",
]
