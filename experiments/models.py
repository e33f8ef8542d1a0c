"""Model zoo for the optimizer laboratory: small Keras models that output **logits**.

>>> from experiments.models import build_model
>>> model = build_model("cnn", (40, 1), 10)              # doctest: +SKIP
>>> loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # doctest: +SKIP

Every model ends in a Dense layer named ``"logits"`` *without* softmax: train with
``SparseCategoricalCrossentropy(from_logits=True)`` and take ``argmax`` for accuracy. All
layers carry stable names (``dense_1``, ``conv_2``, ``gru``, ``logits``, ...) so per-layer
gradient norms can be labelled with them; the model's name is the registry name.

Models (``build_model(name, input_shape, num_classes, **params)``)
----------------------------------------------------------------
``logreg``  Flatten -> Dense(num_classes). Multinomial logistic regression.
``mlp``     Flatten -> ``depth`` x Dense(``width``, ``activation``) -> logits; with
            ``residual=True`` every hidden layer after the first adds its input
            (``h = h + act(W h + b)``).
``cnn``     ``len(kernel_sizes)`` x [ZeroPadding(``padding``) -> Conv(``channels``, k,
            ``stride``, ``activation``)] -> Flatten -> logits. Conv1D for sequence inputs of
            rank 2 ``(length, channels)``, Conv2D (square kernels/strides) for images of
            rank 3 ``(height, width, channels)``.
``rnn``     GRU(``units``) (``bidirectional`` by default) over the time steps -> logits from
            either all time steps flattened (``readout="flatten"``) or the last state
            (``readout="last"``). Images are read row by row: ``(H, W, C)`` becomes ``H`` steps
            of ``W*C`` features.

The generic defaults use the *sizes* of the MNIST-1D benchmark (below) with Keras'
usual ``glorot_uniform`` initialisation.

MNIST-1D presets (``mnist1d_logreg``, ``mnist1d_mlp``, ``mnist1d_cnn``, ``mnist1d_gru``)
---------------------------------------------------------------------------------------
Mirror the baselines of the MNIST-1D benchmark, ``notebooks/models.py`` of
https://github.com/greydanus/mnist1d (S. Greydanus, "Scaling down deep learning", 2020;
read at commit 579085a), for 40-step inputs and 10 classes:

==================  ==============================================================  ======
preset              benchmark module                                                params
==================  ==============================================================  ======
``mnist1d_logreg``  ``LinearBase``: Linear(40, 10)                                     410
``mnist1d_mlp``     ``MLPBase``: h = relu(L1 x); h = h + relu(L2 h); L3 h; width 100  15 210
``mnist1d_cnn``     ``ConvBase``: 3 x Conv1d(25 ch, kernels 5/3/3, stride 2, pad 1),  5 210
                    ReLU, flatten (5 x 25 = 125) -> Linear(125, 10)
``mnist1d_gru``     ``GRUBase``: bidirectional GRU, hidden 6, all 40 outputs           5 134
                    flattened (480) -> Linear(480, 10)
==================  ==============================================================  ======

They differ from the generic models only in their defaults: ``residual=True`` for the MLP
(the benchmark's second layer is residual) and ``initializer="torch"``, PyTorch's default
initialisation: every Linear/Conv weight *and bias* ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
every GRU weight and bias ~ U(-1/sqrt(hidden), 1/sqrt(hidden)). Keras' GRU with
``reset_after=True`` (its default) is PyTorch's GRU formulation, with the same parameter
count. Layout differences that do not change the function class: Keras flattens conv
features length-major where PyTorch flattens channel-major.

Parameters are described by plain dataclasses (``MODEL_PARAMS[name]``) so the config layer
can validate without importing TensorFlow; this module imports Keras only inside
:func:`build_model`.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.checks import is_int, reject_unknown

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "MODEL_PARAMS",
    "MODEL_NAMES",
    "RNN_READOUTS",
    "CNNParams",
    "LogRegParams",
    "MLPParams",
    "MNIST1DCNNParams",
    "MNIST1DGRUParams",
    "MNIST1DLogRegParams",
    "MNIST1DMLPParams",
    "RNNParams",
    "build_model",
    "check_input_shape",
    "check_params",
    "resolve_params",
]

ACTIVATIONS = (
    "relu", "gelu", "tanh", "sigmoid", "elu", "selu", "swish", "silu", "leaky_relu",
    "softplus", "mish", "linear",
)
#: Keras initializer names, plus "torch" (PyTorch's default init, see the module docstring).
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "orthogonal", "torch",
)
RNN_READOUTS = ("flatten", "last")


# --------------------------------------------------------------------------------------
# parameter dataclasses (no TensorFlow)
# --------------------------------------------------------------------------------------


@dataclass
class LogRegParams:
    initializer: str = "glorot_uniform"


@dataclass
class MLPParams:
    depth: int = 2  # hidden layers; 0 = logistic regression
    width: int = 100
    activation: str = "relu"
    initializer: str = "glorot_uniform"
    residual: bool = False


@dataclass
class CNNParams:
    channels: int = 25
    kernel_sizes: tuple[int, ...] = (5, 3, 3)  # one conv layer per entry
    stride: int = 2
    padding: int = 1  # zeros added on each side before every conv
    activation: str = "relu"
    initializer: str = "glorot_uniform"


@dataclass
class RNNParams:
    units: int = 6
    bidirectional: bool = True
    readout: str = "flatten"  # one of RNN_READOUTS
    initializer: str = "glorot_uniform"


@dataclass
class MNIST1DLogRegParams(LogRegParams):
    initializer: str = "torch"


@dataclass
class MNIST1DMLPParams(MLPParams):
    initializer: str = "torch"
    residual: bool = True


@dataclass
class MNIST1DCNNParams(CNNParams):
    initializer: str = "torch"


@dataclass
class MNIST1DGRUParams(RNNParams):
    initializer: str = "torch"


@dataclass
class NoisyQuadraticParams:
    hessian_seed: int = 42  # the problem's Hessian (experiments.noisy_quadratic)
    start: float = 1.0  # θ's initial value in every coordinate


MODEL_PARAMS: dict[str, type] = {
    "logreg": LogRegParams,
    "mlp": MLPParams,
    "cnn": CNNParams,
    "rnn": RNNParams,
    "mnist1d_logreg": MNIST1DLogRegParams,
    "mnist1d_mlp": MNIST1DMLPParams,
    "mnist1d_cnn": MNIST1DCNNParams,
    "mnist1d_gru": MNIST1DGRUParams,
    "noisy_quadratic": NoisyQuadraticParams,
}
MODEL_NAMES = tuple(MODEL_PARAMS)

# which builder each name uses
_FAMILY = {
    "logreg": "logreg", "mlp": "mlp", "cnn": "cnn", "rnn": "rnn",
    "mnist1d_logreg": "logreg", "mnist1d_mlp": "mlp", "mnist1d_cnn": "cnn", "mnist1d_gru": "rnn",
    "noisy_quadratic": "quadratic",
}


def _check_choice(name: str, key: str, value: Any, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{key}={value!r} is not valid for model {name!r}; choose one of: {', '.join(choices)}"
        )


def _check_int(name: str, key: str, value: Any, minimum: int) -> None:
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"{key}={value!r} is not valid for model {name!r}: expected an integer >= {minimum}"
        )


def _check_bool(name: str, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key}={value!r} is not valid for model {name!r}: expected true or false")


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    """A non-empty list/tuple (or OmegaConf ListConfig) of integers >= 1, as a tuple."""
    items = None
    if not isinstance(value, (str, bytes, Mapping)):
        try:
            items = tuple(value)
        except TypeError:
            pass
    if not items or not all(is_int(v) and v >= 1 for v in items):
        raise ValueError(f"{what} must be a non-empty list of integers >= 1, got {value!r}")
    return tuple(int(v) for v in items)


def resolve_params(name: str, params: Mapping[str, Any] | None = None):
    """Validate ``params`` for model ``name``; return its filled-in parameter dataclass.

    ``ValueError`` for an unknown model, an unknown key (naming the valid ones) or a bad value
    (naming the valid choices). Imports nothing heavy.
    """
    if not isinstance(name, str) or name not in MODEL_PARAMS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    cls = MODEL_PARAMS[name]
    params = dict(params or {})
    reject_unknown(params, cls, f"model {name!r}")
    if "kernel_sizes" in params:
        params["kernel_sizes"] = _int_tuple(
            params["kernel_sizes"], f"kernel_sizes for model {name!r}"
        )
    p = cls(**params)
    if hasattr(p, "initializer"):
        _check_choice(name, "initializer", p.initializer, INITIALIZERS)
    if hasattr(p, "activation"):
        _check_choice(name, "activation", p.activation, ACTIVATIONS)
    family = _FAMILY[name]
    if family == "mlp":
        _check_int(name, "depth", p.depth, 0)
        _check_int(name, "width", p.width, 1)
        _check_bool(name, "residual", p.residual)
    elif family == "cnn":
        _check_int(name, "channels", p.channels, 1)
        _check_int(name, "stride", p.stride, 1)
        _check_int(name, "padding", p.padding, 0)
        p.kernel_sizes = _int_tuple(p.kernel_sizes, f"kernel_sizes for model {name!r}")
    elif family == "quadratic":
        _check_int(name, "hessian_seed", p.hessian_seed, 0)
    elif family == "rnn":
        _check_int(name, "units", p.units, 1)
        _check_bool(name, "bidirectional", p.bidirectional)
        _check_choice(name, "readout", p.readout, RNN_READOUTS)
    return p


def check_params(name: str, **params: Any):
    """``resolve_params(name, params)``: the config layer's cheap check (no TensorFlow)."""
    return resolve_params(name, params)


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def check_input_shape(name: str, input_shape: Sequence[int], **params: Any) -> tuple[int, ...]:
    """``ValueError`` if model ``name`` cannot take samples of ``input_shape`` (no TensorFlow).

    ``cnn`` needs rank 2 (sequence) or 3 (image) and an input large enough for its conv stack;
    ``rnn`` needs rank 2 or 3; ``logreg``/``mlp`` take any shape (they flatten).
    Returns the shape as a tuple of ints.
    """
    return _check_shape(name, resolve_params(name, params), input_shape)


def _check_shape(name: str, p: Any, input_shape: Any) -> tuple[int, ...]:
    shape = _int_tuple(input_shape, "input_shape")
    family = _FAMILY[name]
    if family == "cnn":
        if len(shape) not in (2, 3):
            raise ValueError(
                f"model {name!r} needs a sequence (length, channels) or an image (height, width, "
                f"channels) input, got input_shape={shape}"
            )
        spatial = list(shape[:-1])
        for i, k in enumerate(p.kernel_sizes, 1):
            spatial = [_conv_out(s, k, p.stride, p.padding) for s in spatial]
            if min(spatial) < 1:
                raise ValueError(
                    f"input_shape={shape} is too small for model {name!r}: conv_{i} (kernel {k}, "
                    f"stride {p.stride}, padding {p.padding}) would leave no output; use fewer "
                    "or smaller kernels, a smaller stride or more padding"
                )
    elif family == "rnn" and len(shape) not in (2, 3):
        raise ValueError(
            f"model {name!r} needs a sequence (steps, features) or an image (rows, columns, "
            f"channels) input, got input_shape={shape}"
        )
    return shape


# --------------------------------------------------------------------------------------
# builders (Keras imported here only)
# --------------------------------------------------------------------------------------


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
    shape = _check_shape(name, p, input_shape)
    if not is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    family = _FAMILY[name]
    if family == "quadratic":
        from experiments import noisy_quadratic

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
