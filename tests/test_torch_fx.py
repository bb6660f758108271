"""PyTorch modules traced with torch.fx (tf_lrp/convert/torch_fx.py): a zoo of real modules.

For each module the converted network's scores equal the module's score layer (float64, 1e-10),
Gradient×Input equals torch autograd, and LRP conserves at bias_factor = 1. The trap the state_dict
converter cannot see (a bidirectional head reading ``out[:, -1]``) is explained correctly from the
module; the state_dict path warns. Every refusal names the op and its source line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tf_lrp import ConversionError, Explainer, InputError
from tf_lrp.convert import torch_fx
from tf_lrp.errors import TfLrpWarning

pytestmark = pytest.mark.torch

D, H, C, B, T, V = 3, 4, 2, 5, 6, 9
RNNS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN, "rnn_relu": nn.RNN}


def _rnn(cell: str, input_size: int = D, **options: object) -> nn.Module:
    if cell.startswith("rnn_"):
        options["nonlinearity"] = cell[4:]
    return RNNS[cell](input_size, H, **options)


def _init(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():  # weights of size ~1 so gates saturate somewhat and every bias matters
        for parameter in model.parameters():
            parameter.uniform_(-0.8, 0.8)
        for module in model.modules():
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx] = 0.0  # as nn.Embedding initialises it
    return model.double().eval()


class FinalState(nn.Module):
    """The classic: a head on h_n (h_n[-1], or [h_n[-2] ; h_n[-1]] when bidirectional)."""

    def __init__(self, cell: str, num_layers: int, bidirectional: bool, batch_first: bool) -> None:
        super().__init__()
        self.batch_first, self.bidirectional, self.lstm = batch_first, bidirectional, cell == "lstm"
        self.rnn = _rnn(cell, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.rnn(x if self.batch_first else x.transpose(0, 1))
        if self.lstm:  # (h_n, c_n); a plain attribute: fx sees a proxy, not a tuple, at trace time
            h_n = h_n[0]
        features = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]
        return self.fc(features)


class LastOutput(nn.Module):
    """``out[:, -1]``: for a bidirectional RNN the backward direction after reading x[T-1] only."""

    def __init__(self, cell: str, bidirectional: bool, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.rnn = _rnn(cell, bidirectional=bidirectional, batch_first=batch_first)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x if self.batch_first else x.permute(1, 0, 2))
        return self.fc(out[:, -1] if self.batch_first else out[-1])


class Pooled(nn.Module):
    """Mean or max over time of a bidirectional GRU, then Linear -> ReLU -> Linear -> softmax."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rnn = nn.GRU(D, H, batch_first=True, bidirectional=True)
        self.hidden, self.act, self.out = nn.Linear(2 * H, 3), nn.ReLU(), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        pooled = out.mean(dim=1) if self.how == "mean" else torch.max(out, 1)[0]
        return torch.softmax(self.out(self.act(self.hidden(pooled))), dim=-1)


class Embedded(nn.Module):
    """Token ids -> nn.Embedding(padding_idx=0) -> bidirectional LSTM -> head on h_n[-2:]."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.rnn = nn.LSTM(D, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * H, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.rnn(self.embedding(ids))
        return self.fc(h_n[-2:].transpose(0, 1).reshape(ids.size(0), -1))


class StackedDropout(nn.Module):
    """Two stacked LSTM layers with dropout between them (identity at eval), dropout, relu head."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(D, H, num_layers=2, dropout=0.5, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.hidden = nn.Linear(H, 3)
        self.fc = nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        hidden = torch.relu(self.hidden(self.drop(out[:, -1, :])))
        return self.fc(nn.functional.dropout(hidden, 0.2, training=self.training))


class CatDirections(nn.Module):
    """``cat(out[:, -1, :H], out[:, 0, H:])``: last forward and first backward output (time-major RNN)."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.rnn = _rnn(cell, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(2 * H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.transpose(0, 1))
        out = out.transpose(0, 1).contiguous()
        return self.fc(torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1))


class TimeMajorInput(nn.Module):
    """A module that takes (time, batch, features) itself (batch_first=False, no transpose)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[-1])


class AttentionPooled(nn.Module):
    """Attention pooling: ``w = softmax(att(out), dim=time)`` then ``(w * out).sum(time)`` or ``bmm``."""

    def __init__(self, variant: str, batch_first: bool = True) -> None:
        super().__init__()
        self.variant, self.batch_first = variant, batch_first
        self.rnn = nn.LSTM(D, H, batch_first=batch_first, bidirectional=True)
        self.att = nn.Linear(2 * H, 1)
        self.tanh, self.softmax = nn.Tanh(), nn.Softmax(dim=1)
        self.fc = nn.Linear(2 * H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        time = 1 if self.batch_first else 0
        if self.variant == "modules":  # nn.Tanh, nn.Softmax(dim=1)
            return self.fc((self.softmax(self.tanh(self.att(out))) * out).sum(dim=1))
        if self.variant == "bmm":  # tanh scores, torch.softmax, torch.bmm(...).squeeze(1)
            w = torch.softmax(torch.tanh(self.att(out)), dim=1)
            return self.fc(torch.bmm(w.transpose(1, 2), out).squeeze(1))
        if self.variant == "functional":  # F.softmax, out * w
            w = nn.functional.softmax(self.att(out), dim=time)
            return self.fc((out * w).sum(dim=time))
        w = self.att(out).tanh().softmax(dim=time)  # methods; w * out
        return self.fc(torch.sum(w * out, dim=time))


class MultiHead(nn.Module):
    """GRU -> nn.MultiheadAttention (self or cross, kdim/vdim, bias) -> mean over time -> Linear."""

    def __init__(self, batch_first: bool, cross: bool = False, kdim: int | None = None, bias: bool = True) -> None:
        super().__init__()
        self.batch_first, self.cross = batch_first, cross
        self.rnn = nn.GRU(D, 6, batch_first=batch_first)
        self.other = nn.GRU(D, kdim or 6, batch_first=batch_first)
        self.mha = nn.MultiheadAttention(6, 2, batch_first=batch_first, kdim=kdim, vdim=kdim, bias=bias)
        self.fc = nn.Linear(6, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.cross:
            memory, _ = self.other(x)
            attended, _ = self.mha(out, memory, memory)
        else:
            attended, _ = self.mha(out, out, out, need_weights=False)
        return self.fc(attended.mean(dim=1 if self.batch_first else 0))


class TimeMajorNormalized(nn.Module):
    """(time, batch, features) in: an identity view and an nn.LayerNorm on the input leave its layout open."""

    def __init__(self) -> None:
        super().__init__()
        self.norm, self.rnn, self.fc = nn.LayerNorm(D), nn.GRU(D, H), nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x.view(x.size(0), x.size(1), D)) + torch.tanh(x)
        return self.fc(self.rnn(h)[0][-1])


@dataclass
class Entry:
    build: Callable[[], nn.Module]
    tokens: bool = False
    time_major: bool = False  # the module reads (T, B, D)
    output_activation: bool = False  # the module's output is softmax(score)


ZOO: dict[str, Entry] = {
    **{
        f"final-{cell}-L{layers}-{'bi' if bi else 'uni'}-bf{int(bf)}": Entry(
            lambda cell=cell, layers=layers, bi=bi, bf=bf: FinalState(cell, layers, bi, bf)
        )
        for cell, layers, bi, bf in [
            ("lstm", 1, False, True),
            ("lstm", 2, True, False),
            ("gru", 1, True, True),
            ("gru", 3, False, False),
            ("rnn_tanh", 2, True, True),
            ("rnn_relu", 1, False, True),
        ]
    },
    "last-lstm-uni": Entry(lambda: LastOutput("lstm", False)),
    "last-gru-bi": Entry(lambda: LastOutput("gru", True)),
    "last-rnn-bi-time-major": Entry(lambda: LastOutput("rnn_tanh", True, batch_first=False)),
    "mean-pooled": Entry(lambda: Pooled("mean"), output_activation=True),
    "max-pooled": Entry(lambda: Pooled("max"), output_activation=True),
    "embedding-padding-idx": Entry(Embedded, tokens=True),
    "stacked-dropout": Entry(StackedDropout),
    "cat-directions-lstm": Entry(lambda: CatDirections("lstm")),
    "cat-directions-gru": Entry(lambda: CatDirections("gru")),
    "time-major-input": Entry(TimeMajorInput, time_major=True),
    "time-major-normalized": Entry(TimeMajorNormalized, time_major=True),
    "hidden-tanh": Entry(lambda: HiddenTanh()),  # defined with the refusals below
    "attention-pool-methods": Entry(lambda: AttentionPooled("methods")),
    "attention-pool-functional-time-major": Entry(lambda: AttentionPooled("functional", False), time_major=True),
    "attention-pool-bmm": Entry(lambda: AttentionPooled("bmm")),
    "attention-pool-modules": Entry(lambda: AttentionPooled("modules")),
    "mha-self": Entry(lambda: MultiHead(True)),
    "mha-self-time-major": Entry(lambda: MultiHead(False), time_major=True),
    "mha-cross-kdim": Entry(lambda: MultiHead(True, cross=True, kdim=5)),
    "mha-cross-no-bias-time-major": Entry(lambda: MultiHead(False, cross=True, bias=False), time_major=True),
}


def _data(entry: Entry, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if entry.tokens:
        ids = rng.integers(1, V, size=(B, T))
        ids[1, 4:] = 0  # padding
        ids[2, :2] = 0
        return ids
    return rng.normal(size=(B, T, D))


def _scores_and_gradient(model: nn.Module, entry: Entry, x: np.ndarray, target: np.ndarray) -> tuple:
    """The module's pre-activation scores, and Gradient×Input by autograd (at the embedding output for ids)."""
    captured: dict[str, torch.Tensor] = {}
    if entry.tokens:

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            output.retain_grad()
            captured["x"] = output

        handle = model.embedding.register_forward_hook(hook)
        tensor = torch.tensor(x)
    else:
        tensor = torch.tensor(x, requires_grad=True)
        captured["x"] = tensor
    head = model.out if entry.output_activation else model.fc
    scores: dict[str, torch.Tensor] = {}
    head_handle = head.register_forward_hook(lambda m, a, out: scores.__setitem__("s", out))
    model(tensor.transpose(0, 1) if entry.time_major else tensor)
    head_handle.remove()
    if entry.tokens:
        handle.remove()
    s = scores["s"]
    s[torch.arange(len(target)), torch.tensor(target)].sum().backward()
    leaf = captured["x"]
    grad_x_input = (leaf.grad * leaf).detach().numpy()  # batch-major: the module read its transpose
    return s.detach().numpy(), grad_x_input


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_forward_gradient_and_conservation(name: str) -> None:
    entry = ZOO[name]
    model = _init(entry.build(), seed=sorted(ZOO).index(name))
    x = _data(entry)
    ex = Explainer.from_torch(model, dtype="float64", sample=x, tolerance=1e-10)
    target = np.arange(B) % C
    expected, grad_x_input = _scores_and_gradient(model, entry, x, target)
    np.testing.assert_allclose(ex.score(x), expected, rtol=0, atol=1e-10)
    gi = ex.explain(x, target=target, method="gradient_x_input")
    np.testing.assert_allclose(gi.relevance, grad_x_input, rtol=0, atol=1e-10)
    with warnings.catch_warnings():  # a sample whose score nearly vanishes: conservation still holds
        warnings.simplefilter("ignore", TfLrpWarning)
        lrp = ex.explain(x, target=target, method="lrp", eps=1e-9, bias_factor=1.0)
    total = lrp.relevance.sum(axis=(1, 2)) + lrp.initial_state_relevance
    np.testing.assert_allclose(total, lrp.explained_score, rtol=0, atol=1e-8)
    if entry.tokens:  # padding_idx's row is zero: no relevance at padded positions (ε-rule, no bias share)
        plain = ex.explain(x, target=target, method="lrp", eps=1e-9, bias_factor=0.0)
        assert np.all(plain.relevance[x == 0] == 0.0)


def test_module_without_sample_is_checked_on_a_probe_in_float32() -> None:
    model = _init(LastOutput("gru", True), 0).float()
    ex = Explainer.from_torch(model)  # float32, probe batch
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ex.score(x), expected, rtol=1e-5, atol=1e-5)
    assert model.training is False
    model.train()
    Explainer.from_torch(model)
    assert model.training is True  # the module's mode is restored


class BidirectionalLastStep(nn.Module):
    """The trap: a bidirectional LSTM whose head reads out[:, -1] in both directions."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(D, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def test_the_bidirectional_last_step_trap() -> None:
    model = _init(BidirectionalLastStep(), 3)
    x = _data(Entry(BidirectionalLastStep))
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    traced = Explainer.from_torch(model, dtype="float64", sample=x, tolerance=1e-10)
    np.testing.assert_allclose(traced.score(x), expected, rtol=0, atol=1e-10)  # scores equal
    result = traced.explain(x, method="lrp", eps=1e-9, bias_factor=1.0)
    np.testing.assert_allclose(
        result.relevance.sum(axis=(1, 2)) + result.initial_state_relevance, result.explained_score, atol=1e-8
    )
    # the state_dict cannot know the head reads out[:, -1]: it warns, and its network is a different one
    with pytest.warns(UserWarning, match="final state"):
        assumed = Explainer.from_torch(model.state_dict(), dtype="float64")
    assert np.max(np.abs(assumed.score(x) - expected)) > 1e-3


def _refused(model: nn.Module, match: str, x: np.ndarray | None = None) -> ConversionError:
    with pytest.raises(ConversionError, match=match) as info:
        Explainer.from_torch(_init(model, 0), dtype="float64", sample=x)
    return info.value


class StdOverTime(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out.std(dim=1))


class ReadsCellState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(D, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (_, c_n) = self.rnn(x)
        return self.fc(c_n[-1])


class HiddenTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.hidden, self.fc = nn.Linear(H, 3), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.hidden(self.rnn(x)[0][:, -1])))


class HiddenELU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.hidden, self.act, self.fc = nn.Linear(H, 3), nn.ELU(alpha=0.5), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.hidden(self.rnn(x)[0][:, -1])))


class Projected(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(D, H, batch_first=True, proj_size=2)
        self.fc = nn.Linear(2, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0][:, -1])


class HalfDirection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0][:, -1, 1:4])


class InitialState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.rnn = nn.GRU(D, H, batch_first=True), nn.GRU(D, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.first(x)
        return self.fc(self.rnn(x, h_n)[0][:, -1])


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        if out.sum() > 0:
            out = out * 2
        return self.fc(out[:, -1])


def test_unsupported_ops_are_refused_naming_the_op_and_source_line() -> None:
    error = _refused(StdOverTime(), r"Tensor\.std \(fx node 'std'.*test_torch_fx\.py:\d+ `return self\.fc\(out\.std")
    assert "is not supported between the input and the score layer" in str(error)
    _refused(ReadsCellState(), r"cell state c_n of 'rnn'")
    _refused(HiddenELU(), r"module 'act' \(ELU\).*alpha=0\.5: tf_lrp's elu node computes alpha=1\.0 only")
    _refused(Projected(), r"module 'rnn' \(LSTM\).*proj_size=2")
    _refused(HalfDirection(), r"across a direction or layer boundary")
    _refused(InitialState(), r"initial state")
    _refused(DataDependent(), r"torch\.fx cannot trace DataDependent\.forward")


class AttentionMisuse(nn.Module):
    """Attention pooling and nn.MultiheadAttention written in ways tf_lrp refuses."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.att = nn.Linear(H, 1)
        self.mha = nn.MultiheadAttention(H, 2, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.how == "softmax-features":
            return self.fc(torch.softmax(out, dim=-1).mean(dim=1))
        if self.how == "sum-features":
            return self.fc((torch.softmax(self.att(out), dim=1) * out).sum(dim=2))
        if self.how == "bare-squeeze":
            w = torch.softmax(self.att(out), dim=1)
            return self.fc(torch.bmm(w.transpose(1, 2), out).squeeze())
        if self.how == "causal":  # a mask tensor itself never reaches the module: fx makes it a refused constant
            return self.fc(self.mha(out, out, out, is_causal=True)[0].mean(dim=1))
        if self.how == "zero-attn":
            self.mha.add_zero_attn = True
            return self.fc(self.mha(out, out, out)[0].mean(dim=1))
        if self.how == "raw-weights":
            return self.fc((self.att(out) * out).sum(dim=1))
        return self.fc((out * 2.0).mean(dim=1))


def test_attention_misuse_is_refused() -> None:
    x = np.random.default_rng(0).normal(size=(2, T, D))
    _refused(AttentionMisuse("softmax-features"), r"softmax over dim=-1, not the time axis", x)
    _refused(AttentionMisuse("sum-features"), r"over dim=2 .*the time axis \(1\)", x)
    _refused(AttentionMisuse("bare-squeeze"), r"squeeze\(dim=None\)", x)
    _refused(AttentionMisuse("causal"), r"module 'mha' \(MultiheadAttention\).*is_causal=True", x)
    _refused(AttentionMisuse("zero-attn"), r"add_zero_attn", x)
    _refused(AttentionMisuse("product"), r"products of two tensors of one shape and layout", x)
    _refused(AttentionMisuse("raw-weights"), r"w = torch\.softmax", x)


def test_scores_beyond_tolerance_are_refused_with_the_max_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch_fx.torch_scores
    monkeypatch.setattr(torch_fx, "torch_scores", lambda traced, x: real(traced, x) + 0.5)
    with pytest.raises(ConversionError, match=r"differ from the module's score layer .* by up to 0\.5"):
        Explainer.from_torch(_init(LastOutput("lstm", False), 0), dtype="float64")


def test_state_dict_options_with_a_module_are_refused() -> None:
    with pytest.raises(InputError, match="describes itself"):
        Explainer.from_torch(_init(LastOutput("lstm", False), 0), cell="lstm")
    with pytest.raises(InputError, match="a state_dict has none"):
        Explainer.from_torch(_init(LastOutput("lstm", False), 0).state_dict(), sample=np.zeros((1, 2, D)))


def test_torch_is_imported_lazily() -> None:
    import subprocess
    import sys

    code = "import sys; sys.modules['torch'] = None\nimport tf_lrp.convert.torch_fx\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_traced_explainer_saves_and_loads(tmp_path) -> None:
    model = _init(CatDirections("gru"), 0)
    ex = Explainer.from_torch(model, dtype="float64")
    ex.save(tmp_path / "net.npz")
    loaded = Explainer.load(tmp_path / "net.npz")
    x = _data(Entry(lambda: model))
    assert loaded.fingerprint == ex.fingerprint
    np.testing.assert_array_equal(loaded.score(x), ex.score(x))
    assert "select_step" in {layer.kind for layer in loaded.layout.layers}


# --------------------------------------------------------------------------------------------
# Layers beyond the recurrent ones: Conv1d options, every activation, and their refusals


class ConvOptions(nn.Module):
    """Conv1d stacks covering the padding / stride / dilation / groups / bias options, max and mean pooled."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(D, 4, 2, padding="same"),  # even kernel: the extra zero at the end, as 'same'
                nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2),  # = 'same'
                nn.Conv1d(6, 4, 3, stride=2, bias=False),  # valid
                nn.Conv1d(4, 4, 1, padding="valid", groups=4),
            ]
        )
        self.fc = nn.Linear(16, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.permute(0, 2, 1)
        for conv in self.convs:
            h = conv(h)
        h = torch.cat([h, torch.tanh(h)], dim=1)  # channels-first: the channel axis is 1
        return self.fc(torch.cat([h.max(dim=-1)[0], h.mean(2)], dim=-1))


class EveryActivation(nn.Module):
    """A per-step Linear before each elementwise activation tf_lrp converts (module and function forms)."""

    ACTIVATIONS = (
        nn.GELU(), nn.CELU(), nn.ReLU6(), nn.Hardtanh(), nn.Hardsigmoid(), nn.Softsign(), nn.Tanhshrink(),
        nn.LogSigmoid(), torch.sigmoid, nn.functional.selu, nn.functional.silu, nn.Mish(), torch.relu,
        lambda h: nn.functional.softplus(h, beta=1, threshold=20), lambda h: nn.functional.gelu(h, approximate="tanh"),
        lambda h: h.tanh(),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(D if k == 0 else 4, 4) for k in range(len(self.ACTIVATIONS))])
        self.acts = list(self.ACTIVATIONS)
        self.mods = nn.ModuleList([a for a in self.ACTIVATIONS if isinstance(a, nn.Module)])
        self.fc = nn.Linear(4, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer, act in zip(self.layers, self.acts, strict=True):
            h = act(layer(h))
        return self.fc(h.mean(dim=1))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("build", [ConvOptions, EveryActivation])
def test_conv_options_and_every_activation_equal_the_module(build: Callable[[], nn.Module]) -> None:
    model = _init(build(), 5)
    x = _data(Entry(build), 2)
    ex = Explainer.from_torch(model, dtype="float64", sample=x, tolerance=1e-10)
    expected, grad_x_input = _scores_and_gradient(model, Entry(build), x, np.arange(B) % C)
    np.testing.assert_allclose(ex.score(x), expected, rtol=0, atol=1e-10)
    gi = ex.explain(x, target=np.arange(B) % C, method="gradient_x_input")
    np.testing.assert_allclose(gi.relevance, grad_x_input, rtol=0, atol=1e-10)
    kinds = [layer.kind for layer in ex.layout.layers]
    if build is EveryActivation:  # relu folds into the Linear before it; every other one is its own node
        assert kinds.count("activation") == len(EveryActivation.ACTIVATIONS) - 1
    else:
        assert kinds.count("conv1d") == 4


class Leaky(nn.Module):
    """GRU -> a leaky relu of slope ``slope`` (``nn.LeakyReLU`` or ``F.leaky_relu``; None: torch's default)."""

    def __init__(self, slope: float | None = 0.2, functional: bool = False) -> None:
        super().__init__()
        self.slope, self.functional = slope, functional
        act = nn.LeakyReLU() if slope is None else nn.LeakyReLU(slope)
        self.rnn, self.act, self.fc = nn.GRU(D, H, batch_first=True), act, nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        out = nn.functional.leaky_relu(out, self.slope) if self.functional else self.act(out)
        return self.fc(out[:, -1])


@pytest.mark.parametrize(("slope", "functional"), [(0.2, False), (None, False), (0.1, True), (0.3, False)])
def test_leaky_relu_of_any_slope_converts_with_tensorflow_float32_slope(slope: float | None, functional: bool) -> None:
    """The node applies the module's slope (torch's default 0.01 included); TensorFlow applies it as a float32
    attribute, so scores agree to ~3e-9 |x|, not 1e-10."""
    model = _init(Leaky(slope, functional), 1)
    x = _data(Entry(Leaky), 3) * 4.0
    ex = Explainer.from_torch(model, dtype="float64", sample=x, tolerance=1e-7)
    (spec,) = [layer for layer in ex.layout.layers if layer.kind == "activation"]
    assert spec.activation == "leaky_relu"
    assert spec.negative_slope == (0.01 if slope is None else slope)
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ex.score(x), expected, rtol=0, atol=1e-7)
    lrp = ex.explain(x, method="lrp", eps=1e-3, bias_factor=1.0)
    np.testing.assert_allclose(lrp.absorbed, 0.0, atol=1e-9 * max(1.0, float(np.abs(lrp.explained_score).max())))


class _Refused(nn.Module):
    """A GRU front and a head around one op under test (``op``: (module, features) -> features)."""

    def __init__(self, op: Callable[[Any, torch.Tensor], torch.Tensor], **layers: nn.Module) -> None:
        super().__init__()
        self.op = op
        self.rnn = nn.GRU(D, H, batch_first=True)
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.op(self, x)[:, -1])


REFUSALS = [
    (lambda m, x: m.rnn(m.conv(x)[0].transpose(1, 2))[0], {"conv": nn.Conv1d(D, D, 1)}, r"not channels-first"),
    (
        lambda m, x: m.rnn(m.conv(x.transpose(1, 2)).transpose(1, 2))[0],
        {"conv": nn.Conv1d(D, D, 3, padding=1, padding_mode="reflect")},
        r"padding_mode='reflect' is not supported",
    ),
    (
        lambda m, x: m.rnn(m.conv(x.transpose(1, 2)).transpose(1, 2))[0],
        {"conv": nn.Conv1d(D, D, 3, padding=2)},
        r"padding=2 with kernel_size=3, dilation=1, stride=1 has no tf_lrp equivalent",
    ),
    (
        lambda m, x: m.rnn(m.pool(x.transpose(1, 2)).transpose(1, 2))[0],
        {"pool": nn.MaxPool1d(3, padding=1)},
        r"'valid' windows",
    ),
    (lambda m, x: m.norm(m.rnn(x)[0]), {"norm": nn.BatchNorm1d(H)}, r"BatchNorm1d normalises axis 1 \(here time\)"),
    (
        lambda m, x: m.norm(m.rnn(x)[0].transpose(1, 2)).transpose(1, 2),
        {"norm": nn.BatchNorm1d(H, track_running_stats=False)},
        r"track_running_stats=False",
    ),
    (
        lambda m, x: m.norm(m.rnn(x)[0].transpose(1, 2)).transpose(1, 2),
        {"norm": nn.LayerNorm(H)},
        r"channels-first.*nn\.LayerNorm would act on the time axis",
    ),
    (lambda m, x: m.rnn(x)[0] + 1.0, {}, r"operator\.add .*adds a sequence of width 4 and float"),
    (lambda m, x: torch.add(m.rnn(x)[0], m.rnn(x)[0], alpha=2), {}, r"alpha=2"),
    (lambda m, x: m.rnn(x)[0].reshape(x.size(0), -1, 2), {}, r"reshape of a sequence of width 4"),
    (lambda m, x: nn.functional.softplus(m.rnn(x)[0], beta=2), {}, r"beta=2: tf_lrp's softplus node computes"),
    (lambda m, x: m.rnn(x)[0].transpose(1, 2)[:, :, -1], {}, r"indexes a channels-first"),
    (lambda m, x: m.rnn(x)[0].permute(2, 1, 0), {}, r"permutes it to \[2, 1, 0\] from btf"),
    (lambda m, x: m.rnn(x.transpose(1, 2))[0], {}, r"channels-first .* transpose\(1, 2\) it"),
    (
        lambda m, x: m.pool(m.rnn(x)[0].transpose(1, 2)).transpose(1, 2),
        {"pool": nn.AdaptiveMaxPool1d(2)},
        r"output_size=2; tf_lrp pools adaptively to one step",
    ),
    (lambda m, x: m.rnn(x)[0].transpose(1, 2).amax(-1, keepdim=True)[:, :, :1], {}, r"tf_lrp reads \[:, :, 0\]"),
    (lambda m, x: m.lin(m.rnn(x)[0].flatten(1))[:, None], {"lin": nn.Linear(6, H)}, r"in_features=6 is no multiple"),
]


@pytest.mark.parametrize(("op", "layers", "match"), REFUSALS)
def test_unsupported_layer_options_are_refused(op: Callable, layers: dict[str, nn.Module], match: str) -> None:
    error = _refused(_Refused(op, **layers), match)
    assert "test_torch_fx.py:" in str(error)  # the source line
