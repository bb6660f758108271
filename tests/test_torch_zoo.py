"""A zoo of realistic PyTorch modules read by ``Explainer.from_torch(module)`` (tf_lrp/convert/torch_fx.py).

The counterparts of the Keras zoo (tests/test_keras_zoo.py) that the traced ops allow, in float64
(``module.double()``), each checked by the same harness: the converted network's scores equal the
module's score layer (``fc``, its pre-activation) to 1e-10, Gradient×Input equals
``torch.autograd`` (at the embedded input for token models), LRP at ``bias_factor=1`` conserves
(1e-9 relative to max(1, |score|); every rule on the way conserves: PyTorch has no masks), and a
batch explains like its samples one by one (1e-12). A new module is one entry in ``ZOO``.
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
from torch.nn import functional as fn

from tf_lrp import ConversionError, Explainer
from tf_lrp.errors import TfLrpWarning

from .test_torch_fx import BidirectionalLastStep

pytestmark = pytest.mark.torch

D, H, C, B, T, V, E = 3, 4, 2, 3, 8, 11, 5


class BiLSTMMaxText(nn.Module):
    """Token ids -> embedding -> bidirectional LSTM -> max over time -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, E, padding_idx=0)
        self.rnn = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * H, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(ids))
        return self.fc(out.max(dim=1)[0])


class GRUMean(nn.Module):
    """GRU -> mean over time -> Linear + Tanh -> linear -> softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.hidden, self.act, self.fc = nn.Linear(H, 3), nn.Tanh(), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return torch.softmax(self.fc(self.act(self.hidden(out.mean(dim=1)))), dim=-1)


class CNNLSTM(nn.Module):
    """Conv1d front (channels-first) + ReLU + BatchNorm1d + MaxPool1d -> LSTM -> last step."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(D, 6, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm1d(6)
        self.pool = nn.MaxPool1d(2)
        self.rnn = nn.LSTM(6, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.norm(fn.relu(self.conv(x.transpose(1, 2)))))
        out, _ = self.rnn(h.transpose(1, 2))
        return self.fc(out[:, -1])


class TextCNN(nn.Module):
    """Token ids -> embedding -> permute -> Conv1d('same') + GELU -> grouped strided Conv1d -> max and mean."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.conv = nn.Conv1d(E, 6, 3, padding="same", dilation=2)
        self.grouped = nn.Conv1d(6, 4, 2, stride=2, groups=2, bias=False)
        self.smooth = nn.AvgPool1d(2, stride=1)
        self.fc = nn.Linear(8, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = fn.gelu(self.conv(self.embedding(ids).permute(0, 2, 1)))
        h = self.smooth(self.grouped(h))
        return self.fc(torch.cat([h.amax(-1), h.mean(dim=2)], dim=1))


class DilatedCNNGRU(nn.Module):
    """Dilated valid Conv1d + SiLU -> BatchNorm1d(affine=False) -> GRU reading (time, batch, channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(D, 5, 2, dilation=2)
        self.norm = nn.BatchNorm1d(5, affine=False)
        self.rnn = nn.GRU(5, H)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, time, features)
        h = self.norm(fn.silu(self.conv(x.transpose(2, 1))))
        out, _ = self.rnn(h.permute(2, 0, 1))
        return self.fc(out[-1])


class TimeMajorConv(nn.Module):
    """A module that takes (time, batch, features): permute(1, 2, 0) to channels-first, Conv1d, back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(D, 4, 3, padding=2, dilation=2)
        self.rnn = nn.RNN(4, H)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x.permute(1, 2, 0)))
        out, _ = self.rnn(h.permute(2, 0, 1))
        return self.fc(out[-1])


class BiLSTMLayerNorm(nn.Module):
    """Token ids -> BiLSTM -> LayerNorm -> LSTM -> h_n[-1] -> Linear(tanh) -> linear -> softmax."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, E, padding_idx=0)
        self.rnn = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.norm = nn.LayerNorm(2 * H)
        self.top = nn.LSTM(2 * H, 5, batch_first=True)
        self.hidden, self.fc = nn.Linear(5, 4), nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(ids))
        _, (h_n, _) = self.top(self.norm(out))
        return torch.softmax(self.fc(torch.tanh(self.hidden(h_n[-1]))), dim=-1)


class ResidualGRU(nn.Module):
    """Per-step Linear -> two GRUs with residual ``+`` (and a ``torch.sub``) -> LayerNorm(no affine) -> mean."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(D, H)
        self.first, self.second = nn.GRU(H, H, batch_first=True), nn.GRU(H, H, batch_first=True)
        self.norm = nn.LayerNorm(H, elementwise_affine=False, eps=1e-3)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = self.first(h)[0] + h
        h = torch.sub(self.second(h)[0], h)
        h = h.view(h.size(0), h.size(1), H)  # the identity
        return self.fc(self.norm(h).mean(dim=1))


class FeatureBatchNorm(nn.Module):
    """GRU -> h_n[-1] -> BatchNorm1d on (batch, features) -> Linear + SiLU -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True)
        self.norm = nn.BatchNorm1d(H)
        self.hidden, self.act, self.fc = nn.Linear(H, 3), nn.SiLU(), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h_n = self.rnn(x)
        return self.fc(self.act(self.hidden(self.norm(h_n[-1]))))


class Activations(nn.Module):
    """Hidden activations of every form between per-step Linear layers, then an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(D, 4), nn.Linear(4, 4), nn.Linear(4, 4)
        self.acts = nn.ModuleList([nn.ELU(), nn.SELU(), nn.Softplus(), nn.GELU("tanh"), nn.Hardtanh()])
        self.rnn = nn.LSTM(4, H, batch_first=True)
        self.fc = nn.Linear(H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.acts[0](self.a(x))
        h = self.acts[1](h).sigmoid() + fn.mish(self.b(h))
        h = self.acts[4](self.acts[3](self.acts[2](self.c(h)))) - fn.elu(h)
        out, _ = self.rnn(fn.hardswish(h.relu()))
        return self.fc(out[:, -1])


class StackedReluRNN(nn.Module):
    """nn.RNN(nonlinearity='relu', num_layers=2) -> last step -> Linear -> ReLU module -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(D, H, num_layers=2, nonlinearity="relu", batch_first=True)
        self.hidden, self.act, self.fc = nn.Linear(H, 3), nn.ReLU(), nn.Linear(3, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(self.act(self.hidden(out[:, -1])))


class KimCNN(nn.Module):
    """Kim (2014)-style text CNN: parallel convs, max over all of time by window, adaptive and keepdim pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.convs = nn.ModuleList([nn.Conv1d(E, 3, k) for k in (2, 3)])
        self.conv4 = nn.Conv1d(E, 3, 5, padding="same", bias=False)
        self.adaptive, self.flat = nn.AdaptiveAvgPool1d(1), nn.Flatten()
        self.fc = nn.Linear(12, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embedding(ids).transpose(1, 2)
        pooled = [fn.max_pool1d(fn.relu(conv(h)), conv(h).size(2)).squeeze(2) for conv in self.convs]
        wide = self.conv4(h)
        pooled.append(self.flat(self.adaptive(wide)))
        pooled.append(wide.mean(dim=-1, keepdim=True)[:, :, 0])
        return self.fc(torch.cat(pooled, dim=1))


class FlattenHead(nn.Module):
    """A fixed-length series: Conv1d -> GRU -> every step flattened into the head (out.reshape(B, -1))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(D, 4, 3, padding=1)
        self.rnn = nn.GRU(4, H, batch_first=True)
        self.fc = nn.Linear(T * H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(fn.elu(self.conv(x.transpose(1, 2))).transpose(1, 2))
        return self.fc(out.reshape(x.size(0), -1))


@dataclass
class Entry:
    build: Callable[[], nn.Module]
    tokens: bool = False
    time_major: bool = False  # the module reads (T, B, D)
    head: str = "fc"  # the score layer
    padded: bool = True  # token ids end in a run of 0s (a max over windows of a run ties: torch's max_pool1d
    # sends the gradient to one of them, tf_lrp splits it, so the max-pooled CNN reads ids without runs)


class GatedSum(nn.Module):
    """BiGRU -> a sigmoid gate times the states (GLU-style) -> sum over time -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(D, H, batch_first=True, bidirectional=True)
        self.gate, self.fc = nn.Linear(2 * H, 2 * H), nn.Linear(2 * H, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc((torch.sigmoid(self.gate(out)) * out).sum(dim=1))


ZOO: dict[str, Entry] = {
    "bilstm_max_text": Entry(BiLSTMMaxText, tokens=True),
    "gru_mean": Entry(GRUMean),
    "cnn_lstm": Entry(CNNLSTM),
    "text_cnn": Entry(TextCNN, tokens=True),
    "dilated_cnn_gru": Entry(DilatedCNNGRU),
    "time_major_conv": Entry(TimeMajorConv, time_major=True),
    "bilstm_layer_norm": Entry(BiLSTMLayerNorm, tokens=True),
    "residual_gru": Entry(ResidualGRU),
    "feature_batch_norm": Entry(FeatureBatchNorm),
    "activations": Entry(Activations),
    "stacked_relu_rnn": Entry(StackedReluRNN),
    "bidirectional_last_step_trap": Entry(BidirectionalLastStep),
    "kim_cnn": Entry(KimCNN, tokens=True, padded=False),
    "flatten_head": Entry(FlattenHead),
    "gated_sum": Entry(GatedSum),
}


def _init(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():  # weights of size ~1 (gates saturate somewhat); running statistics away from 0 / 1
        for parameter in model.parameters():
            parameter.uniform_(-0.8, 0.8)
        for module in model.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx] = 0.0
    return model.double().eval()


def _data(entry: Entry, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if entry.tokens:
        ids = rng.integers(1, V, size=(B, T))
        if entry.padded:
            ids[1, 5:] = 0
        return ids
    return rng.normal(size=(B, T, D))


@dataclass
class Case:
    entry: Entry
    model: nn.Module
    x: np.ndarray
    explainer: Explainer


def _explain(case: Case, x: np.ndarray, target: np.ndarray, **options: Any) -> Any:
    with warnings.catch_warnings():  # a sample whose score nearly vanishes blows up: the checks still hold
        warnings.simplefilter("ignore", TfLrpWarning)
        return case.explainer.explain(x, target=target, **options)


@pytest.fixture(scope="module", params=sorted(ZOO))
def case(request: pytest.FixtureRequest) -> Case:
    entry = ZOO[request.param]
    seed = sorted(ZOO).index(request.param)
    model, x = _init(entry.build(), seed), _data(entry, seed)
    return Case(entry, model, x, Explainer.from_torch(model, dtype="float64", sample=x, tolerance=1e-10))


def _torch_scores_and_gradient(case: Case, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The score layer's output, and Gradient×Input of the target scores by autograd (batch-major)."""
    model, captured, scores = case.model, {}, {}
    handles = [getattr(model, case.entry.head).register_forward_hook(lambda m, a, out: scores.__setitem__("s", out))]
    if case.entry.tokens:

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            output.retain_grad()
            captured["x"] = output

        handles.append(model.embedding.register_forward_hook(hook))
        tensor = torch.tensor(case.x)
    else:
        tensor = captured["x"] = torch.tensor(case.x, requires_grad=True)
    try:
        model(tensor.transpose(0, 1) if case.entry.time_major else tensor)
    finally:
        for handle in handles:
            handle.remove()
    s = scores["s"]
    s[torch.arange(len(target)), torch.tensor(target)].sum().backward()
    leaf = captured["x"]
    return s.detach().numpy(), (leaf.grad * leaf).detach().numpy()


def _target(case: Case) -> np.ndarray:
    return np.arange(len(case.x)) % case.explainer.layout.num_outputs


def test_scores_and_gradient_x_input_equal_the_module(case: Case) -> None:
    expected, grad_x_input = _torch_scores_and_gradient(case, _target(case))
    np.testing.assert_allclose(case.explainer.score(case.x), expected, rtol=0, atol=1e-10)
    ours = _explain(case, case.x, _target(case), method="gradient_x_input").relevance
    np.testing.assert_allclose(ours, grad_x_input, rtol=0, atol=1e-10)


def test_lrp_conserves_at_bias_factor_one(case: Case) -> None:
    result = _explain(case, case.x, _target(case), method="lrp", eps=1e-9, bias_factor=1.0)
    assert np.all(np.abs(result.absorbed) <= 1e-9 * np.maximum(1.0, np.abs(result.explained_score)))


@pytest.mark.parametrize("method", ["lrp", "gradient_x_input"])
def test_a_batch_explains_like_its_samples_one_by_one(case: Case, method: str) -> None:
    target, options = _target(case), {"eps": 1e-9, "bias_factor": 1.0} if method == "lrp" else {}
    batch = _explain(case, case.x, target, method=method, **options).relevance
    for i in range(len(case.x)):
        one = _explain(case, case.x[i : i + 1], target[i : i + 1], method=method, **options).relevance
        np.testing.assert_allclose(one[0], batch[i], rtol=0, atol=1e-12)


def test_a_flattened_fixed_length_head_needs_a_sample() -> None:
    with pytest.raises(ConversionError, match=r"flattens a sequence of 8 steps .* pass sample="):
        Explainer.from_torch(_init(FlattenHead(), 0))
