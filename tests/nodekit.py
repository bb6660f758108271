"""What the per-node tests share: a float64 NodeContext, the time-major <-> batch-major moves, and
Gradient×Input of a Keras model by ``tf.GradientTape`` (the autodiff reference of converted models).

Nodes run time-major ((T, B, F) sequences); the oracles and Keras layers are batch-major.
"""

from __future__ import annotations

import keras
import numpy as np

from tf_lrp.nodes import NodeContext
from tf_lrp.rules import NodeRules, RuleSet


def node_context(eps: float = 1e-3, bias_factor: float = 1.0, rules: NodeRules | None = None) -> NodeContext:
    """A float64 context: ε, bias_factor, the node's rules (None: the defaults), no occlusion."""
    number = keras.ops.convert_to_tensor
    return NodeContext(number(eps, "float64"), number(bias_factor, "float64"), rules, False)


def attention_rules(attention: str | None) -> NodeRules | None:
    """The default node rules with attention rule ``attention`` (None: no rules, the node's defaults)."""
    if attention is None:
        return None
    base = RuleSet(attention=attention)
    return NodeRules(base.product, base.sum_spread, base.head, None, attention=attention)


def time_major(x: np.ndarray) -> object:
    """(B, T, F) numpy -> a (T, B, F) tensor."""
    return keras.ops.convert_to_tensor(np.transpose(x, (1, 0, 2)))


def batch_major(x: object) -> np.ndarray:
    """A (T, B, F) tensor -> (B, T, F) numpy."""
    return np.transpose(keras.ops.convert_to_numpy(x), (1, 0, 2))


def keras_gradient_x_input(model: keras.Model, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Gradient×Input of each sample's ``target`` score (the pre-activation tf_lrp explains), by tf.GradientTape.

    Args:
        model: a Keras model of one (B, T, F) input.
        x: (B, T, F) inputs.
        target: (B,) the class explained per sample.

    Returns:
        (B, T, F).
    """
    import tensorflow as tf

    from tf_lrp.convert.keras import score_model

    scores = score_model(model)
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        total = tf.reduce_sum(tf.gather(scores(tensor, training=False), target, axis=-1, batch_dims=1))
    return (tape.gradient(total, tensor) * tensor).numpy()
