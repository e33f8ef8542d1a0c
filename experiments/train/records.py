"""What a training run records in MLflow: its name and tags, per-step metrics and
checkpoints (``TrackedHooks``), the optimizer's paths and the artifacts at the end."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.core import registry, tracking


def run_label(cfg: DictConfig) -> str:
    """The optimizer's config name: ``adam`` or ``keras_adam``."""
    return registry.option_name(cfg.optimizer.name, cfg.optimizer.implementation)


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


def loss_plot(history, path: Path, title: str, loss: str = "cross_entropy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(history.steps, history.losses, lw=0.8, alpha=0.7, label="train loss (step)")
    if history.epoch_steps:
        ax.plot(history.epoch_steps, history.epoch["epoch_loss"], "o-", label="train loss (epoch)")
        ax.plot(history.epoch_steps, history.epoch["val_loss"], "s-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(loss)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class TrackedHooks:
    """What a tracked training does at each step and epoch: buffered metrics, checkpoints.

    Steps at or below ``logged_step`` (``logged_epoch_step`` for epoch metrics) are
    already in the store after a crash and are not sent again. A checkpoint is saved at
    the first epoch end ``checkpoint_every_s`` seconds after the last one (0: every
    epoch; None: never here), after waiting for the metrics before it to be stored.
    """

    def __init__(self, logger, model, folder, checkpoint_every_s, logged_step=0,
                 logged_epoch_step=0, fingerprint=None):
        from experiments.core import resume

        self.logger, self.model, self.folder = logger, model, folder
        self.meta = {resume.FINGERPRINT_KEY: fingerprint} if fingerprint else {}
        self.every = checkpoint_every_s
        self.logged_step, self.logged_epoch_step = logged_step, logged_epoch_step
        self.last_checkpoint = time.monotonic()
        self._save = resume.save_checkpoint

    def on_step(self, step, metrics):
        if step > self.logged_step:
            self.logger.log_metrics(metrics, step)

    def on_epoch(self, epoch, step, metrics):
        if step > self.logged_epoch_step:
            self.logger.log_metrics({**metrics, "epoch": epoch + 1}, step)
        self.logger.flush(force=False)  # if a few seconds have passed

    def on_epoch_end(self, progress):
        if self.every is not None and time.monotonic() - self.last_checkpoint >= self.every:
            self.checkpoint(progress)

    def checkpoint(self, progress):
        self.logger.wait()  # the checkpoint must not run ahead of the logged metrics
        self._save(self.folder, self.model, {**progress.to_dict(), **self.meta})
        self.last_checkpoint = time.monotonic()

    def as_fit_kwargs(self) -> dict:
        return {"on_step": self.on_step, "on_epoch": self.on_epoch,
                "on_epoch_end": self.on_epoch_end}


def log_optimizer_paths(logger, optimizer):
    """Tag where the run is evaluated (``evaluation_point``: ``x``, the optimizer's average,
    or ``weights``), and for Muon log which variable took which path (optimizer/paths.json).
    """
    from experiments.core.optim import evaluation_point_name, update_paths

    logger.set_tags({"evaluation_point": evaluation_point_name(optimizer)})
    paths = update_paths(optimizer)
    if paths is not None:
        logger.set_tags({"muon_variables": len(paths["muon"]),
                         "adamw_variables": len(paths["adamw"])})
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "paths.json"
            file.write_text(json.dumps(paths, indent=1))
            logger.log_artifacts([file], "optimizer")


def log_artifacts(logger, cfg, model, history, overrides, *, resumed: bool,
                   watch=None) -> None:
    tr = cfg.tracking
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        safe = tracking.redact_config(OmegaConf.to_container(cfg, resolve=True))
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(safe)))
        safe_overrides = [tracking.redact_override(o) for o in overrides or []]
        (tmp / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(safe_overrides)))
        logger.log_artifacts([tmp / "config.yaml", tmp / "overrides.yaml"], "config")
        if tr.log_plots:
            if resumed:  # the curve before the interruption lives in the store
                logger.wait()
                past = logger.client.get_metric_history(logger.run_id, "loss")
                history.steps, history.losses = ([m.step for m in past],
                                                 [m.value for m in past])
            loss_plot(history, tmp / "loss_curve.png",
                       f"{run_label(cfg)} on {cfg.dataset.name} ({cfg.model.name})",
                       cfg.trainer.loss)
            logger.log_artifacts([tmp / "loss_curve.png"], "plots")
        if watch and watch.weights:
            watch.save_trajectory(tmp / "trajectory.npz")
            logger.log_artifacts([tmp / "trajectory.npz"], "weights")
        if watch and watch.spectra:
            from experiments.curvature.figures import density_plot

            (tmp / "spectrum").mkdir()
            for spectrum in watch.spectra:
                stem = tmp / "spectrum" / spectrum.filename
                spectrum.save(f"{stem}.npz")
                density_plot(spectrum, f"{stem}.png",
                             f"{run_label(cfg)} on {cfg.dataset.name}, step {spectrum.step}: "
                             f"trace {spectrum.trace:.3g}, λ_max {spectrum.lambda_max:.3g}")
            logger.log_artifacts(sorted((tmp / "spectrum").iterdir()), "curvature/spectrum")
        if tr.log_model:
            from experiments.train.trainer import at_evaluation_point

            with at_evaluation_point(model, model.optimizer):  # the model as evaluated
                model.save(tmp / "model.keras")
            logger.log_artifacts([tmp / "model.keras"], "model")
