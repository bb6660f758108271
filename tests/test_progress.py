"""Progress display: a tqdm bar where a person watches, periodic plain lines in logs."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tf_lrp import _progress
from tf_lrp._progress import PlainProgress, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_interval_with_rate_and_eta():
    clock, stream = Clock(), io.StringIO()
    bar = PlainProgress(4000, 0, "explaining", 30.0, stream, clock=clock)
    clock.now += 10
    bar.update(500)  # 10 s < 30 s: silent
    assert stream.getvalue() == ""
    clock.now += 30
    bar.update(1500)  # 2000 samples in 40 s: 50/s, 2000 left: 40 s
    assert stream.getvalue() == "explaining: 2,000/4,000 samples (50%), 50 samples/s, ETA 0:00:40\n"
    clock.now += 40
    bar.update(2000)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[1:] == ["explaining: 4,000/4,000 samples (100%), 50 samples/s"] * 2


def test_short_runs_print_nothing():
    clock, stream = Clock(), io.StringIO()
    bar = PlainProgress(10, 0, "explaining", 30.0, stream, clock=clock)
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""


def test_resumed_runs_count_only_new_samples_and_unknown_totals():
    clock = Clock()
    bar = PlainProgress(1000, 600, "explaining", 30.0, io.StringIO(), clock=clock)
    clock.now += 20
    bar.update(200)
    assert bar.line(clock.now) == "explaining: 800/1,000 samples (80%), 10 samples/s, ETA 0:00:20"
    growing = PlainProgress(0, 0, "explaining", 30.0, io.StringIO(), clock=clock)
    growing.update(5)
    assert growing.line(clock.now + 5) == "explaining: 5 samples, 1 samples/s"


def test_the_display_follows_where_stderr_goes(monkeypatch):
    monkeypatch.setattr(_progress.sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(progress_bar(None, 10), PlainProgress)
    quiet = progress_bar(False, 10)
    assert quiet.disable
    quiet.close()
    monkeypatch.setattr(_progress.sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(None, 10)
    assert not isinstance(bar, PlainProgress)
    assert not bar.disable
    bar.close()


@pytest.mark.parametrize("progress", [None, False])
def test_explain_dataset_in_a_log_prints_nothing_when_short(progress, capfd):
    from tf_lrp import Explainer

    rng = np.random.default_rng(0)
    weights = [rng.normal(size=s) for s in [(2, 12), (3, 12), (12,), (3, 2), (2,)]]
    explainer = Explainer.from_weights(weights, cell="lstm")
    explainer.explain_dataset(rng.normal(size=(9, 4, 2)).astype("float32"), batch_size=4, progress=progress)
    assert capfd.readouterr().err == ""
