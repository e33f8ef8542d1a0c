"""Schedule-Free AdamW (Defazio et al. 2024): AdamW's step on z, an average x, gradients at y."""

import numpy as np

from custom_optimizers.rules._reference import Reference, clip
from custom_optimizers.rules._rule import Hyperparameter, KerasTwin, Rule, decay, epsilon
from custom_optimizers.rules.adamw import WEIGHT_DECAY_NAME, base_weight_decay_refusal, weight_decay


WEIGHT_DECAY_REFUSAL = ("Keras's decay of the weights y alone is undone by y = β1 x + (1-β1) z; "
                        "use decoupled_weight_decay (taken at y, applied to z)")


class ScheduleFreeAdamW(Reference):
    """``AdamWScheduleFree`` of facebookresearch/schedule_free (its explicit-x, y, z
    reference, ``adamw_schedulefree_reference.py``) with r = 0, weight_lr_power = 2 and
    weight decay at y. ``step`` returns y (where the gradients are taken); ``x`` holds
    the evaluation point."""

    state_names = ("z", "x", "r")
    scalar_state_names = ("lr_max", "weight_sum")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, decoupled_weight_decay,
                 warmup_steps, **kw):
        super().__init__(learning_rate, **kw)
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        self.decay, self.warmup = decoupled_weight_decay, warmup_steps
        self.lr_max, self.weight_sum = -1.0, 0.0

    def step(self, params, grads):
        params = [np.asarray(p) for p in params]
        if self.state is None:  # z and x start at the initial weights, r at 0
            self.state = {"z": [p.copy() for p in params], "x": [p.copy() for p in params],
                          "r": [np.zeros_like(p) for p in params]}
        k = self.t  # the authors' 0-based k
        self.t += 1
        sched = (k + 1) / self.warmup if k < self.warmup else 1.0
        self.scheduled_lr = lr = self.lr * sched
        self.lr_max = max(lr, self.lr_max)
        weight = self.lr_max ** 2  # ((k+1)**r) * lr_max**weight_lr_power, r = 0, power 2
        self.weight_sum += weight
        c = weight / self.weight_sum if self.weight_sum else 0.0
        bias_correction2 = 1 - self.b2 ** (k + 1)
        out = []
        for i, (y, g) in enumerate(zip(params, grads)):
            g = clip(np.asarray(g, dtype=y.dtype), self.clip_threshold, self.clip_mode)
            z, x, r = self.state["z"][i], self.state["x"][i], self.state["r"][i]
            z = z - lr * self.decay * y  # weight decay at y
            r = self.state["r"][i] = self.b2 * r + (1 - self.b2) * g * g
            z = self.state["z"][i] = z - lr * g / (np.sqrt(r / bias_correction2) + self.eps)
            x = self.state["x"][i] = (1 - c) * x + c * z
            out.append(self.b1 * x + (1 - self.b1) * z)
        return out

    def evaluation_point(self):
        """x, the average the authors evaluate at (their ``optimizer.eval()``)."""
        return [x.copy() for x in self.state["x"]]

    def effective_learning_rates(self):
        c2 = 1 - self.b2 ** self.t
        return [self.scheduled_lr / (self.eps + np.sqrt(r / c2)) for r in self.state["r"]]


def _keras_effective_learning_rates(optimizer):
    """keras.optimizers.ScheduleFreeAdamW's ``lr_t / (sqrt(v/(1-b2^t)) + eps)``."""
    from keras import ops

    lr = optimizer._get_current_learning_rate()
    out = []
    for v in optimizer._velocities:
        t = ops.maximum(ops.cast(optimizer.iterations, v.dtype), 1.0)
        lr_t = ops.cast(lr, v.dtype)
        if optimizer.warmup_steps > 0:  # Keras's min(t/T_w, 1)
            lr_t = lr_t * ops.minimum(t / optimizer.warmup_steps, 1.0)
        c2 = 1.0 - ops.power(ops.convert_to_tensor(optimizer.beta_2, v.dtype), t)
        out.append(lr_t / (ops.sqrt(v / c2) + optimizer.epsilon))
    return out


RULE = Rule(
    name="schedule_free_adamw",
    title="Schedule-Free AdamW",
    order=100,
    reference=ScheduleFreeAdamW,
    learning_rate=0.0025,
    hyperparameters=(
        decay("beta_1", 0.9, "β1, the weight of the average x in y = β1 x + (1-β1) z"),
        decay("beta_2", 0.999, "β2, the decay of the second-moment average"),
        epsilon("δ, outside the root of the corrected second moment", default=1e-8),
        weight_decay(0.0, "λ, weight decay taken at y: z -= ηλ y each step"),
        Hyperparameter("warmup_steps", 0, 0.0, None, False, False,
                       "linear warmup of η over this many steps (0: none)"),
    ),
    adaptive=True,
    keras=KerasTwin(
        "ScheduleFreeAdamW", exact=False,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "beta_1": float(hp["beta_1"]), "beta_2": float(hp["beta_2"]),
                              "epsilon": float(hp["epsilon"]),
                              "warmup_steps": float(hp["warmup_steps"]),
                              "weight_decay": float(hp[WEIGHT_DECAY_NAME]) or None},
        refusal=lambda hp: base_weight_decay_refusal(hp, "ScheduleFreeAdamW"),
        note="keras.optimizers.ScheduleFreeAdamW(η, β1, β2, epsilon=δ, warmup_steps, "
             "weight_decay=λ): Keras recovers x from y and z after z has already moved "
             "(momentum.value aliases the variable), averages with 1/t instead of the "
             "warmup-weighted lr_max², decays y before the step instead of z at y, and "
             "evaluates at y (it has no x): ~10% of the distance travelled apart after 120 "
             "steps, for every setting",
        equal_when=None,
        effective_learning_rates=_keras_effective_learning_rates,
    ),
    base_weight_decay_refusal=WEIGHT_DECAY_REFUSAL,
)
