"""Fusing the body of a time loop into one compiled kernel: the hook a compiler fills while it traces.

The numeric core never imports a framework, so a recurrent node cannot compile its own loop
step. It hands the step to :func:`fused_step`, which returns it unchanged unless the function
being traced installed a step compiler (:func:`compiling_steps_with`, set by
:class:`tf_lrp.backend.Compiled` for TensorFlow's ``jit_compile="auto"``). The setting is a
context variable, so it holds for one trace on one thread only.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Hashable, Iterator
from typing import Any

#: ``(step, key) -> compiled step``: compiles a loop body into one fused kernel; may reuse the
#: kernel of an earlier step with an equal key
StepCompiler = Callable[[Callable[..., Any], Hashable], Callable[..., Any]]

_STEP_COMPILER: contextvars.ContextVar[StepCompiler | None] = contextvars.ContextVar(
    "tf_lrp_step_compiler", default=None
)


def fused_step(step: Callable[..., Any], key: Hashable) -> Callable[..., Any]:
    """``step`` compiled by the step compiler of the trace in progress, or ``step`` itself if none.

    Args:
        step: the body of one time step, a pure ``keras.ops`` function whose tensors are all
            arguments (nested structures allowed; it must not close over a tensor).
        key: everything static that ``step`` closes over (hashable). Steps with equal keys
            compute the same function of their arguments, so a compiler may serve them all
            with one compiled kernel (across explainers, methods and traces).
    """
    compiler = _STEP_COMPILER.get()
    return step if compiler is None else compiler(step, key)


@contextlib.contextmanager
def compiling_steps_with(compiler: StepCompiler | None) -> Iterator[None]:
    """Within the block (one thread), :func:`fused_step` hands loop bodies to ``compiler``."""
    token = _STEP_COMPILER.set(compiler)
    try:
        yield
    finally:
        _STEP_COMPILER.reset(token)
