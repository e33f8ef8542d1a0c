"""What the six lecture optimizers share: argument checks, the lecture's clipping, config.

Each optimizer file keeps Keras's own four-part shape (``__init__`` passing the base
keyword arguments through, ``build`` creating slots, a short ``update_step`` in
``keras.ops``, ``get_config``); this base class only holds what would otherwise be
written six times.
"""

from __future__ import annotations

import functools
import inspect
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from custom_optimizers.rules import CLIP_THRESHOLD, LEARNING_RATE, check_clip_mode, interval

# Relative slack, in units of the dtype's epsilon, before a norm counts as above u: Keras's
# own norm clipping leaves norms up to ~1 eps above u (measured in float32 and float64).
_CLIP_SLACK_ULPS = 4

# A variable with at least this many elements has its element-wise update (a "kernel")
# run as one XLA cluster when the training step itself is a graph without XLA: one pass
# over memory instead of one per operation (Adam at 10M parameters: about half Keras's
# time instead of 1.1x). Smaller variables keep the plain operations, whose per-call cost
# is lower than an XLA launch. Eagerly, and inside a step XLA compiles anyway, the kernel
# runs as plain operations (inside XLA they are fused all the same).
FUSED_MIN_SIZE = 1 << 15
_COMPILED_KERNELS: dict = {}


def _learning_rate_argument(learning_rate):
    """Numbers are checked and made floats; schedules and callables pass unchanged."""
    if isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule) or (
        callable(learning_rate) and not isinstance(learning_rate, numbers.Real)
    ):
        return learning_rate
    return LEARNING_RATE.check(learning_rate)


def clip_gradient(gradient, threshold, mode):
    """The lecture's clipping of one gradient tensor whose norm exceeds ``threshold`` (u).

    ``mode="sign"`` is the slide's rule ``g = sign(g) * u``; ``mode="norm"`` is the usual
    ``g = g * u / ||g||``. A gradient with ``||g|| <= u`` is returned unchanged. Written
    with ``ops.where`` on a scalar so it traces the same under XLA and tf.distribute.

    "Exceeds" allows for rounding (a few ulps): a gradient that Keras's ``clipnorm=u`` or
    ``global_clipnorm=u`` already clipped can come out with a norm one ulp above u, and
    must not be clipped a second time (in sign mode that would replace it outright).
    """
    norm = ops.sqrt(ops.sum(ops.square(gradient)))
    u = ops.cast(threshold, gradient.dtype)
    eps = float(np.finfo(keras.backend.standardize_dtype(gradient.dtype)).eps)
    slack = 1.0 + _CLIP_SLACK_ULPS * eps
    if mode == "sign":
        clipped = ops.sign(gradient) * u
    else:
        clipped = gradient * (u / ops.maximum(norm, u))
    return ops.where(norm > u * slack, clipped, gradient)


class LectureOptimizer(keras.optimizers.Optimizer):
    """Base of the lecture's optimizers: checked arguments and the lecture's clipping.

    Args:
        learning_rate: η (ε in the AdaGrad/RMSProp slides): a non-negative number, a
            ``LearningRateSchedule`` or a callable.
        clip_threshold: u, the lecture's clipping threshold applied to each gradient
            tensor whose norm exceeds it; ``None`` (default) for no clipping.
        clip_mode: ``"norm"`` (rescale to norm u, default) or ``"sign"`` (the slide's
            ``sign(g) * u``).
        **kwargs: every keyword of ``keras.optimizers.Optimizer`` (``weight_decay``,
            ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``use_ema``,
            ``ema_momentum``, ``ema_overwrite_frequency``, ``loss_scale_factor``,
            ``gradient_accumulation_steps``, ``name``), passed through unchanged.

    The lecture's clipping happens inside ``update_step``, once per variable and step,
    after Keras has applied its own ``clipnorm``/``clipvalue``/``global_clipnorm`` and
    after tf.distribute has summed the replicas' gradients, so a distributed run clips
    the same gradient as a single-device one.
    """

    #: The rule this class implements (``custom_optimizers.rules.Rule``), declared with
    #: ``class X(LectureOptimizer, rule=RULE)``: its hyperparameters (names, defaults,
    #: ranges, meanings) make the class's signature, argument checks, attributes,
    #: ``get_config`` and the Args table of its docstring, and its registry entry names
    #: this class. Only ``build`` and ``update_step`` are written by hand.
    rule = None
    #: Arguments beyond the rule's hyperparameters (name -> (default, meaning)), e.g.
    #: Muon's ``exclude_layers``: in the signature, ``get_config`` and the docstring,
    #: checked by ``check_option``.
    options: dict = {}
    #: Attributes a subclass fixes (name -> value, e.g. AdamW's ``bias_correction=True``):
    #: set on the class, not arguments; an old config that hands one back is accepted.
    fixed: dict = {}
    #: Capabilities (``custom_optimizers.capabilities``): where the model is evaluated
    #: ("weights", or "x" with ``evaluation_point(variables)``, Schedule-Free's average);
    #: hyperparameters the step reads in Python while it is traced, so that a new value
    #: needs a new trace (never held in variables); the slot lists (attribute names) that
    #: start as copies of the weights.
    evaluates_at = "weights"
    static_hyperparameters: tuple = ()
    weight_slots: tuple = ()

    def __init__(self, learning_rate, clip_threshold=None, clip_mode="norm", **kwargs):
        learning_rate = _learning_rate_argument(learning_rate)
        if clip_threshold is not None:
            clip_threshold = CLIP_THRESHOLD.check(clip_threshold)
        clip_mode = check_clip_mode(clip_mode)
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.clip_threshold = clip_threshold
        self.clip_mode = clip_mode

    def __init_subclass__(cls, rule=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if rule is None:
            return
        cls.rule = rule
        for name, value in cls.fixed.items():
            setattr(cls, name, value)
        cls.__init__ = _declared_init(cls)
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n" + arguments_table(cls)
        keras.saving.register_keras_serializable(package="custom_optimizers")(cls)
        rule.bind(cls)

    def parameter_groups(self):
        """``{group: [variable paths]}`` for an optimizer that updates groups of variables
        differently (Muon), else None."""
        return None

    @classmethod
    def check_option(cls, name, value):
        """An option's value (``options``) as the class keeps it, or a one-line ValueError."""
        return value

    def _prepare_gradient(self, gradient, variable):
        """The gradient as a dense tensor of the variable's dtype, clipped if asked.

        Sparse gradients (``tf.IndexedSlices`` from an ``Embedding``) are made dense: the
        lecture's moving averages decay every row at every step, so only the dense form
        gives the same result as the equivalent dense gradient.
        """
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        gradient = ops.cast(gradient, variable.dtype)
        if self.clip_threshold is not None:
            gradient = clip_gradient(gradient, self.clip_threshold, self.clip_mode)
        return gradient

    def _run_kernel(self, kernel, variable, slots, *tensors, **options):
        """``kernel(variable, *slots, *tensors, **options)``: an update written once in
        ``keras.ops``.

        ``kernel`` assigns to the ``tf.Variable``s it gets (the weights, then the slots);
        ``tensors`` are the gradient and the scalars, as tensors of the variable's dtype so
        that one compiled kernel serves every hyperparameter value; ``options`` are Python
        values fixed when the step is traced (e.g. ``guard_zero``). Whether it runs fused
        (``FUSED_MIN_SIZE``) changes the speed, not the math: both paths are checked to agree.
        """
        variables = [v.value if isinstance(v, keras.Variable) else v for v in (variable, *slots)]
        size = variables[0].shape.num_elements()
        if not tf.executing_eagerly() and size is not None and size >= FUSED_MIN_SIZE:
            key = (kernel, tuple(sorted(options.items())))
            compiled = _COMPILED_KERNELS.get(key)
            if compiled is None:
                compiled = _COMPILED_KERNELS[key] = tf.function(
                    functools.partial(kernel, **options), jit_compile=True, autograph=False)
            kernel = compiled
        elif options:
            kernel = functools.partial(kernel, **options)
        kernel(*variables, *(as_dtype(t, variable.dtype) for t in tensors))

    @staticmethod
    def _guard_zero(delta, dtype, smallest_scale=1.0):
        """Whether ``δ + sqrt(r)`` can be 0 in ``dtype``: δ (times the smallest factor the
        update scales it by, e.g. Adam's ``sqrt(1-ρ2^t) >= sqrt(1-ρ2)``) below the dtype's
        smallest normal number, which a flush-to-zero step may round to 0.

        Known when the step is traced, so a kernel divides plainly when δ cannot vanish (the
        work of Keras's own update) and with ``divide_no_nan`` only when it can.
        """
        if not isinstance(delta, numbers.Real) or not isinstance(smallest_scale, numbers.Real):
            return True  # a tensor (a hyperparameter held in a variable): guard, same numbers
        dtype = keras.backend.standardize_dtype(dtype)
        tiny = np.finfo("float32" if dtype == "bfloat16" else dtype).tiny
        return not delta * smallest_scale >= 2 * tiny

    def _step(self, variable):
        """The lecture's 1-based step number t, as the variable's dtype."""
        return ops.cast(self.iterations + 1, variable.dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"clip_threshold": self.clip_threshold, "clip_mode": self.clip_mode})
        if self.rule is not None:
            config.update({hp.name: getattr(self, hp.name) for hp in self.rule.hyperparameters})
            config.update({name: getattr(self, name) for name in self.options})
        return config


def _declared_init(cls):
    """``cls.__init__`` from its rule: ``(learning_rate, <hyperparameters>, <options>,
    clip_threshold, clip_mode, name, **kwargs)`` with the rule's defaults, each argument
    checked against its range and kept as an attribute of the same name."""
    rule = cls.rule
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    options = {name: default for name, (default, _) in cls.options.items()}
    defaults = {"learning_rate": rule.learning_rate, **rule.defaults(), **options,
                "clip_threshold": None, "clip_mode": "norm", "name": rule.name}
    signature = inspect.Signature(
        [inspect.Parameter("self", keyword)]
        + [inspect.Parameter(name, keyword, default=value) for name, value in defaults.items()]
        + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])

    def __init__(self, *args, **kwargs):
        arguments = signature.bind(self, *args, **kwargs)
        arguments.apply_defaults()
        values = dict(arguments.arguments)
        extra = values.pop("kwargs")
        for name, value in type(self).fixed.items():
            if name in extra and extra.pop(name) != value:
                raise ValueError(f"{name} is fixed at {value!r} in {type(self).__name__}")
        refusal = rule.base_weight_decay_refusal
        if refusal and extra.get("weight_decay") is not None:
            raise ValueError(f"weight_decay={extra['weight_decay']!r} is not valid for "
                             f"{type(self).__name__}: {refusal}")
        LectureOptimizer.__init__(self, values["learning_rate"], values["clip_threshold"],
                                  values["clip_mode"], name=values["name"], **extra)
        for hp in rule.hyperparameters:
            setattr(self, hp.name, hp.check(values[hp.name]))
        for name in type(self).options:
            setattr(self, name, type(self).check_option(name, values[name]))

    __init__.__signature__ = signature
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = f"{cls.__name__}'s arguments: see the class docstring."
    return __init__


def arguments_table(cls) -> str:
    """The Args section of a declared class's docstring, from its rule."""
    rule = cls.rule
    lines = ["Args:",
             f"    learning_rate: η, default {rule.learning_rate!r}: a number in "
             f"{interval(*LEARNING_RATE.range)}, a ``LearningRateSchedule`` or a callable."]
    for hp in rule.hyperparameters:
        kind = "true or false" if isinstance(hp.default, bool) else f"in {interval(*hp.range)}"
        lines.append(f"    {hp.name}: {hp.doc}; default {hp.default!r}, {kind}.")
    for name, (default, doc) in cls.options.items():
        lines.append(f"    {name}: {doc}; default {default!r}.")
    lines.append("    clip_threshold, clip_mode, **kwargs: see ``LectureOptimizer``.")
    lines.append(f"    name: default {rule.name!r}.")
    return "\n".join(lines)


def as_dtype(value, dtype):
    """``value`` (a Python number or a tensor, e.g. a hyperparameter held in a variable) as
    a tensor of ``dtype``. A Python number goes straight to the dtype: ``ops.cast`` would
    round it to float32 first."""
    if hasattr(value, "dtype"):
        return ops.cast(value, dtype)
    return ops.convert_to_tensor(value, dtype=dtype)


def moving_average(average, new, decay, one_minus_decay):
    """The slides' moving average ``decay * average + (1 - decay) * new``, as written there.

    Not Keras's shorter ``average += (1 - decay) * (new - average)``, which loses a small
    new average to cancellation when ``decay`` is small and ``|new| << |average|``.
    ``one_minus_decay`` is passed in, computed by the caller from the Python number.
    """
    return ops.add(ops.multiply(average, decay), ops.multiply(new, one_minus_decay))


def step_divide(numerator, denominator, guard_zero):
    """``numerator / denominator``, or 0 where the denominator is 0 if ``guard_zero``.

    The adaptive rules divide by ``δ + sqrt(r)``, which is 0 only where δ is 0 (or rounds
    to it) and r = 0, i.e. where every gradient so far was 0 and so is the numerator: the
    step there is 0, the limit. With ``guard_zero=False`` (δ cannot vanish, see
    ``LectureOptimizer._guard_zero``) both forms give the same numbers; the plain division
    is two operations per weight cheaper.
    """
    if guard_zero:
        return ops.divide_no_nan(numerator, denominator)
    return ops.divide(numerator, denominator)


class AdaptiveLectureOptimizer(LectureOptimizer):
    """An optimizer whose per-weight step size the lecture calls the effective learning rate."""

    def effective_learning_rates(self):
        """``η_j = lr / (δ + sqrt(r_j))`` for every weight, one tensor per variable."""
        raise NotImplementedError
