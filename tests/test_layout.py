"""The layout manifest, its schema and the weight checks: every LayoutError path names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import tf_lrp
from tf_lrp import Explainer, LayoutError
from tf_lrp.layout import (
    GRU_GATES,
    LSTM_GATES,
    ConcatenateSpec,
    DenseSpec,
    InputSpec,
    RecurrentSpec,
    check_weights,
    eval_shape_expr,
    gate_slice,
    input_edge,
    load_schema,
    to_manifest,
    validate_manifest,
)

ROOT = Path(__file__).resolve().parents[1]


def lstm_manifest(bidirectional: bool = True, units: int = 4, input_size: int = 3, classes: int = 2) -> dict:
    return {
        "format": "tf_lrp.layout",
        "version": 1,
        "layers": [
            {
                "kind": "lstm",
                "units": units,
                "input_size": input_size,
                "direction": "bidirectional" if bidirectional else "forward",
            },
            {"kind": "dense", "units": classes, "input_size": units * (2 if bidirectional else 1)},
        ],
    }


def lstm_weights(rng, bidirectional=True, units=4, input_size=3, classes=2, dtype=np.float64):
    weights = []
    for _ in range(2 if bidirectional else 1):
        weights += [
            rng.normal(size=(input_size, 4 * units)),
            rng.normal(size=(units, 4 * units)),
            rng.normal(size=(4 * units,)),
        ]
    weights += [rng.normal(size=(units * (2 if bidirectional else 1), classes)), rng.normal(size=(classes,))]
    return [w.astype(dtype) for w in weights]


# -- schema ------------------------------------------------------------------------------------


def test_schema_is_valid_2020_12_and_shipped_in_package() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # the top-level file is the very same document users of a checkout see
    assert json.loads((ROOT / "weights_schema.json").read_text()) == schema
    packaged = Path(tf_lrp.__file__).parent / "weights_schema.json"
    assert packaged.is_file()


def test_normalised_manifest_validates_against_schema(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    jsonschema.validate(layout.manifest, load_schema())
    assert layout.manifest["layers"][0]["gate_order"] == list(LSTM_GATES)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.update(format="keras"), "format"),
        (lambda m: m.update(version=2), "version"),
        (lambda m: m["layers"][0].update(units=0), "layers/0/units"),
        (lambda m: m["layers"][0].update(kind="conv2d"), "layers/0/kind"),
        (lambda m: m["layers"][0].update(direction="both"), "layers/0/direction"),
        (lambda m: m["layers"][0].update(gate_order=["i", "c", "f", "o"]), "layers/0/gate_order"),
        (lambda m: m["layers"][0].update(spare=1), "layers/0"),
        (lambda m: m.update(layers=[]), "layers"),
    ],
)
def test_schema_violations_are_reported_with_their_path(mutate, message) -> None:
    manifest = lstm_manifest()
    mutate(manifest)
    with pytest.raises(LayoutError, match=r"does not match weights_schema\.json") as info:
        validate_manifest(manifest)
    assert message in str(info.value)


def test_gru_requires_reset_after() -> None:
    manifest = lstm_manifest()
    manifest["layers"][0]["kind"] = "gru"
    with pytest.raises(LayoutError, match="reset_after"):
        validate_manifest(manifest)


def test_manifest_must_be_a_dict() -> None:
    with pytest.raises(LayoutError, match="JSON object"):
        validate_manifest([1, 2])  # type: ignore[arg-type]


# -- structure ---------------------------------------------------------------------------------


def test_layers_that_do_not_chain_name_the_fix() -> None:
    manifest = lstm_manifest(bidirectional=True, units=4)
    manifest["layers"][1]["input_size"] = 4
    with pytest.raises(LayoutError, match=r"layer 1 \(dense\) has input_size 4 .* set input_size of layer 1 to 8"):
        validate_manifest(manifest)


def test_structure_errors() -> None:
    only_dense = {"format": "tf_lrp.layout", "version": 1, "layers": [{"kind": "dense", "units": 2, "input_size": 3}]}
    with pytest.raises(LayoutError, match=r"no recurrent"):
        validate_manifest(only_dense)
    no_head = lstm_manifest()
    no_head["layers"].pop()
    with pytest.raises(LayoutError, match="last layer must be a dense"):
        validate_manifest(no_head)
    returns_sequences = lstm_manifest()
    returns_sequences["layers"][0]["return_sequences"] = True
    with pytest.raises(LayoutError, match="return_sequences=false"):
        validate_manifest(returns_sequences)
    stacked = lstm_manifest(bidirectional=False)
    stacked["layers"].insert(0, {"kind": "lstm", "units": 3, "input_size": 3})
    with pytest.raises(LayoutError, match=r"layer 0 .* feeds another recurrent layer"):
        validate_manifest(stacked)
    hidden_softmax = lstm_manifest(bidirectional=False)
    hidden_softmax["layers"].insert(1, {"kind": "dense", "units": 4, "input_size": 4, "activation": "softmax"})
    with pytest.raises(LayoutError, match="must use one of"):
        validate_manifest(hidden_softmax)
    late_embedding = lstm_manifest()
    late_embedding["layers"].insert(1, {"kind": "embedding", "input_dim": 5, "output_dim": 8})
    with pytest.raises(LayoutError, match="embedding layer can only be the first"):
        validate_manifest(late_embedding)


# -- weights -----------------------------------------------------------------------------------


def test_good_weights_pass_as_list_and_dict(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    weights = lstm_weights(rng)
    assert len(check_weights(layout, weights)) == 8
    as_dict = {spec.key: w for spec, w in zip(layout.arrays, weights, strict=True)}
    assert [a.shape for a in check_weights(layout, as_dict)] == [w.shape for w in weights]
    assert [s.key for s in layout.arrays][:3] == ["0/forward/kernel", "0/forward/recurrent_kernel", "0/forward/bias"]


def test_wrong_count_lists_the_expected_arrays(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    with pytest.raises(LayoutError, match=r"expected 8 weight arrays .* got 7.*0/forward/kernel \(3, 16\)"):
        check_weights(layout, lstm_weights(rng)[:-1])


def test_dict_keys_must_match(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    weights = {spec.key: w for spec, w in zip(layout.arrays, lstm_weights(rng), strict=True)}
    weights["0/sideways/kernel"] = weights.pop("0/backward/kernel")
    with pytest.raises(LayoutError, match=r"missing \['0/backward/kernel'\], unknown \['0/sideways/kernel'\]"):
        check_weights(layout, weights)


def test_pytorch_layout_kernel_is_recognised(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    weights = lstm_weights(rng)
    weights[0] = weights[0].T
    with pytest.raises(
        LayoutError,
        match=r"layer 0 \(lstm\) array 'forward/kernel': expected shape \(3, 16\) = \(input_size, 4\*units\), "
        r"got \(16, 3\)\. This is PyTorch layout .* transpose it",
    ):
        check_weights(layout, weights)


def test_transposed_dense_kernel_is_recognised(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    weights = lstm_weights(rng)
    weights[6] = weights[6].T
    with pytest.raises(LayoutError, match=r"layer 1 \(dense\) array 'kernel'.*nn.Linear.*transpose"):
        check_weights(layout, weights)


def test_wrong_dtype_and_non_finite(rng) -> None:
    layout = validate_manifest(lstm_manifest())
    weights = lstm_weights(rng)
    weights[2] = weights[2].astype(np.int64)
    with pytest.raises(LayoutError, match=r"'forward/bias': dtype int64 is not a real floating type"):
        check_weights(layout, weights)
    weights = lstm_weights(rng)
    weights[4][1, 2] = np.nan
    weights[4][0, 0] = np.inf
    with pytest.raises(LayoutError, match=r"'backward/recurrent_kernel': 2 of 64 values are NaN or infinite"):
        check_weights(layout, weights)


def test_gru_bias_variant_hint(rng) -> None:
    manifest = lstm_manifest(bidirectional=False)
    manifest["layers"][0].update(kind="gru", reset_after=True)
    layout = validate_manifest(manifest)
    weights = [rng.normal(size=(3, 12)), rng.normal(size=(4, 12)), rng.normal(size=(12,))]
    weights += [rng.normal(size=(4, 2)), rng.normal(size=(2,))]
    with pytest.raises(LayoutError, match=r"belongs to reset_after=False"):
        check_weights(layout, weights)


def test_from_weights_reports_wrong_gate_count(rng) -> None:
    gru_like = [rng.normal(size=(3, 12)), rng.normal(size=(4, 12)), rng.normal(size=(2, 12))]
    gru_like += [rng.normal(size=(4, 2)), rng.normal(size=(2,))]
    with pytest.raises(LayoutError, match=r"That is a GRU .* pass cell='gru'"):
        Explainer.from_weights(gru_like, cell="lstm", bidirectional=False)


def test_from_weights_reports_pytorch_recurrent_layout(rng) -> None:
    weights = lstm_weights(rng, bidirectional=False)
    weights[1] = weights[1].T
    with pytest.raises(LayoutError, match="PyTorch layout"):
        Explainer.from_weights(weights, cell="lstm", bidirectional=False)


def test_from_weights_wrong_direction_count(rng) -> None:
    # a unidirectional list read as bidirectional leaves the dense kernel in the wrong place
    with pytest.raises(LayoutError):
        Explainer.from_weights(lstm_weights(rng, bidirectional=False), cell="lstm", bidirectional=True)


def test_from_weights_several_dense_layers_need_activations(rng) -> None:
    weights = lstm_weights(rng, bidirectional=False)
    head = [rng.normal(size=(4, 5)), rng.normal(size=(5,)), rng.normal(size=(5, 2)), rng.normal(size=(2,))]
    weights = [*weights[:3], *head]
    with pytest.raises(LayoutError, match=r"pass dense_activations=\[...\] with 2 names"):
        Explainer.from_weights(weights, cell="lstm", bidirectional=False)
    ex = Explainer.from_weights(weights, cell="lstm", bidirectional=False, dense_activations=["relu", "linear"])
    assert [layer.activation for layer in ex.layout.dense] == ["relu", "linear"]


# -- gate order and shape expressions -----------------------------------------------------------


def test_gate_slices_follow_keras_order() -> None:
    assert [gate_slice(g, "lstm", 5) for g in LSTM_GATES] == [slice(0, 5), slice(5, 10), slice(10, 15), slice(15, 20)]
    assert gate_slice("candidate", "gru", 3) == slice(6, 9)
    assert GRU_GATES == ("update", "reset", "candidate")
    with pytest.raises(LayoutError, match="unknown gate 'forget' for cell 'gru'"):
        gate_slice("forget", "gru", 3)


def test_shape_expressions_never_eval() -> None:
    assert eval_shape_expr("4*units", {"units": 7}) == 28
    assert eval_shape_expr(" 2 ", {}) == 2
    with pytest.raises(LayoutError, match="malformed"):
        eval_shape_expr("__import__('os')", {})
    with pytest.raises(LayoutError, match="unknown size 'width'"):
        eval_shape_expr("3*width", {"units": 1})



# -- graphs (version-2 manifests) ----------------------------------------------------------------


def _graph_manifest() -> dict:
    layers = [
        RecurrentSpec(cell="lstm", units=3, input_size=2, name="a_rnn"),
        RecurrentSpec(cell="simple_rnn", units=2, input_size=4, return_sequences=True, name="b_rnn"),
        DenseSpec(units=2, input_size=2, activation="relu", name="b_step"),
        RecurrentSpec(cell="gru", units=2, input_size=2, name="b_top"),
        ConcatenateSpec((3, 2), name="join"),
        DenseSpec(units=3, input_size=5, name="out"),
    ]
    edges = ((input_edge(0),), (input_edge(1),), (1,), (2,), (0, 3), (4,))
    return to_manifest(layers, edges=edges, inputs=(InputSpec("a", 2), InputSpec("b", 4, mask_value=-1.0)))


def test_graph_manifest_round_trips_and_infers_shapes() -> None:
    manifest = _graph_manifest()
    layout = validate_manifest(manifest)
    assert manifest["version"] == 2
    assert validate_manifest(layout.manifest) == layout
    assert layout.sequence_outputs == (False, True, True, False, False, False)
    assert not layout.is_chain
    assert not layout.per_step
    assert [spec.name for spec in layout.inputs] == ["a", "b"]
    assert layout.inputs[1].mask_value == -1.0
    assert layout.attribution_edges == (-1, -2)
    assert "4: Concatenate <- 0, 3: 3 + 2 -> 5" in layout.describe()
    # the chain of a version-1 manifest is the same graph with implicit edges
    chain = validate_manifest(lstm_manifest(bidirectional=False))
    assert chain.is_chain
    assert chain.edges == ((-1,), (0,))


def _static_manifest(**static: object) -> dict:
    """A sequence (LSTM) and a static vector, concatenated, then a dense head."""
    layers = [
        RecurrentSpec(cell="lstm", units=3, input_size=2, name="rnn"),
        ConcatenateSpec((3, 4), name="join"),
        DenseSpec(units=2, input_size=7, name="out"),
    ]
    edges = ((input_edge(0),), (0, input_edge(1)), (1,))
    manifest = to_manifest(layers, edges=edges, inputs=(InputSpec("series", 2), InputSpec("static", 4, sequence=False)))
    manifest["inputs"][1].update(static)
    return manifest


def test_a_vector_input_round_trips_and_is_one_vector_per_sample() -> None:
    manifest = _static_manifest()
    assert manifest["inputs"][1]["sequence"] is False
    assert "sequence" not in manifest["inputs"][0]  # sequence inputs keep the manifests of earlier releases
    layout = validate_manifest(manifest)
    assert validate_manifest(layout.manifest) == layout
    assert not layout.inputs[1].sequence
    assert layout.sequence_outputs == (False, False, False)


@pytest.mark.parametrize(
    ("static", "match"),
    [
        ({"tokens": True}, r"input 'static' is one vector per sample .* no token ids"),
        ({"mask_value": 0.0}, r"input 'static' is one vector per sample .* no mask_value"),
    ],
)
def test_a_vector_input_has_no_tokens_and_no_mask(static: dict, match: str) -> None:
    with pytest.raises(LayoutError, match=match):
        validate_manifest(_static_manifest(**static))


def test_a_vector_input_cannot_feed_a_recurrent_layer() -> None:
    manifest = _static_manifest()
    manifest["layers"][0]["inputs"] = ["static"]
    manifest["layers"][0]["input_size"] = 4
    with pytest.raises(LayoutError, match=r"layer 0 \(lstm\) reads input 'static', which is one vector per sample"):
        validate_manifest(manifest)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: m["layers"][3].update(inputs=["nowhere"]), r"layer 3 \(gru\) reads \['nowhere'\], which is no"),
        (lambda m: m["layers"][0].update(inputs=["join"]), r"layer 0 \(lstm\) reads \['join'\], which is no input"),
        (lambda m: m["layers"][3].update(inputs=["a_rnn"]), r"reads layer 0 \(lstm\), which is one vector per sample"),
        (lambda m: m["layers"][4].update(input_sizes=[3, 3]), r"layer 3 \(gru\) outputs width 2 but input_sizes"),
        (lambda m: m["layers"][4].update(inputs=["a_rnn", "b_rnn"]), r"joins sequences with vectors"),
        (lambda m: m["layers"][5].update(inputs=["a_rnn"]), r"layer 5 \(dense\) has input_size 5 but layer 0"),
        (lambda m: m["layers"][2].update(name="a_rnn"), r"the name 'a_rnn' is used twice"),
        (lambda m: m["inputs"][0].update(tokens=True), r"reads the token ids of input 'a': put an embedding"),
        (
            lambda m: (m["layers"][4].update(inputs=["b_top", "b_top"], input_sizes=[2, 2]),
                       m["layers"][5].update(input_size=4)),
            r"layer 0 feed\(s\) nothing",
        ),
        (lambda m: m.pop("inputs"), r"version"),
        (lambda m: m["layers"][0].update(inputs=["a", "b"]), r"reads 2 inputs; it takes one"),
    ],
)
def test_graph_errors_name_the_layer_and_the_fix(mutate, match: str) -> None:
    manifest = _graph_manifest()
    mutate(manifest)
    with pytest.raises(LayoutError, match=match):
        validate_manifest(manifest)


def test_chain_manifests_keep_their_rules() -> None:
    manifest = lstm_manifest()
    manifest["layers"][1]["inputs"] = ["x"]
    with pytest.raises(LayoutError, match=r"version"):  # edges need a version-2 manifest
        validate_manifest(manifest)
