"""Training throughput: plain ``model.fit`` against the product's full path.

Usage::

    python -m benchmarks.training [--epochs 5] [--repeats 5]

On the default experiment (the MLP of ``conf/model/mlp.yaml`` on digits, batch 32) it
measures samples per second of

* ``fit``: plain ``model.fit`` with Keras's built-in Adam, no tracking (the baseline);
* ``product, no tracking``: ``experiments.trainer`` with the custom Adam and its per-step
  diagnostics (loss, global and per-layer gradient norms, weight norm, effective learning
  rate), nothing logged;
* ``product, tracked``: the same, every step's metrics sent to MLflow (a fresh SQLite store
  in a temporary folder) and a checkpoint per epoch, as ``python -m experiments.train``
  does by default.

Each variant is built and warmed up (one epoch, so tracing is not timed), then the three
are timed interleaved over ``--repeats`` rounds of ``--epochs`` epochs; reported are
median samples/s and the median per-round ratio to ``fit`` with its min–max.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

BATCH = 32


def _config():
    from hydra import compose, initialize_config_dir

    import experiments.train  # noqa: F401  (registers the schemas)
    from experiments.tracking import PROJECT_ROOT

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("train")


def _variants(tmp: Path):
    """name -> callable(epochs) that trains that many more epochs."""
    import keras
    from omegaconf import OmegaConf

    from experiments import resume, tracking
    from experiments.pipeline import TrackedHooks
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Progress, Trainer, fit

    cfg = _config()
    data = OmegaConf.to_container(cfg.dataset)
    splits = load_dataset(data.pop("name"), **data)
    model_params = OmegaConf.to_container(cfg.model)
    model_name = model_params.pop("name")
    hp = OmegaConf.to_container(cfg.optimizer)

    def model():
        keras.utils.set_random_seed(0)
        return build_model(model_name, splits.input_shape, splits.num_classes, **model_params)

    plain = model()
    plain.compile(optimizer=build_optimizer({**hp, "implementation": "keras"}),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def run_fit(epochs):
        plain.fit(splits.x_train, splits.y_train, batch_size=BATCH, epochs=epochs, verbose=0)

    def product(tracked: bool):
        net = model()
        trainer = Trainer(net, build_optimizer(hp), splits.x_train, splits.y_train)
        state = {"progress": Progress(), "epochs": 0}
        hooks, logger = {}, None
        if tracked:
            uri = f"sqlite:///{tmp / 'mlflow.db'}"
            tracking.probe_store(uri)
            logger = tracking.RunLogger.start(uri, "benchmark", "training")
            hooks = TrackedHooks(logger, net, resume.checkpoint_dir(uri, logger.run_id),
                                 cfg.trainer.checkpoint_every_s).as_fit_kwargs()

        def go(epochs):
            state["epochs"] += epochs
            fit(trainer, splits, epochs=state["epochs"], batch_size=BATCH, seed=0,
                steps_per_execution=cfg.trainer.steps_per_execution,
                log_every_n_steps=cfg.tracking.log_every_n_steps,
                progress=state["progress"], **hooks)
            if logger:
                logger.wait()  # the time includes storing every metric
        return go

    return splits, {"fit": run_fit, "product, no tracking": product(False),
                    "product, tracked": product(True)}


def measure(epochs: int = 5, repeats: int = 5):
    """Rows: (variant, median samples/s, median ratio to fit, min ratio, max ratio)."""
    with tempfile.TemporaryDirectory() as tmp:
        splits, variants = _variants(Path(tmp))
        for go in variants.values():  # warm-up: traces and first epoch
            go(1)
        rates = {name: [] for name in variants}
        for r in range(repeats):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                start = time.perf_counter()
                variants[name](epochs)
                rates[name].append(epochs * len(splits.x_train) / (time.perf_counter() - start))
    rows = []
    for name, values in rates.items():
        ratios = [v / f for v, f in zip(values, rates["fit"])]
        rows.append((name, statistics.median(values), statistics.median(ratios),
                     min(ratios), max(ratios)))
    return rows


def table(rows) -> str:
    lines = ["| path | samples/s (median) | ratio to fit (median) | ratio min–max |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {v:,.0f} | {r:.2f} | {lo:.2f}–{hi:.2f} |" for n, v, r, lo, hi in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    out = table(measure(args.epochs, args.repeats))
    print(out)
    return out


if __name__ == "__main__":
    main()
