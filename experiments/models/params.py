"""Each model's parameters as a dataclass (``MODEL_PARAMS``) and their checks: what the
config layer validates with, before TensorFlow is imported."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from experiments.core.checks import is_int, reject_unknown


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
    hessian_seed: int = 42  # the problem's Hessian (experiments.data.noisy_quadratic)
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
FAMILY = {
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
    family = FAMILY[name]
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
    return check_shape(name, resolve_params(name, params), input_shape)


def check_shape(name: str, p: Any, input_shape: Any) -> tuple[int, ...]:
    shape = _int_tuple(input_shape, "input_shape")
    family = FAMILY[name]
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
