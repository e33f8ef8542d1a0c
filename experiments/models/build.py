"""``build_model``: the Keras models of the zoo (Keras is imported inside the builders)."""

import math
from collections.abc import Sequence
from typing import Any

from experiments.core.checks import is_int
from experiments.models.params import (FAMILY, CNNParams, LogRegParams, MLPParams, RNNParams,
                                       check_shape, resolve_params)


def _inits(keras, initializer: str, fan_in: int) -> dict[str, Any]:
    """kernel/bias initializer kwargs for a Dense/Conv layer with ``fan_in`` inputs per unit."""
    if initializer == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        return {
            "kernel_initializer": keras.initializers.RandomUniform(-bound, bound),
            "bias_initializer": keras.initializers.RandomUniform(-bound, bound),
        }
    return {"kernel_initializer": initializer, "bias_initializer": "zeros"}


def _logits(keras, h, num_classes: int, initializer: str):
    fan_in = int(h.shape[-1])
    return keras.layers.Dense(num_classes, name="logits", **_inits(keras, initializer, fan_in))(h)


def _build_logreg(keras, x, p: LogRegParams, num_classes: int):
    h = keras.layers.Flatten(name="flatten")(x)
    return _logits(keras, h, num_classes, p.initializer)


def _build_mlp(keras, x, p: MLPParams, num_classes: int):
    h = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, p.depth + 1):
        fan_in = int(h.shape[-1])
        z = keras.layers.Dense(
            p.width, activation=p.activation, name=f"dense_{i}",
            **_inits(keras, p.initializer, fan_in),
        )(h)
        h = keras.layers.Add(name=f"residual_{i}")([h, z]) if p.residual and i > 1 else z
    return _logits(keras, h, num_classes, p.initializer)


def _build_cnn(keras, x, p: CNNParams, num_classes: int, rank: int):
    if rank == 2:
        pad_layer, conv_layer = keras.layers.ZeroPadding1D, keras.layers.Conv1D
    else:
        pad_layer, conv_layer = keras.layers.ZeroPadding2D, keras.layers.Conv2D
    h = x
    for i, k in enumerate(p.kernel_sizes, 1):
        if p.padding:
            h = pad_layer(p.padding, name=f"pad_{i}")(h)
        fan_in = int(h.shape[-1]) * k ** (rank - 1)
        h = conv_layer(
            p.channels, k, strides=p.stride, padding="valid", activation=p.activation,
            name=f"conv_{i}", **_inits(keras, p.initializer, fan_in),
        )(h)
    h = keras.layers.Flatten(name="flatten")(h)
    return _logits(keras, h, num_classes, p.initializer)


def _build_rnn(keras, x, p: RNNParams, num_classes: int, shape: tuple[int, ...]):
    h = x
    if len(shape) == 3:  # image: rows are time steps
        h = keras.layers.Reshape((shape[0], shape[1] * shape[2]), name="rows")(h)
    if p.initializer == "torch":
        bound = 1.0 / math.sqrt(p.units)
        init = {
            k: keras.initializers.RandomUniform(-bound, bound)
            for k in ("kernel_initializer", "recurrent_initializer", "bias_initializer")
        }
    else:
        init = {"kernel_initializer": p.initializer}
    sequences = p.readout == "flatten"
    if p.bidirectional:
        h = keras.layers.Bidirectional(
            keras.layers.GRU(p.units, return_sequences=sequences, **init), name="gru"
        )(h)
    else:
        h = keras.layers.GRU(p.units, return_sequences=sequences, name="gru", **init)(h)
    if sequences:
        h = keras.layers.Flatten(name="flatten")(h)
    return _logits(keras, h, num_classes, p.initializer)


def build_model(name: str, input_shape: Sequence[int], num_classes: int, **params: Any):
    """Build model ``name`` for samples of ``input_shape`` and ``num_classes`` classes.

    Returns an uncompiled functional ``keras.Model`` named ``name`` whose output is
    ``(batch, num_classes)`` **logits** (no softmax): pair it with
    ``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``.
    ``params`` are the fields of ``MODEL_PARAMS[name]``; see the module docstring.

    Raises:
        ValueError: unknown model, unknown/invalid parameter, or an incompatible input shape.
    """
    p = resolve_params(name, params)
    shape = check_shape(name, p, input_shape)
    if not is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    family = FAMILY[name]
    if family == "quadratic":
        from experiments.data import noisy_quadratic

        return noisy_quadratic.build_model(shape, num_classes, p.hessian_seed, p.start)
    import keras

    x = keras.Input(shape=shape, name="input")
    if family == "logreg":
        out = _build_logreg(keras, x, p, num_classes)
    elif family == "mlp":
        out = _build_mlp(keras, x, p, num_classes)
    elif family == "cnn":
        out = _build_cnn(keras, x, p, num_classes, len(shape))
    else:
        out = _build_rnn(keras, x, p, num_classes, shape)
    return keras.Model(x, out, name=name)
