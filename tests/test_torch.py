"""PyTorch conversion: converted networks compute what the torch modules compute.

The reference is the torch module itself: for a unidirectional RNN the top layer's output at
the last step, for a bidirectional one ``concat(forward final state, backward state after
reading x[0])`` (Keras ``Bidirectional(return_sequences=False)``), then the ``nn.Linear`` head.
Gradient×Input is compared with torch autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tf_lrp import ConversionError, Explainer, InputError
from tf_lrp.convert import Converted, from_torch, load_state_dict

pytestmark = pytest.mark.torch

CASES = [
    # cell, num_layers, bidirectional, batch_first
    ("lstm", 1, False, True),
    ("lstm", 2, True, False),
    ("lstm", 3, True, True),
    ("gru", 1, False, False),
    ("gru", 2, True, True),
    ("gru", 3, False, True),
    ("rnn_tanh", 2, True, True),
    ("rnn_relu", 1, False, False),
]
#: the tf_lrp cell of each case's module
KIND = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "simple_rnn", "rnn_relu": "simple_rnn"}
D, H, C, B, T = 4, 5, 3, 6, 7


class Model(torch.nn.Module):
    """An nn.LSTM / nn.GRU with an nn.Linear head on the final state(s)."""

    def __init__(self, cell: str, num_layers: int, bidirectional: bool, batch_first: bool) -> None:
        super().__init__()
        options = {"num_layers": num_layers, "bidirectional": bidirectional, "batch_first": batch_first}
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        if cell.startswith("rnn_"):
            self.rnn = torch.nn.RNN(D, H, nonlinearity=cell[4:], **options)
        else:
            self.rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(D, H, **options)
        self.fc = torch.nn.Linear(H * (2 if bidirectional else 1), C)
        with torch.no_grad():  # larger than the default init, so the gates saturate somewhat
            for parameter in self.parameters():
                parameter.uniform_(-0.8, 0.8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, D)
        out, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        if not self.batch_first:
            out = out.transpose(0, 1)
        # bidirectional: the forward state after x[T-1] and the backward state after x[0]
        features = torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1) if self.bidirectional else out[:, -1]
        return self.fc(features)


def _model(case: tuple[str, int, bool, bool], seed: int = 0) -> Model:
    torch.manual_seed(seed)
    return Model(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-L{c[1]}-{'bi' if c[2] else 'uni'}-bf{int(c[3])}")
def test_scores_and_gradient_match_torch(case: tuple[str, int, bool, bool]) -> None:
    cell, num_layers, bidirectional, batch_first = case
    model = _model(case)
    x = np.random.default_rng(1).normal(size=(B, T, D))
    # float32: the converted network's scores equal the torch module's
    ex32 = Explainer.from_torch(model, dtype="float32")  # traced with torch.fx: the module describes itself
    with torch.no_grad():
        expected32 = model(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(ex32.score(x.astype(np.float32)), expected32, rtol=1e-6, atol=1e-6)
    # float64: scores, and Gradient×Input against autograd
    model64 = model.double()
    ex64 = Explainer.from_torch(model64, dtype="float64")
    assert {layer.kind for layer in ex64.layout.recurrent} == {KIND[cell]}
    assert len(ex64.layout.recurrent) == num_layers * (2 if bidirectional else 1)  # one node per direction
    # the state_dict converter (its options checked) gives the same scores, with its warning
    with pytest.warns(UserWarning, match="final state"):
        from_dict = Explainer.from_torch(
            model64.state_dict(), dtype="float64", cell=KIND[cell], num_layers=num_layers,
            bidirectional=bidirectional, batch_first=batch_first, nonlinearity=model64.rnn.__dict__.get("nonlinearity"),
        )  # fmt: skip
    np.testing.assert_allclose(from_dict.score(x), ex64.score(x), rtol=0, atol=1e-12)
    target = np.arange(B) % C
    xt = torch.tensor(x, requires_grad=True)
    scores = model64(xt)
    scores[torch.arange(B), torch.tensor(target)].sum().backward()
    gi = ex64.explain(x, target=target, method="gradient_x_input")
    np.testing.assert_allclose(gi.scores, scores.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gi.relevance, (xt.grad * xt).detach().numpy(), rtol=0, atol=1e-12)


def test_numpy_values_and_tensors_convert_identically() -> None:
    model = _model(("gru", 2, True, True))
    from_tensors = from_torch(model.state_dict())
    from_arrays = from_torch({k: v.numpy() for k, v in model.state_dict().items()})
    assert isinstance(from_tensors, Converted)
    assert from_tensors.manifest == from_arrays.manifest
    for a, b in zip(from_tensors.weights, from_arrays.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_gru_layout_is_reordered_and_bias_stacked() -> None:
    gru = torch.nn.GRU(2, 3)
    state = {k: np.arange(v.numel(), dtype=np.float64).reshape(v.shape) for k, v in gru.state_dict().items()}
    state["weight"], state["bias"] = np.ones((1, 3)), np.zeros(1)
    manifest, weights = from_torch(state)
    kernel, recurrent, bias = weights[:3]
    w_ih = state["weight_ih_l0"]  # rows r (0:3), z (3:6), n (6:9)
    np.testing.assert_array_equal(kernel[:, 0:3], w_ih[3:6].T)  # Keras z
    np.testing.assert_array_equal(kernel[:, 3:6], w_ih[0:3].T)  # Keras r
    np.testing.assert_array_equal(kernel[:, 6:9], w_ih[6:9].T)  # Keras h
    assert recurrent.shape == (3, 9)
    assert bias.shape == (2, 9)
    np.testing.assert_array_equal(bias[1, 0:3], state["bias_hh_l0"][3:6])
    assert manifest["layers"][0]["reset_after"] is True
    assert manifest["layers"][0]["gate_order"] == ["update", "reset", "candidate"]


def test_rnn_needs_its_nonlinearity_from_the_module_or_the_caller() -> None:
    rnn = torch.nn.RNN(2, 3, nonlinearity="relu")
    head = {"fc.weight": torch.ones(2, 3), "fc.bias": torch.ones(2)}
    state = {f"rnn.{k}": v for k, v in rnn.state_dict().items()} | head
    with pytest.raises(ConversionError, match=r"does not record its nonlinearity: pass nonlinearity='tanh' or 'relu'"):
        from_torch(state)
    manifest, weights = from_torch(state, nonlinearity="relu")
    assert manifest["layers"][0]["kind"] == "simple_rnn"
    assert manifest["layers"][0]["activation"] == "relu"
    np.testing.assert_array_equal(weights[2], (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy())
    with pytest.raises(ConversionError, match=r"nonlinearity is an nn\.RNN option"):
        from_torch({f"lstm.{k}": v for k, v in torch.nn.LSTM(2, 3).state_dict().items()} | {
            "fc.weight": torch.ones(2, 3)}, nonlinearity="tanh")  # fmt: skip


def test_lstm_biases_are_summed() -> None:
    lstm = torch.nn.LSTM(2, 3)
    state = {k: v.numpy() for k, v in lstm.state_dict().items()}
    state["head.weight"], state["head.bias"] = np.ones((2, 3), np.float32), np.zeros(2, np.float32)
    _, weights = from_torch(state, head="head.")
    np.testing.assert_array_equal(weights[2], state["bias_ih_l0"] + state["bias_hh_l0"])
    np.testing.assert_array_equal(weights[0], state["weight_ih_l0"].T)


def test_no_bias_module() -> None:
    model = torch.nn.LSTM(2, 3, bias=False)
    state = {**model.state_dict(), "fc.weight": torch.ones(1, 3)}
    manifest, weights = from_torch(state)
    assert manifest["layers"][0]["use_bias"] is False
    assert manifest["layers"][1]["use_bias"] is False
    assert len(weights) == 3


def _state(cell: str = "gru", **kwargs: object) -> dict[str, np.ndarray]:
    module = torch.nn.GRU(2, 3, **kwargs) if cell == "gru" else torch.nn.LSTM(2, 3, **kwargs)
    width = 6 if kwargs.get("bidirectional") else 3
    return {
        **{f"rnn.{k}": v.numpy() for k, v in module.state_dict().items()},
        "fc.weight": np.ones((2, width), np.float32),
        "fc.bias": np.zeros(2, np.float32),
    }


@pytest.mark.parametrize(
    ("mutate", "options", "match"),
    [
        (lambda s: s, {"reset_after": False}, "reset_after=False cannot represent a PyTorch GRU"),
        (lambda s: s, {"head": None}, "head=None"),
        (lambda s: s, {"cell": "lstm"}, "pass cell='gru'"),
        (lambda s: s, {"num_layers": 2}, "pass num_layers=1"),
        (lambda s: s, {"bidirectional": True}, "pass bidirectional=False"),
        (lambda s: s, {"rnn_prefix": "lstm."}, "no key 'lstm.weight_ih_l0'"),
        (lambda s: s, {"head": "out."}, "no key 'out.weight'"),
        (lambda s: {k: v for k, v in s.items() if k != "rnn.bias_hh_l0"}, {}, "missing 'rnn.bias_hh_l0'"),
        (lambda s: {k: v for k, v in s.items() if not k.startswith("fc.")}, {}, "no nn.Linear head found"),
        (lambda s: {**s, "emb.weight": np.ones((4, 2), np.float32)}, {}, "several candidate heads"),
        (lambda s: {**s, "emb.weight": np.ones((4, 2), np.float32)}, {"head": "fc."}, "unknown state_dict key"),
        (lambda s: {**s, "rnn.weight_ih_l1": np.ones((9, 3), np.float32)}, {}, "missing 'rnn.weight_hh_l1'"),
        (lambda s: {**s, "fc.weight": np.ones((2, 4), np.float32)}, {}, r"expected \(out_features, 3\)"),
        (lambda s: {**s, "fc.bias": np.ones(3, np.float32)}, {}, r"'fc.bias' has shape \(3,\)"),
        (lambda s: {**s, "rnn.weight_ih_l0": np.ones((8, 2), np.float32)}, {}, r"'rnn.weight_ih_l0' has shape"),
        (lambda s: {**s, "rnn.bias_ih_l0": np.ones(8, np.float32)}, {}, r"'rnn.bias_ih_l0' has shape \(8,\)"),
        (lambda s: {**s, "rnn.weight_hh_l0": np.ones((6, 3), np.float32)}, {}, "nn.LSTM has 4, nn.GRU has 3"),
        (lambda s: {**s, "rnn.weight_ih_l0": np.ones((9, 2), np.int64)}, {}, "expected floating-point"),
        (lambda s: {"fc.weight": s["fc.weight"]}, {}, "holds no nn.LSTM / nn.GRU"),
        (lambda s: {**s, **{"x." + k[4:]: v for k, v in s.items() if k.startswith("rnn.")}}, {}, "several recurrent"),
    ],
)
def test_conversion_errors(mutate, options, match) -> None:
    with pytest.raises(ConversionError, match=match):
        from_torch(mutate(_state()), **options)


def test_projection_is_refused() -> None:
    lstm = torch.nn.LSTM(2, 4, proj_size=2)
    state = {**lstm.state_dict(), "fc.weight": torch.ones(1, 2)}
    with pytest.raises(ConversionError, match="proj_size != 0"):
        from_torch(state)


def test_lstm_reset_after_false_is_refused() -> None:
    with pytest.raises(ConversionError, match="GRU option"):
        from_torch(_state("lstm"), reset_after=False)


def test_not_a_state_dict() -> None:
    with pytest.raises(ConversionError, match="takes a state_dict"):
        from_torch([np.ones(3)])


def test_load_state_dict_files(tmp_path) -> None:
    model = _model(("lstm", 1, True, True))
    state = model.state_dict()
    torch.save(state, tmp_path / "model.pt")
    np.savez(tmp_path / "model.npz", **{k: v.numpy() for k, v in state.items()})
    from_pt, from_npz = load_state_dict(tmp_path / "model.pt"), load_state_dict(tmp_path / "model.npz")
    assert sorted(from_pt) == sorted(from_npz) == sorted(state)
    for key, value in state.items():
        np.testing.assert_array_equal(from_pt[key], value.numpy())
        np.testing.assert_array_equal(from_npz[key], value.numpy())
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "checkpoint.pth")
    assert sorted(load_state_dict(tmp_path / "checkpoint.pth")) == sorted(state)


def test_load_state_dict_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_state_dict(tmp_path / "missing.pt")
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(InputError, match=r"expected a \.npz, \.pt or \.pth"):
        load_state_dict(tmp_path / "weights.bin")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module, not a state_dict
    with pytest.raises(ConversionError, match="cannot be loaded safely"):
        load_state_dict(tmp_path / "module.pt")
    torch.save([torch.ones(2)], tmp_path / "list.pt")
    with pytest.raises(ConversionError, match="not a state_dict"):
        load_state_dict(tmp_path / "list.pt")


def test_explainer_from_path(tmp_path) -> None:
    model = _model(("gru", 1, False, True))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.warns(UserWarning, match="final state"):  # a state_dict cannot show what the head reads
        ex = Explainer.from_torch(tmp_path / "model.pt", dtype="float64")
    assert ex.layout.recurrent[0].cell == "gru"
    assert ex.layout.num_outputs == C


# --------------------------------------------------------------------------------------------
# The GRU encoder-decoder forecaster


class Forecaster(torch.nn.Module):
    """GRU encoder-decoder as in docs/forecaster.md: autoregressive decoder, relu head, static at the head."""

    def __init__(self, layers: int = 2, units: int = 5, features: int = 3, outputs: int = 2, future: int = 2,
                 static: int = 1) -> None:
        super().__init__()
        self.outputs = outputs
        self.encoder = torch.nn.GRU(features, units, num_layers=layers, batch_first=True)
        self.decoder = torch.nn.GRU(outputs + future, units, num_layers=layers, batch_first=True)
        self.out1 = torch.nn.Linear(units + static, 4)
        self.out2 = torch.nn.Linear(4, outputs, bias=False)

    def forward(self, x: torch.Tensor, x_future: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        _, hidden = self.encoder(x)
        previous = x[:, -1:, : self.outputs]
        forecasts = []
        for t in range(x_future.shape[1]):
            out, hidden = self.decoder(torch.cat([previous, x_future[:, t : t + 1]], dim=-1), hidden)
            previous = self.out2(torch.relu(self.out1(torch.cat([out, static[:, None]], dim=-1))))
            forecasts.append(previous)
        return torch.cat(forecasts, dim=1)


@pytest.mark.slow
def test_forecaster_matches_torch() -> None:
    from tf_lrp import Seq2SeqExplainer

    torch.manual_seed(3)
    model = Forecaster().double()
    rng = np.random.default_rng(2)
    x, future, static = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 1))
    ex = Seq2SeqExplainer.from_torch(model, dtype="float64")
    assert ex.spec.num_layers == 2
    assert (ex.spec.outputs, ex.spec.future_size, ex.spec.static_size, ex.spec.head_units) == (2, 2, 1, 4)
    inputs = [torch.tensor(a, requires_grad=True) for a in (x, future, static)]
    forecasts = model(*inputs)
    forecasts[:, 1, 1].sum().backward()
    gi = ex.explain(x, future, static, step=1, output=1, method="gradient_x_input")
    np.testing.assert_allclose(gi.forecasts, forecasts.detach().numpy(), rtol=0, atol=1e-12)
    expected = [(t.grad * t).detach().numpy() for t in inputs]
    np.testing.assert_allclose(gi.history, expected[0], rtol=0, atol=1e-12)  # both uses of x[:, -1, :O]
    np.testing.assert_allclose(gi.future, expected[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(gi.static, expected[2], rtol=0, atol=1e-12)
    ex32 = Seq2SeqExplainer.from_torch(model.float().state_dict(), dtype="float32")
    with torch.no_grad():
        expected32 = model(*(torch.tensor(a, dtype=torch.float32) for a in (x, future, static))).numpy()
    np.testing.assert_allclose(ex32.forecast(x, future, static), expected32, rtol=1e-6, atol=1e-6)


def test_forecaster_conversion_errors() -> None:
    from tf_lrp.convert import from_torch_seq2seq

    state = {k: v.numpy() for k, v in Forecaster().state_dict().items()}
    manifest, weights = from_torch_seq2seq(state)
    assert manifest["layers"][0]["kind"] == "seq2seq"
    assert len(weights) == 6 * 2 + 3
    with pytest.raises(ConversionError, match="must be equally deep"):
        from_torch_seq2seq({k: v for k, v in state.items() if "_l1" not in k or k.startswith("encoder")})
    with pytest.raises(ConversionError, match="cannot tell the encoder"):
        from_torch_seq2seq({("a" + k[7:] if k.startswith("encoder") else k): v for k, v in state.items()})
    with pytest.raises(ConversionError, match="output layer has no bias"):
        from_torch_seq2seq({**state, "out2.bias": np.zeros(2)}, head1="out1.", head2="out2.")
    with pytest.raises(ConversionError, match=r"unknown state_dict key 'extra\.scale'"):
        from_torch_seq2seq({**state, "extra.scale": np.zeros(2)})
    with pytest.raises(ConversionError, match=r"missing 'decoder\.bias_hh_l0'"):
        from_torch_seq2seq({k: v for k, v in state.items() if k != "decoder.bias_hh_l0"})
