"""AdamW (Loshchilov & Hutter 2019): decoupled weight decay, then the lecture's Adam."""

from custom_optimizers.rules._reference import Reference
from custom_optimizers.rules._rule import Hyperparameter, KerasTwin, Rule, decay, epsilon
from custom_optimizers.rules.adam import Adam, keras_effective_learning_rates

# λ of the three rules with a decoupled weight decay (AdamW, Schedule-Free AdamW, Muon).
# Not Keras's base ``weight_decay`` (every rule's pass-through, applied before the rule).
WEIGHT_DECAY_NAME = "decoupled_weight_decay"


def weight_decay(default, doc="λ, the decoupled weight decay: W <- W(1 - ηλ) each step"):
    return Hyperparameter(WEIGHT_DECAY_NAME, default, 0.0, None, False, False, doc)


def base_weight_decay_refusal(hp, class_name):
    """Why a Keras twin whose own ``weight_decay`` carries λ cannot also take Keras's base
    ``weight_decay`` pass-through, or None."""
    if hp.get("weight_decay") not in (None, 0, 0.0):
        return (f"optimizer.weight_decay={hp['weight_decay']!r} has no Keras counterpart here: "
                f"keras.optimizers.{class_name} has one weight decay, which carries "
                f"optimizer.{WEIGHT_DECAY_NAME}; set that instead")
    return None


class AdamW(Reference):
    state_names = ("v", "r")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, decoupled_weight_decay, **kw):
        super().__init__(learning_rate, **kw)
        self.adam = Adam(learning_rate, beta_1, beta_2, epsilon)
        self.decay = decoupled_weight_decay

    def _update(self, i, w, g):
        # torch.optim.AdamW: param.mul_(1 - lr*weight_decay), then Adam's step.
        self.adam.state, self.adam.t = self.state, self.t
        return self.adam._update(i, w * (1 - self.lr * self.decay), g)

    def effective_learning_rates(self):
        self.adam.state, self.adam.t = self.state, self.t
        return self.adam.effective_learning_rates()


RULE = Rule(
    name="adamw",
    title="AdamW",
    order=90,
    reference=AdamW,
    learning_rate=0.001,
    hyperparameters=(
        decay("beta_1", 0.9, "ρ1, the decay of the first-moment average"),
        decay("beta_2", 0.999, "ρ2, the decay of the second-moment average"),
        epsilon("δ, outside the root of the corrected second moment"),
        weight_decay(0.01),
    ),
    adaptive=True,
    keras=KerasTwin(
        "AdamW", exact=False,
        arguments=lambda hp: {"learning_rate": float(hp["learning_rate"]),
                              "weight_decay": float(hp[WEIGHT_DECAY_NAME]),
                              "beta_1": float(hp["beta_1"]), "beta_2": float(hp["beta_2"]),
                              "epsilon": float(hp["epsilon"])},
        refusal=lambda hp: base_weight_decay_refusal(hp, "AdamW"),
        note="keras.optimizers.AdamW(η, weight_decay=λ, ρ1, ρ2, epsilon=δ): the same decay "
             "W -= ηλW first; Keras adds its 'epsilon hat' to the uncorrected sqrt(r), as its "
             "Adam does, equal to the lecture's δ only as δ -> 0",
        equal_when={"epsilon": 0.0},
        effective_learning_rates=keras_effective_learning_rates,
    ),
)
