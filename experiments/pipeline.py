"""One training job from a validated config: data, model, optimizer, tracking, artifacts.

``run(cfg)`` is what ``python -m experiments.train`` calls once the config has passed
``experiments.config.validate``; tests call it directly with configs from Hydra's
compose API.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments import tracking


def run_label(cfg: DictConfig) -> str:
    """The optimizer's config name: ``adam`` or ``keras_adam``."""
    opt = cfg.optimizer
    return opt.name if opt.implementation == "custom" else f"keras_{opt.name}"


def run_tags(cfg: DictConfig, sweep: dict | None = None) -> dict[str, str]:
    tags = {
        "optimizer": run_label(cfg),
        "optimizer_rule": cfg.optimizer.name,
        "implementation": cfg.optimizer.implementation,
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "seed": str(cfg.trainer.seed),
    }
    tags.update(sweep or {})
    tags.update({str(k): str(v) for k, v in cfg.tracking.tags.items()})
    return tags


def numeric_hyperparameters(cfg: DictConfig) -> dict[str, float]:
    """Numeric params again as metrics (``hp/<key>``), so searches can compare numbers."""
    flat = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
    return {f"hp/{k}": float(v) for k, v in flat.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _loss_plot(history, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(history.steps, history.losses, lw=0.8, alpha=0.7, label="train loss (step)")
    if history.epoch_steps:
        ax.plot(history.epoch_steps, history.epoch["epoch_loss"], "o-", label="train loss (epoch)")
        ax.plot(history.epoch_steps, history.epoch["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(cfg: DictConfig, *, overrides: list[str] | None = None,
        sweep: dict | None = None, out=sys.stdout) -> dict[str, Any]:
    """Train as ``cfg`` says; log to MLflow unless ``tracking.enabled`` is false.

    Returns the final metrics (``val_loss``, ``val_accuracy``, ``test_loss``,
    ``test_accuracy``, ``steps``) and, when tracked, ``run_id`` and ``tracking_uri``.
    """
    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Diverged, Trainer, fit

    t, tr = cfg.trainer, cfg.tracking
    data_params = OmegaConf.to_container(cfg.dataset, resolve=True)
    splits = load_dataset(data_params.pop("name"), **data_params)
    _seed_everything(t.seed, t.deterministic)
    model_params = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_model(model_params.pop("name"), splits.input_shape, splits.num_classes,
                        **model_params)
    optimizer = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True))
    trainer = Trainer(model, optimizer, splits.x_train, splits.y_train,
                      jit_compile=t.jit_compile)

    logger = None
    uri = None
    if tr.enabled:
        uri = tracking.resolve_tracking_uri(tr.uri)
        name = tr.run_name or (f"{run_label(cfg)}-{cfg.dataset.name}-{cfg.model.name}"
                               f"-s{t.seed}")
        logger = tracking.RunLogger.start(uri, tr.experiment_name, name,
                                          tags=run_tags(cfg, sweep))
        config = OmegaConf.to_container(cfg, resolve=True)
        config["tracking"]["uri"] = tracking.redact(uri)
        logger.log_params(tracking.flatten(config))
        logger.log_metrics(numeric_hyperparameters(cfg), step=0)
        logger.flush()

    def on_step(step, metrics):
        logger.log_metrics(metrics, step)

    def on_epoch(epoch, step, metrics):
        logger.log_metrics(metrics, step)
        logger.log_metrics({"epoch": epoch + 1}, step)
        logger.flush()

    status = "FAILED"
    try:
        try:
            history = fit(trainer, splits, epochs=t.epochs, batch_size=t.batch_size,
                          seed=t.seed, steps_per_execution=t.steps_per_execution,
                          max_steps=t.max_steps, log_every_n_steps=tr.log_every_n_steps,
                          on_step=on_step if logger else None,
                          on_epoch=on_epoch if logger else None)
        except Diverged as err:
            if logger:
                logger.set_tags({"failure_reason": "diverged", "diverged_at_step": err.step,
                                 "failure_message": str(err)})
            raise
        final = dict(history.final)
        final.update({k: v[-1] for k, v in history.epoch.items() if k.startswith("val_")})
        if logger:
            logger.log_metrics({k: history.final[k] for k in ("test_loss", "test_accuracy")},
                               step=final["steps"])
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                (tmp / "config.yaml").write_text(
                    tracking.redact(OmegaConf.to_yaml(cfg, resolve=True)))
                (tmp / "overrides.yaml").write_text(
                    tracking.redact(OmegaConf.to_yaml(OmegaConf.create(list(overrides or [])))))
                logger.log_artifacts([tmp / "config.yaml", tmp / "overrides.yaml"], "config")
                if tr.log_plots:
                    _loss_plot(history, tmp / "loss_curve.png",
                               f"{run_label(cfg)} on {cfg.dataset.name} ({cfg.model.name})")
                    logger.log_artifacts([tmp / "loss_curve.png"], "plots")
                if tr.log_model:
                    model.save(tmp / "model.keras")
                    logger.log_artifacts([tmp / "model.keras"], "model")
            final.update(run_id=logger.run_id, tracking_uri=uri)
        status = "FINISHED"
        return final
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if logger:
            logger.end(status)
            if status == "FINISHED":
                print(f"Run {logger.run_id} finished: test accuracy "
                      f"{final['test_accuracy']:.4f}, logged to {tracking.redact(uri)} "
                      f"(experiment '{tr.experiment_name}').\n"
                      f"See it with: {tracking.ui_command(uri)}", file=out)
