"""Training throughput: Keras's ``model.fit`` against the product's full path.

Usage::

    python -m speed.training [--epochs 5] [--repeats 5] [OVERRIDE ...]

On the default experiment (the MLP of ``conf/model/mlp.yaml`` on digits, batch 32), or
the one Hydra overrides such as ``dataset=mnist1d model=mnist1d_cnn`` select, it measures
samples per second of

* ``fit``: plain ``model.fit`` with Keras's built-in twin of the optimizer, no tracking;
* ``fit, equal settings``: the same with the product's ``steps_per_execution`` and
  ``jit_compile`` (``trainer.*``): the baseline the ratios are taken to;
* ``product, no tracking``: ``experiments.train.trainer`` with the lecture's optimizer and its
  per-step diagnostics (loss, global and per-layer gradient norms, weight norm, effective
  learning rate), nothing logged;
* ``product, no tracking, jit_compile=<the other value>``: the same with XLA switched;
* ``product, tracked``: the same, every ``tracking.log_every_n_steps``-th step's metrics
  stored in MLflow (a fresh SQLite store in a temporary folder) and checkpoints as
  ``trainer.checkpoint_every_s`` says, as ``python -m experiments.train`` does by default.

The process runs as the product does (``trainer.seed``, op determinism if
``trainer.deterministic``). Each variant is built and warmed up (one epoch, so tracing is
not timed), then all are timed interleaved over ``--repeats`` rounds of ``--epochs``
epochs; reported are median samples/s and the median per-round ratio to the equal-settings
``fit`` (and of tracked to untracked) with its 95% bootstrap interval and min–max.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from speed.optimizer_step import median_interval
from experiments.core import markdown

BATCH = 32
REPEATS = 9


def _config(overrides=()):
    from hydra import compose, initialize_config_dir

    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()
    from experiments.train.config import validate
    from experiments.core.tracking import PROJECT_ROOT

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    validate(cfg)
    return cfg


FIT, FIT_EQUAL, PRODUCT, TRACKED = ("fit", "fit, equal settings", "product, no tracking",
                                    "product, tracked")


def _variants(tmp: Path, overrides=()):
    """(splits, batch size, name -> callable(epochs) that trains that many more epochs)."""
    import keras
    from omegaconf import OmegaConf

    from experiments.core import resume, tracking
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.core.optim import build_optimizer
    from experiments.train.records import TrackedHooks
    from experiments.train.runtime import seed_everything
    from experiments.train.trainer import Trainer, TrainingState, fit

    cfg = _config(overrides)
    t = cfg.trainer
    seed_everything(t.seed, t.deterministic)
    data = OmegaConf.to_container(cfg.dataset)
    splits = load_dataset(data.pop("name"), **data)
    model_params = OmegaConf.to_container(cfg.model)
    model_name = model_params.pop("name")
    hp = OmegaConf.to_container(cfg.optimizer)

    def model():
        keras.utils.set_random_seed(t.seed)
        return build_model(model_name, splits.input_shape, splits.num_classes, **model_params)

    def keras_fit(**compile_args):
        net = model()
        net.compile(optimizer=build_optimizer({**hp, "implementation": "keras"}),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    **compile_args)

        def go(epochs):
            net.fit(splits.x_train, splits.y_train, batch_size=t.batch_size, epochs=epochs,
                    verbose=0)
        return go

    def product(tracked: bool, jit_compile: bool):
        net = model()
        trainer = Trainer(net, build_optimizer(hp), splits.x_train, splits.y_train,
                          jit_compile=jit_compile)
        state = {"progress": TrainingState(), "epochs": 0}
        hooks, logger = {}, None
        if tracked:
            uri = f"sqlite:///{tmp / 'mlflow.db'}"
            tracking.probe_store(uri)
            logger = tracking.RunLogger.start(uri, "benchmark", "training")
            hooks = TrackedHooks(logger, net, resume.checkpoint_dir(uri, logger.run_id),
                                 t.checkpoint_every_s).as_fit_kwargs()

        def go(epochs):
            state["epochs"] += epochs
            fit(trainer, splits, epochs=state["epochs"], batch_size=t.batch_size, seed=t.seed,
                steps_per_execution=t.steps_per_execution,
                log_every_n_steps=cfg.tracking.log_every_n_steps,
                progress=state["progress"], **hooks)
            if logger:
                logger.wait()  # the time includes storing every metric
        return go

    other = not t.jit_compile
    return splits, {
        FIT: keras_fit(),
        FIT_EQUAL: keras_fit(steps_per_execution=t.steps_per_execution,
                             jit_compile=t.jit_compile),
        PRODUCT: product(False, t.jit_compile),
        f"{PRODUCT}, jit_compile={str(other).lower()}": product(False, other),
        TRACKED: product(True, t.jit_compile),
    }


def measure(epochs: int = 5, repeats: int = REPEATS, overrides=()):
    """Rows: (variant, median samples/s, median ratio to the equal-settings fit, that
    median's 95% bootstrap interval (low, high), min, max), then the tracked/untracked
    ratio as a row of its own (samples/s None)."""
    with tempfile.TemporaryDirectory() as tmp:
        splits, variants = _variants(Path(tmp), overrides)
        for go in variants.values():  # warm-up: traces and first epoch
            go(1)
        rates = {name: [] for name in variants}
        for r in range(repeats):
            order = list(variants) if r % 2 == 0 else list(reversed(variants))
            for name in order:
                start = time.perf_counter()
                variants[name](epochs)
                rates[name].append(epochs * len(splits.x_train) / (time.perf_counter() - start))

    def ratios(values, base):
        r = [v / b for v, b in zip(values, base)]
        return (statistics.median(r), *median_interval(r), min(r), max(r))

    rows = [(name, statistics.median(values), *ratios(values, rates[FIT_EQUAL]))
            for name, values in rates.items()]
    return rows + [(f"{TRACKED} / {PRODUCT}", None, *ratios(rates[TRACKED], rates[PRODUCT]))]


def table(rows) -> str:
    return markdown.table(
        ["path", "samples/s (median)", "ratio to fit at equal settings (median)",
         "ratio 95% CI", "ratio min–max"],
        [(n, "" if v is None else f"{v:,.0f}", f"{r:.2f}", f"{cl:.2f}–{ch:.2f}",
          f"{lo:.2f}–{hi:.2f}") for n, v, r, cl, ch, lo, hi in rows], "lrrll")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides of the job, e.g. dataset=mnist1d model=mnist1d_cnn")
    args = parser.parse_args(argv)
    out = table(measure(args.epochs, args.repeats, args.overrides))
    print(out)
    return out


if __name__ == "__main__":
    main()
