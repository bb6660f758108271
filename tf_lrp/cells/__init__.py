"""Recurrent cells: one time step forward, one step of relevance, one step of gradient.

A cell module provides, for a batch at one time step, pure ``keras.ops`` functions:

* ``project_inputs(params, x)``: the input projection of every time step at once,
  ``x @ kernel + input_bias`` (T, B, G·H); it is outside the recurrence, one big matmul;
* ``initial_state(like)`` and ``forward_step(spec, params, state, projected_t)`` returning
  the new state (``state[0]`` is the output ``h``) and the step's gate values;
* ``make_cache(spec, states, previous_states, gates)``: the stacked forward quantities the
  backward passes need;
* ``relevance_step`` / ``input_relevance``: the LRP backward of one step, and the relevance
  of the inputs of all steps at once (again one matmul);
* ``gradient_step`` / ``input_gradient``: the same for the plain gradient.

The time loop, directions, stacking and masks live in :mod:`tf_lrp.nodes.recurrent`; a new cell
is one module here plus its registrations (:data:`CELLS`, ``layout.GATES``, its schema entry, the
converters' class tables). ``GATES`` names its blocks, ``CACHE_VECTORS`` the H-vectors it keeps per
step (the memory model reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from . import gru, lstm, simple_rnn
from .activations import ACTIVATIONS

#: cell kind -> module implementing it.
CELLS: Mapping[str, ModuleType] = MappingProxyType({"lstm": lstm, "gru": gru, "simple_rnn": simple_rnn})

__all__ = ["ACTIVATIONS", "CELLS"]
