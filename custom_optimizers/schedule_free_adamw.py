"""Schedule-Free AdamW: AdamW's step on z, an online average x, gradients taken at y."""

import numbers

import tensorflow as tf
from keras import ops

from custom_optimizers._base import AdaptiveLectureOptimizer, moving_average, step_divide
from custom_optimizers.rules.schedule_free_adamw import RULE


class ScheduleFreeAdamW(AdaptiveLectureOptimizer, rule=RULE):
    r"""Schedule-Free AdamW: ``z -= lr*(g/(delta + sqrt(r̂)) + lambda*y)``; ``x`` averages z.

    Formula card (Defazio et al. 2024, "The Road Less Scheduled"; the authors'
    ``AdamWScheduleFree`` with r = 0, weight_lr_power = 2, weight decay at y)::

        η(t)   = η t / T_w if t <= T_w, else η          (linear warmup over T_w steps)
        c(t)   = η_max(t)² / Σ_{k<=t} η_max(k)²         η_max(t) = max_{k<=t} η(k)
        r(t)   = β2 r(t-1) + (1 - β2) g(t)²             r(0) = 0, g(t) taken at y(t)
        z(t+1) = z(t) - η(t) (g(t) / (δ + sqrt(r(t)/(1 - β2^t))) + λ y(t))
        x(t+1) = (1 - c(t)) x(t) + c(t) z(t+1)          z(1) = x(1) = y(1) = W(1)
        y(t+1) = β1 x(t+1) + (1 - β1) z(t+1)            (the model's weights)

    * η → ``learning_rate`` (0.0025, the authors' default), β1 → ``beta_1`` (0.9),
      β2 → ``beta_2`` (0.999), δ → ``epsilon`` (1e-8), outside the corrected root, λ →
      ``decoupled_weight_decay`` (0), T_w → ``warmup_steps`` (0: none). Keras's base
      ``weight_decay`` is refused: a decay of y alone would be undone by the next y.
    * No schedule: the average x does what a decaying learning rate would. With a constant
      η, c(t) = 1/t (x is the plain mean of the z's); during warmup the later, larger
      steps weigh more (η_max²).
    * Three sequences: z takes AdamW's step, x averages z, and y, between them, is where the
      gradient is taken; x is where the model is *evaluated*: ``evaluation_point()``. The
      weights hold y; z and x are slots (the authors' production code recovers x from y
      and z, dividing by β1; the slot keeps x exact, and β1 = 0 allowed).
    * y, z and x are written in one kernel (``_run_kernel``); c(t) and η_max live in two
      float64 scalars, updated once per step.
    * Differs from ``keras.optimizers.ScheduleFreeAdamW``, which recovers x from y and z
      *after* moving z (``momentum.value`` aliases the variable), averages with 1/t whatever
      the warmup, decays y before the step and evaluates at y: see docs/formulas.md.
    """

    evaluates_at = "x"
    static_hyperparameters = ("warmup_steps",)  # `if self.warmup_steps > 0`, in Python
    weight_slots = ("z", "x")

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.z, self.x = self.add_optimizer_variables(var_list, ["z", "x"])
        # z and x start at the weights: read now, outside any graph being traced.
        with tf.init_scope():
            for v, z, x in zip(var_list, self.z, self.x):
                z.assign(v)
                x.assign(v)
        self.velocities = self.add_optimizer_variables(var_list, "velocity")
        self._lr_max = self.add_variable((), initializer="zeros", dtype="float64",
                                         aggregation="only_first_replica", name="lr_max")
        self._weight_sum = self.add_variable((), initializer="zeros", dtype="float64",
                                             aggregation="only_first_replica",
                                             name="weight_sum")

    def _scheduled_learning_rate(self, learning_rate, dtype):
        """η(t): the learning rate times the warmup factor, as ``dtype``."""
        return ops.cast(learning_rate, dtype) * self._warmup(self.iterations + 1, dtype)

    def _warmup(self, t, dtype):
        """The authors' factor ``t / T_w`` while ``t - 1 < T_w``, then 1 (t is 1-based)."""
        if not self.warmup_steps > 0:
            return 1.0
        t = ops.cast(t, dtype)
        return ops.where(t - 1.0 < self.warmup_steps, t / self.warmup_steps, 1.0)

    def _averaging_weight(self, learning_rate):
        """(c(t), η_max(t)², in float64) from the scalars as they stand before this step."""
        lr_max = ops.maximum(self._lr_max, self._scheduled_learning_rate(learning_rate,
                                                                         "float64"))
        weight = ops.square(lr_max)
        return ops.divide_no_nan(weight, self._weight_sum + weight), lr_max, weight

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = self._prepare_gradient(gradient, variable)
        i = self._get_variable_index(variable)
        c, _, _ = self._averaging_weight(learning_rate)
        t = ops.cast(self.iterations + 1, dtype)
        inverse_c2 = 1.0 / (1.0 - ops.power(ops.convert_to_tensor(self.beta_2, dtype), t))
        decay = self.decoupled_weight_decay
        self._run_kernel(_schedule_free_kernel, variable,
                         (self.z[i], self.x[i], self.velocities[i]), gradient,
                         self._scheduled_learning_rate(learning_rate, dtype),
                         decay, self.beta_2, 1.0 - self.beta_2,
                         inverse_c2, self.epsilon, ops.cast(c, dtype), self.beta_1,
                         1.0 - self.beta_1,
                         guard_zero=self._guard_zero(self.epsilon, dtype),
                         decays=not (isinstance(decay, numbers.Real) and decay == 0))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        super()._backend_update_step(grads, trainable_variables, learning_rate)
        # Once per step, after every variable has read them: η_max and Σ η_max².
        _, lr_max, weight = self._averaging_weight(learning_rate)
        self.assign(self._lr_max, lr_max)
        self.assign_add(self._weight_sum, weight)

    def evaluation_point(self, variables):
        """x for each of ``variables``, as tensors in the same order (the variables keep y).

        The authors evaluate, test and save the model at x (their ``optimizer.eval()``).
        A variable this optimizer does not update (not built with it) is returned as it is.
        """
        points = []
        for variable in variables:
            try:
                point = self.x[self._get_variable_index(variable)]
            except (KeyError, AttributeError):
                point = variable
            points.append(ops.copy(point))  # a tensor, not a handle on the variable
        return points

    def effective_learning_rates(self):
        """``η(t) / (δ + sqrt(r̂_j))``: the factor z's step scales the gradient by."""
        rates = []
        for r in self.velocities:
            t = ops.maximum(ops.cast(self.iterations, r.dtype), 1.0)
            lr = ops.cast(self._get_current_learning_rate(), r.dtype) * self._warmup(t, r.dtype)
            c2 = 1.0 - ops.power(ops.convert_to_tensor(self.beta_2, r.dtype), t)
            rates.append(lr / (ops.sqrt(r / c2) + self.epsilon))
        return rates


def _schedule_free_kernel(y, z, x, r, g, lr, decay, b2, one_minus_b2, inverse_c2, delta, c, b1,
                          one_minus_b1, guard_zero, decays):
    """One Schedule-Free AdamW update of ``y`` and its slots (see ``ScheduleFreeAdamW``).

    ``decays``: False where λ is the Python number 0, whose term ``λ y`` is left out: the
    same numbers (``+ 0·y`` adds nothing to a finite step) without a read of y (with XLA:
    52 compiled bytes per parameter instead of 56).
    """
    r.assign(moving_average(r, ops.square(g), b2, one_minus_b2))
    normalized = step_divide(g, ops.add(ops.sqrt(ops.multiply(r, inverse_c2)), delta),
                             guard_zero)
    if decays:
        normalized = ops.add(normalized, ops.multiply(y, decay))
    z.assign(ops.subtract(z, ops.multiply(normalized, lr)))
    x.assign(moving_average(x, z, ops.subtract(1.0, c), c))
    y.assign(moving_average(x, z, b1, one_minus_b1))
