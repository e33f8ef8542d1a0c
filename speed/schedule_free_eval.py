"""What evaluating Schedule-Free AdamW at y instead of x costs, on one workload.

Usage::

    python -m speed.schedule_free_eval [--seeds 5] [--epochs 5] [--dataset digits]
                                            [--model mlp] [--warmup-steps 0]

Each seed trains ``optimizer=schedule_free_adamw`` at its defaults (η = 0.0025) with the
project's trainer, then evaluates the same trained state twice: at x (the average, where
the authors and this project's trainer evaluate) and at y (the weights the gradients are
taken at, where keras.optimizers.ScheduleFreeAdamW leaves the model). Reported: the mean
over seeds of the test loss and accuracy at each point, and of the per-seed difference
y - x, with a 95% t-interval (the seeds are independent).
"""

from __future__ import annotations

import argparse
import math
import statistics



# Student's t 0.975 quantiles by degrees of freedom (seeds - 1): the 95% interval of a mean.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262}
MAX_SEEDS = 10


def _interval(values):
    """(mean, half-width of the 95% t-interval) of 2 to 10 independent ``values``."""
    mean = statistics.fmean(values)
    return mean, T_975[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))


def measure(seeds=5, epochs=5, dataset="digits", model="mlp", warmup_steps=0, batch_size=32):
    """Per seed: (test loss at x, accuracy at x, test loss at y, accuracy at y)."""
    import keras

    from custom_optimizers import ScheduleFreeAdamW
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.train.trainer import Trainer, fit

    splits = load_dataset(dataset)
    rows = []
    for seed in range(seeds):
        keras.utils.set_random_seed(seed)
        net = build_model(model, splits.input_shape, splits.num_classes)
        optimizer = ScheduleFreeAdamW(warmup_steps=warmup_steps)
        trainer = Trainer(net, optimizer, splits.x_train, splits.y_train)
        history = fit(trainer, splits, epochs=epochs, batch_size=batch_size, seed=seed)
        at_x = history.final["test_loss"], history.final["test_accuracy"]
        at_y = _evaluate_at_y(trainer, splits)
        rows.append((*at_x, *at_y))
        print(f"seed {seed}: test loss x {at_x[0]:.4f} y {at_y[0]:.4f}, accuracy x "
              f"{at_x[1]:.4f} y {at_y[1]:.4f}", flush=True)
    return rows


def _evaluate_at_y(trainer, splits):
    """The trainer's evaluation with the weights as they are (y)."""
    import numpy as np
    import tensorflow as tf

    from experiments.train.trainer import EVAL_BATCH

    x, y = splits.x_test, splits.y_test
    total = np.zeros(2)
    for i in range(0, len(x), EVAL_BATCH):
        total += trainer._eval(tf.constant(x[i:i + EVAL_BATCH]),
                               tf.constant(y[i:i + EVAL_BATCH])).numpy()
    return total[0] / len(x), total[1] / len(x)


def table(rows) -> str:
    columns = list(zip(*rows))
    out = ["| test | at x | at y | y - x (95% CI over seeds) |", "|---|---|---|---|"]
    for label, ix, iy in (("loss", 0, 2), ("accuracy", 1, 3)):
        mx, my = statistics.fmean(columns[ix]), statistics.fmean(columns[iy])
        diff, half = _interval([b - a for a, b in zip(columns[ix], columns[iy])])
        out.append(f"| {label} | {mx:.4f} | {my:.4f} | {diff:+.4f} ± {half:.4f} |")
    return "\n".join(out)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m speed.schedule_free_eval",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--warmup-steps", type=int, default=0)
    args = parser.parse_args(argv)
    if not 2 <= args.seeds <= MAX_SEEDS or args.epochs < 1 or args.warmup_steps < 0:
        parser.error(f"seeds must be in [2, {MAX_SEEDS}], epochs positive, warmup steps "
                     "non-negative")
    rows = measure(args.seeds, args.epochs, args.dataset, args.model, args.warmup_steps)
    text = (f"Schedule-Free AdamW (η = 0.0025, warmup {args.warmup_steps}) on {args.dataset}/"
            f"{args.model}, {args.epochs} epochs of batch 32, {args.seeds} seeds:\n\n"
            + table(rows))
    print(text)
    return text


if __name__ == "__main__":
    main()
