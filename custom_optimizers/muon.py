"""Muon: orthogonalised Nesterov momentum for 2-D weights, AdamW for the rest."""

import re

from keras import ops

from custom_optimizers._base import LectureOptimizer, as_dtype, moving_average
from custom_optimizers.adam import adam_step
from custom_optimizers.adamw import decoupled_decay
from custom_optimizers.rules.muon import (NS_COEFFICIENTS, NS_EPSILON, NS_STEPS, RULE,
                                          update_scale)


class Muon(LectureOptimizer, rule=RULE):
    r"""Muon: ``W <- W(1 - lr*lambda) - lr * s * NS5((1-mu) g + mu m)`` on 2-D weights.

    Formula card (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; the update
    scale of Liu et al. 2025, "Muon is scalable for LLM training"; ``torch.optim.Muon``)::

        m(t)   = μ m(t-1) + (1 - μ) g(t)                m(0) = 0
        u(t)   = (1 - μ) g(t) + μ m(t)                  (Nesterov; without: u = m)
        X      = u / max(||u||_F, 1e-7),  5 times:  A = X Xᵀ,  X <- a X + (b A + c A²) X
        W(t+1) = W(t) (1 - η λ) - η s X                 s = 0.2 sqrt(max(A, B))

    * (a, b, c) = (3.4445, -4.7750, 2.0315): X Xᵀ is taken on the wide side (A <= B after
      a transpose). The iteration pushes every singular value of u towards ~1 (between 0.7
      and 1.2): the step is u's "direction" as a matrix, its scale is set by s alone.
    * η → ``learning_rate`` (0.001), μ → ``momentum`` (0.95), ``nesterov`` (True), λ →
      ``decoupled_weight_decay`` (0.1, torch's), s: ``match_rms_adamw=True`` (Moonlight:
      an update of AdamW's RMS, so AdamW's η and λ carry over) or False, Jordan's original
      ``sqrt(max(1, A/B))``.
    * Every variable that is not a 2-D weight — biases, 1-D and >2-D weights (convolution
      kernels), embeddings (``exclude_embeddings``) and the layers named in
      ``exclude_layers`` (default: ``logits``, this project's output layer) — takes the
      AdamW step instead (``AdamW``: ρ1 → ``beta_1``, ρ2 → ``beta_2``, δ → ``epsilon``, the
      same η and λ). ``update_paths()`` says which variable took which.
    * Newton–Schulz runs in the variable's dtype. torch.optim.Muon runs it in bfloat16
      (as Jordan's code, for GPU speed): that rounding alone puts torch ~0.5% of the
      distance travelled away from this rule and from ``keras.optimizers.Muon`` after 60
      float32 steps (docs/formulas.md).
    """

    options = {
        "exclude_layers": (("logits",), "regular expressions; a variable whose path matches "
                                        "one takes AdamW"),
        "exclude_embeddings": (True, "a variable whose path contains \"embedding\" takes AdamW"),
    }

    @classmethod
    def check_option(cls, name, value):
        if name == "exclude_layers":
            return list(value or ())
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value

    def uses_adamw(self, variable):
        """Whether ``variable`` takes the AdamW step (see the class docstring)."""
        if len(variable.shape) != 2:
            return True
        path = getattr(variable, "path", variable.name)
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(pattern, path) for pattern in self.exclude_layers)

    def parameter_groups(self):
        return self.update_paths()

    def update_paths(self):
        """``{"muon": [paths], "adamw": [paths]}`` of the variables this optimizer updates."""
        paths = {"muon": [], "adamw": []}
        for variable in self._trainable_variables:
            paths["adamw" if self.uses_adamw(variable) else "muon"].append(variable.path)
        return paths

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = self.add_optimizer_variables(var_list, "momentum")
        # The second moment only where AdamW runs: Muon keeps one slot per weight.
        self.velocities = [
            self.add_variable_from_reference(v, "velocity") if self.uses_adamw(v) else None
            for v in var_list]

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = self._prepare_gradient(gradient, variable)
        i = self._get_variable_index(variable)
        m, r = self.momentums[i], self.velocities[i]
        decoupled_decay(self, variable, lr)
        if r is not None:
            adam_step(self, variable, (m, r), gradient, lr)  # AdamW: Adam after the decay
            return
        # in the variable's dtype also when μ is held in a (float64) variable: Newton-Schulz
        # then runs in that dtype, as it does with a Python μ
        mu, one_minus_mu = (as_dtype(x, variable.dtype) for x in
                            (self.momentum, 1.0 - self.momentum))
        self.assign(m, moving_average(m, gradient, mu, one_minus_mu))
        update = moving_average(m, gradient, mu, one_minus_mu) if self.nesterov else m
        scale = update_scale(tuple(variable.shape), self.match_rms_adamw)
        self.assign_sub(variable, ops.multiply(newton_schulz(update), lr * scale))


def newton_schulz(u):
    """torch.optim.Muon's ``_zeropower_via_newtonschulz`` in ``u``'s dtype (see ``Muon``)."""
    a, b, c = NS_COEFFICIENTS
    tall = u.shape[0] > u.shape[1]
    x = ops.transpose(u) if tall else u
    x = x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), NS_EPSILON)
    for _ in range(NS_STEPS):
        gram = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    return ops.transpose(x) if tall else x
