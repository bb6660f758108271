"""The benchmark's naive per-sample numpy LRP (baseline (c) of benchmarks/RESULTS.md) agrees with tf_lrp.

``benchmarks/naive_numpy.py`` builds every per-connection message in float64 with a Python loop
over samples, independently of tf_lrp's batched ε-node algebra, so it doubles as an oracle: LSTM
and GRU, uni- and bidirectional, bias_factor 0 and 1, to 1e-10 of the largest relevance.
"""

from __future__ import annotations

import pytest

from benchmarks import run


@pytest.mark.slow
def test_naive_numpy_lrp_agrees_with_tf_lrp(capsys: pytest.CaptureFixture[str]) -> None:
    worst = run.verify()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8  # 2 cells x 2 directions x 2 bias factors
    assert worst < 1e-10
