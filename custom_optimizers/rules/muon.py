"""Muon (Jordan et al. 2024; Moonlight scaling, Liu et al. 2025): orthogonalised momentum
for 2-D weights, AdamW for every other variable."""

import numpy as np

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import Hyperparameter, KerasTwin, Rule, decay, epsilon
from custom_optimizers.rules.adamw import (WEIGHT_DECAY_NAME, AdamW, base_weight_decay_refusal,
                                           weight_decay)
from custom_optimizers.rules.momentum import MOMENTUM

# Keller Jordan's quintic Newton–Schulz coefficients and step count (torch.optim.Muon's too).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NS_EPSILON = 1e-7


def newton_schulz(m, rounding=None):
    """torch.optim.Muon's ``_zeropower_via_newtonschulz``: ``m`` scaled to Frobenius norm
    1, then 5 steps ``X <- aX + (bA + cA²)X``, ``A = XXᵀ``, on the wide orientation.
    ``rounding`` (e.g. to bfloat16) is applied after each operation, as torch computes in
    bfloat16; None: the dtype of ``m``."""
    r = rounding or (lambda v: v)
    a, b, c = NS_COEFFICIENTS
    x = r(m)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = r(x / max(np.sqrt(np.sum(np.square(x.astype(np.float64)))), NS_EPSILON))
    for _ in range(NS_STEPS):
        gram = r(x @ x.T)
        x = r(a * x + r(b * gram + c * (gram @ gram)) @ x)
    return x.T if tall else x


def update_scale(shape, match_rms_adamw):
    """torch's ``adjust_lr_fn``: ``"match_rms_adamw"`` 0.2·sqrt(max(A, B)) (Moonlight), or
    ``"original"`` sqrt(max(1, A/B)) (Jordan's)."""
    rows, cols = shape
    return 0.2 * np.sqrt(max(rows, cols)) if match_rms_adamw else np.sqrt(max(1.0, rows / cols))


class Muon(Reference):
    """torch.optim.Muon on the 2-D arrays (Newton–Schulz in the arrays' dtype unless
    ``rounding`` is set), torch.optim.AdamW (``AdamW`` here) on the others."""

    state_names = ("m", "r")
    rounding = None

    def __init__(self, learning_rate, momentum, nesterov, match_rms_adamw, beta_1, beta_2,
                 epsilon, decoupled_weight_decay, **kw):
        super().__init__(learning_rate, **kw)
        self.mu, self.nesterov, self.match_rms_adamw = momentum, nesterov, match_rms_adamw
        self.decay = decoupled_weight_decay
        self.adamw = AdamW(learning_rate, beta_1, beta_2, epsilon, decoupled_weight_decay)

    @staticmethod
    def slot_names(shape):
        """The state a variable of ``shape`` has: momentum, and r on the AdamW path."""
        return ("m",) if len(shape) == 2 else ("m", "r")

    def _update(self, i, w, g):
        if w.ndim != 2:  # AdamW: m is its first moment
            self.adamw.state = {"v": self.state["m"], "r": self.state["r"]}
            self.adamw.t = self.t
            return self.adamw._update(i, w, g)
        m = self.state["m"][i] = self.mu * self.state["m"][i] + (1 - self.mu) * g
        update = (1 - self.mu) * g + self.mu * m if self.nesterov else m
        o = newton_schulz(update, self.rounding).astype(w.dtype)
        w = w * (1 - self.lr * self.decay)
        return w - self.lr * update_scale(w.shape, self.match_rms_adamw) * o


def _keras_refusal(hp):
    if not hp["match_rms_adamw"]:
        return ("optimizer.match_rms_adamw=false has no Keras counterpart: keras.optimizers.Muon "
                "scales by rms_rate*sqrt(max(A, B)) only; use optimizer=muon (the custom Muon)")
    return base_weight_decay_refusal(hp, "Muon")


RULE = Rule(
    name="muon",
    title="Muon",
    order=110,
    reference=Muon,
    learning_rate=0.001,
    hyperparameters=(
        decay(MOMENTUM.name, 0.95, "μ, the decay of the momentum of the 2-D weights"),
        Hyperparameter("nesterov", True, doc="orthogonalise (1-μ) g + μ m instead of m"),
        Hyperparameter("match_rms_adamw", True,
                       doc="scale the update by 0.2 sqrt(max(A, B)) (Moonlight); false: "
                           "sqrt(max(1, A/B)) (Jordan's original)"),
        decay("beta_1", 0.9, "ρ1 of the AdamW path"),
        decay("beta_2", 0.999, "ρ2 of the AdamW path"),
        epsilon("δ of the AdamW path, outside the root of the corrected second moment"),
        weight_decay(0.1),
    ),
    adaptive=False,
    keras=KerasTwin(
        "Muon", exact=False,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "momentum": float(hp["momentum"]),
                              "nesterov": bool(hp["nesterov"]), "rms_rate": 0.2,
                              "adam_beta_1": float(hp["beta_1"]),
                              "adam_beta_2": float(hp["beta_2"]),
                              "epsilon": float(hp["epsilon"]),
                              "weight_decay": float(hp[WEIGHT_DECAY_NAME]),
                              "adam_weight_decay": float(hp[WEIGHT_DECAY_NAME]),
                              "exclude_layers": ["logits"]},
        refusal=_keras_refusal,
        note="keras.optimizers.Muon(η, momentum=μ, rms_rate=0.2, adam_beta_1=ρ1, ...): the same "
             "Muon step (its momentum is the EMA's 1/(1-μ) multiple, which Newton–Schulz "
             "normalises away); its AdamW path adds 'epsilon hat' to the uncorrected sqrt(r)",
        equal_when={"epsilon": 0.0},
        # Its lr_adjust multiplies the update by a float32 sqrt: a TypeError on float64.
        dtypes=("float32",),
    ),
)
