"""What one benchmark trial costs beside its training steps.

Usage::

    python -m speed.benchmark_trial [--workload digits_mlp] [--optimizer sgd]
                                         [--budget 0.5] [--trials 8] [--repeats 5]

Times, side by side and interleaved over ``--repeats`` rounds, on the smoke preset's
step budget (``--budget`` x the workload's steps):

* ``bare loop``: the same steps of the same model and optimizer in one compiled call
  (``tf.function`` over a ``tf.range`` loop of gather, forward, gradient, update), no
  evaluation: the baseline;
* ``trial``: ``experiments.benchmark.engine.Engine.run`` (hyperparameters assigned, weights
  and slots reset, training in evaluation-period chunks, every evaluation), per trial, the
  initial weights of its seed already built (as for every rule after the first on a
  workload);
* ``trial, new seed``: the same, building the seed's initial weights inside the trial.

Reported: median seconds per trial and the median per-round ratio to the bare loop with
its 95 % bootstrap interval. Tracing happens once, before timing, in both.
"""

from __future__ import annotations

import argparse
import statistics
import time

from speed.optimizer_step import median_interval
from experiments.core import markdown


def _bare_loop(engine, spec):
    """A compiled loop of ``spec.steps`` steps of the engine's model and a fresh optimizer."""
    import tensorflow as tf

    from experiments.curvature import per_example_loss
    from experiments.core.optim import build_optimizer

    model, variables = engine.model, engine.variables
    opt = build_optimizer(spec.optimizer.config(spec.hp))
    opt.build(variables)
    x_all, y_all = engine.x, engine.y

    @tf.function
    def run(idx):
        for k in tf.range(tf.shape(idx)[0]):
            x, y = tf.gather(x_all, idx[k]), tf.gather(y_all, idx[k])
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(per_example_loss("cross_entropy", y,
                                                       model(x, training=True)))
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return run


def measure(workload: str = "digits_mlp", optimizer: str = "sgd", budget: float = 0.5,
            trials: int = 8, repeats: int = 5) -> list[tuple]:
    """Rows (name, median seconds per trial, ratio, ci low, ci high, min, max)."""
    import numpy as np

    from experiments.benchmark import trials as trials_module
    from experiments.benchmark.engine import Engine
    from experiments.benchmark.trials import DataCache, batch_indices, plan_trials
    from experiments.benchmark.workloads import load_workload, select_optimizers

    w = load_workload(workload)
    w.target = None  # every trial runs its whole budget
    specs = plan_trials([w], select_optimizers([optimizer]), "tuned", trials=trials,
                        studies=1, seed=0, budget=budget)
    data = DataCache()
    engine = Engine(w, specs[0].optimizer, data.get(w), [s.hp for s in specs])
    idx, _ = batch_indices(len(data.get(w).x_train), w.batch_size, 0, specs[0].steps)
    full = np.stack([i for i in idx if i.any()] or [idx[0]])[:specs[0].steps]
    bare = _bare_loop(engine, specs[0])
    bare(full).numpy()  # trace
    for s in specs:
        engine.run(s)  # trace and build every seed's weights once
    times = {"bare loop": [], "trial": [], "trial, new seed": []}
    for _ in range(repeats):
        start = time.perf_counter()
        bare(full).numpy()
        times["bare loop"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for s in specs:
            engine.run(s)
        times["trial"].append((time.perf_counter() - start) / len(specs))
        trials_module.forget_initial_weights()
        start = time.perf_counter()
        for s in specs:
            engine.run(s)
        times["trial, new seed"].append((time.perf_counter() - start) / len(specs))
    rows = []
    for name, values in times.items():
        ratios = [v / b for v, b in zip(values, times["bare loop"])]
        med = statistics.median(ratios)
        low, high = median_interval(ratios)
        rows.append((name, statistics.median(values), med, low, high, min(ratios),
                     max(ratios)))
    return rows


def table(rows) -> str:
    body = [[name, f"{sec * 1000:.1f}", f"{ratio:.2f}", f"[{lo:.2f}, {hi:.2f}]",
             f"{mn:.2f}–{mx:.2f}"] for name, sec, ratio, lo, hi, mn, mx in rows]
    return markdown.table(["path", "ms per trial (median)", "× bare loop (median)",
                           "95 % CI", "min–max"], body)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="digits_mlp")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = measure(args.workload, args.optimizer, args.budget, args.trials, args.repeats)
    print(table(rows))


if __name__ == "__main__":
    main()
