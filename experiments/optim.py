"""Build an optimizer from its config: the lecture's own, or the Keras built-in translated.

A config holds the lecture's hyperparameters once (η, α, ρ, δ, ...). ``implementation:
custom`` builds the matching ``custom_optimizers`` class with them; ``implementation:
keras`` translates them into Keras's conventions (``shared/docs/formulas.md``), so a
pair's curves should agree and any gap is a finding, not a units mistake:

=========  ===============================================================================
momentum   Momentum(η, α)   == keras SGD(learning_rate=η(1-α), momentum=α)          exact
nesterov   Nesterov(η, α)   == keras SGD(η(1-α), α, nesterov=True)                   exact
adagrad    AdaGrad(η, δ)    ~  keras Adagrad(η, initial_accumulator_value=0, epsilon=δ²)
rmsprop    RMSProp(η, ρ, δ) ~  keras RMSprop(η, rho=ρ, epsilon=δ²)
adam       Adam(η, ρ1, ρ2, δ) ~ keras Adam(η, ρ1, ρ2, epsilon=δ)
=========  ===============================================================================

Keras adds epsilon inside the root for Adagrad/RMSprop, so δ² there makes both forms agree
where ``r = 0`` and where ``sqrt(r) >> δ``; Keras's Adam epsilon ("epsilon hat") is added
to the uncorrected ``sqrt(r)``, which equals the lecture's δ only as δ → 0. The lecture's
norm clipping maps to Keras's per-tensor ``clipnorm``; sign clipping and Adam without bias
correction have no Keras counterpart and are refused for ``implementation: keras``.
"""

from __future__ import annotations

from typing import Any, Mapping

# Keyword arguments of keras.optimizers.Optimizer that both implementations pass through.
BASE_KWARGS = ("weight_decay", "global_clipnorm", "use_ema", "gradient_accumulation_steps")


def lecture_class(name):
    """The ``custom_optimizers`` class of lecture rule ``name`` (``"adam"`` -> ``Adam``)."""
    import custom_optimizers

    return {
        "sgd": custom_optimizers.SGD,
        "momentum": custom_optimizers.Momentum,
        "nesterov": custom_optimizers.Nesterov,
        "adagrad": custom_optimizers.AdaGrad,
        "rmsprop": custom_optimizers.RMSProp,
        "adam": custom_optimizers.Adam,
    }[name]


def keras_arguments(name: str, hp: Mapping[str, Any]) -> tuple[str, dict]:
    """The Keras built-in (class name, keyword arguments) that matches lecture ``hp``."""
    lr = float(hp["learning_rate"])
    kwargs: dict[str, Any] = {}
    if hp.get("clip_threshold") is not None:
        kwargs["clipnorm"] = float(hp["clip_threshold"])
    if name == "sgd":
        return "SGD", {"learning_rate": lr, **kwargs}
    if name in ("momentum", "nesterov"):
        a = float(hp["momentum"])
        return "SGD", {"learning_rate": lr * (1.0 - a), "momentum": a,
                       "nesterov": name == "nesterov", **kwargs}
    if name == "adagrad":
        return "Adagrad", {"learning_rate": lr, "initial_accumulator_value": 0.0,
                           "epsilon": float(hp["epsilon"]) ** 2, **kwargs}
    if name == "rmsprop":
        return "RMSprop", {"learning_rate": lr, "rho": float(hp["rho"]),
                           "epsilon": float(hp["epsilon"]) ** 2, **kwargs}
    if name == "adam":
        return "Adam", {"learning_rate": lr, "beta_1": float(hp["beta_1"]),
                        "beta_2": float(hp["beta_2"]), "epsilon": float(hp["epsilon"]),
                        **kwargs}
    raise ValueError(f"no Keras counterpart for optimizer {name!r}")


def keras_refusal(name: str, hp: Mapping[str, Any]) -> str | None:
    """Why ``hp`` cannot be expressed with the Keras built-in, or None if it can."""
    if hp.get("clip_threshold") is not None and hp.get("clip_mode", "norm") == "sign":
        return ("optimizer.clip_mode=sign has no Keras counterpart: use clip_mode=norm "
                "(Keras clipnorm) or the custom optimizer")
    if name == "adam" and not hp.get("bias_correction", True):
        return ("optimizer.bias_correction=false has no Keras counterpart: use "
                "optimizer=adam (the custom Adam)")
    return None


def build_optimizer(cfg: Mapping[str, Any]):
    """The optimizer an ``optimizer`` config describes (see the module docstring)."""
    import keras

    hp = {k: v for k, v in dict(cfg).items() if k not in ("name", "implementation")}
    base = {k: hp.pop(k) for k in BASE_KWARGS if k in hp}
    base = {k: v for k, v in base.items() if v not in (None, False)}
    name = cfg["name"]
    if cfg["implementation"] == "custom":
        return lecture_class(name)(**hp, **base)
    refusal = keras_refusal(name, hp)
    if refusal:
        raise ValueError(refusal)
    class_name, kwargs = keras_arguments(name, hp)
    return getattr(keras.optimizers, class_name)(**kwargs, **base)


def effective_learning_rates(optimizer):
    """Per-weight effective learning rate tensors, one per variable, or None.

    The lecture's ``lr / (δ + sqrt(r))``: for the custom optimizers their own
    ``effective_learning_rates()``; for Keras's built-ins the same quantity in their
    conventions (Adagrad/RMSprop ``lr/sqrt(r + eps)``; Adam, as the factor applied to the
    corrected first moment, ``lr*sqrt(1-b2^t)/(sqrt(v) + eps)``). Plain and momentum SGD
    have no per-weight rate: None.
    """
    import keras
    from keras import ops

    import custom_optimizers

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    if isinstance(optimizer, custom_optimizers.AdaptiveLectureOptimizer):
        return optimizer.effective_learning_rates()
    lr = optimizer._get_current_learning_rate()
    if isinstance(optimizer, keras.optimizers.Adagrad):
        return [ops.cast(lr, a.dtype) / ops.sqrt(a + optimizer.epsilon)
                for a in optimizer._accumulators]
    if isinstance(optimizer, keras.optimizers.RMSprop):
        return [ops.cast(lr, v.dtype) / ops.sqrt(v + optimizer.epsilon)
                for v in optimizer._velocities]
    if isinstance(optimizer, keras.optimizers.Adam):
        out = []
        for v in optimizer._velocities:
            t = ops.maximum(ops.cast(optimizer.iterations, v.dtype), 1.0)
            c2 = ops.sqrt(1.0 - ops.power(ops.convert_to_tensor(optimizer.beta_2, v.dtype), t))
            out.append(ops.cast(lr, v.dtype) * c2 / (ops.sqrt(v) + optimizer.epsilon))
        return out
    return None
