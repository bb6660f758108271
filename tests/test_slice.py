"""The slice node: features start:stop forward; relevance and gradient back at those features only."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from tf_lrp.errors import LayoutError
from tf_lrp.layout import Port, SliceSpec
from tf_lrp.nodes import NODES

pytestmark = pytest.mark.core


@pytest.mark.parametrize("shape", [(3, 7), (4, 3, 7)])  # a vector (B, F), a sequence (T, B, F)
@pytest.mark.parametrize(("start", "stop"), [(0, 3), (3, 7), (2, 5)])
def test_slice_forward_and_back(shape: tuple[int, ...], start: int, stop: int) -> None:
    spec, node = SliceSpec(7, start, stop), NODES["slice"]
    # through the backend once: outside JAX's 64-bit mode the backend computes in float32
    x = ops.convert_to_numpy(ops.convert_to_tensor(np.random.default_rng(0).normal(size=shape)))
    out, cache = node.forward(spec, (), [ops.convert_to_tensor(x)], None)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), x[..., start:stop])
    signal = np.random.default_rng(1).normal(size=(*shape[:-1], stop - start))
    signal = ops.convert_to_numpy(ops.convert_to_tensor(signal))
    expected = np.zeros(shape)
    expected[..., start:stop] = signal  # every other feature gets exactly zero
    (relevance,), leftover = node.relevance(spec, (), cache, ops.convert_to_tensor(signal), None)  # type: ignore[arg-type]
    (grad,) = node.gradient(spec, (), cache, ops.convert_to_tensor(signal), None)  # type: ignore[arg-type]
    assert leftover is None
    np.testing.assert_array_equal(ops.convert_to_numpy(relevance), expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(grad), expected)


def test_slice_checks_its_range_and_input() -> None:
    with pytest.raises(LayoutError, match=r"start=3, stop=9 is no range inside 0..7"):
        SliceSpec(7, 3, 9).infer([Port(False, 7, False, "layer 0")], "layer 1 (slice)", False)
    with pytest.raises(LayoutError, match="has input_size 7 but layer 0 outputs width 6"):
        SliceSpec(7, 0, 3).infer([Port(False, 6, False, "layer 0")], "layer 1 (slice)", False)
    port = SliceSpec(7, 2, 5).infer([Port(True, 7, False, "layer 0")], "layer 1 (slice)", False)
    assert port == Port(True, 3, False, "")
    assert SliceSpec.from_entry(SliceSpec(7, 2, 5).to_entry()) == SliceSpec(7, 2, 5)
