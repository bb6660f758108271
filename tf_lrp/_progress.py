"""Progress of a long loop over samples: a bar where a person watches, plain lines in logs.

* a terminal or a Jupyter notebook: a ``tqdm.auto`` bar (a widget in notebooks);
* anything else (a log file, CI, a batch job): one plain line every ``interval`` seconds,
  ``explaining: 1,200/4,000 samples (30%), 850 samples/s, ETA 0:00:03``, and a last line at the
  end, only when the run lasted long enough to print one. Short runs stay silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Seconds between two plain progress lines.
PLAIN_INTERVAL = 30.0


def progress_bar(
    enabled: bool | None, total: int, initial: int = 0, desc: str = "explaining", interval: float = PLAIN_INTERVAL
) -> Any:
    """A progress display with tqdm's ``update(n)``, ``refresh()``, ``close()`` and a settable ``total``.

    Args:
        enabled: True: a tqdm bar; False: nothing; None: a tqdm bar on a terminal or in a
            notebook, plain periodic lines otherwise.
        total: samples to do (0 when not known yet; set ``.total`` later).
        initial: samples already done (a resumed run).
        desc: the label in front.
        interval: seconds between plain lines.

    Returns:
        A ``tqdm`` bar or a :class:`PlainProgress`.
    """
    from tqdm.auto import tqdm

    if enabled is None and not (sys.stderr.isatty() or _in_notebook()):
        return PlainProgress(total, initial, desc, interval, sys.stderr)
    return tqdm(
        total=total, initial=initial, unit="sample", unit_scale=True, disable=enabled is False, dynamic_ncols=True,
        desc=desc, file=sys.stderr, smoothing=0.1,
    )  # fmt: skip


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (where tqdm.auto draws a widget)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class PlainProgress:
    """Periodic one-line progress reports for streams that are not terminals (logs, CI)."""

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        interval: float,
        stream: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.n = initial
        self.desc = desc
        self.interval = interval
        self._initial = initial
        self._stream = stream
        self._clock = clock
        self._started = self._last = clock()
        self._spoke = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more samples; print a line when ``interval`` seconds passed since the last."""
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._report(now)

    def refresh(self) -> None:
        """Nothing to redraw (tqdm's interface)."""

    def close(self) -> None:
        """The last line, when the run printed any before."""
        if self._spoke:
            self._report(self._clock())

    def line(self, now: float) -> str:
        """The report at time ``now``: done/total, percent, samples/s, ETA."""
        elapsed = max(now - self._started, 1e-9)
        rate = (self.n - self._initial) / elapsed
        done = f"{self.n:,}/{self.total:,} samples ({self.n / self.total:.0%})" if self.total else f"{self.n:,} samples"
        left = self.total - self.n
        eta = f", ETA {_clock_text(left / rate)}" if self.total and rate > 0 and left > 0 else ""
        return f"{self.desc}: {done}, {rate:,.0f} samples/s{eta}"

    def _report(self, now: float) -> None:
        self._spoke = True
        self._stream.write(self.line(now) + "\n")
        self._stream.flush()


def _clock_text(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
