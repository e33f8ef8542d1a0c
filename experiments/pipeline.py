"""One training job from a validated config: data, model, optimizer, tracking, artifacts.

``run(cfg)`` is what ``python -m experiments.train`` calls once the config has passed
``experiments.config.validate``; tests call it directly with configs from Hydra's
compose API.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments import registry, tracking
from experiments.run_status import ended_run


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


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _loss_plot(history, path: Path, title: str, loss: str = "cross_entropy") -> None:
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


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask training to stop at the next step boundary
    (``should_stop()``); a second SIGINT interrupts at once. Only in the main thread."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        import signal

        name = signal.Signals(signum).name
        if self.received == "SIGINT" and name == "SIGINT":
            raise KeyboardInterrupt
        self.received = name

    def should_stop(self) -> bool:
        return self.received is not None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopped(RuntimeError):
    """Training was interrupted by a signal; the run is KILLED and checkpointed."""

    killed = True  # the run's status (experiments.run_status)

    def __init__(self, run_id: str | None, signal_name: str, step: int):
        super().__init__(f"{signal_name} at step {step}")
        self.run_id, self.signal_name, self.step = run_id, signal_name, step


def make_strategy(name: str, logical_cpus: int | None = None):
    """The ``tf.distribute`` strategy ``trainer.strategy`` names (made before other TF work).

    ``logical_cpus`` splits the host CPU into that many logical devices first, so that
    ``mirrored`` can be tried, and tested, on a machine without accelerators.
    """
    import tensorflow as tf

    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy_name: str) -> bool:
    """Whether this process logs: always, except the non-chief workers of a cluster."""
    if strategy_name != "multi_worker":
        return True
    from experiments.config import tf_config

    cluster = tf_config()
    task = cluster["task"]
    if "chief" in cluster["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


class TrackedHooks:
    """What a tracked training does at each step and epoch: buffered metrics, checkpoints.

    Steps at or below ``logged_step`` (``logged_epoch_step`` for epoch metrics) are
    already in the store after a crash and are not sent again. A checkpoint is saved at
    the first epoch end ``checkpoint_every_s`` seconds after the last one (0: every
    epoch; None: never here), after waiting for the metrics before it to be stored.
    """

    def __init__(self, logger, model, folder, checkpoint_every_s, logged_step=0,
                 logged_epoch_step=0, fingerprint=None):
        from experiments import resume

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


def _check_fits(splits, batch_size: int) -> None:
    from experiments.config import ConfigError

    if batch_size > len(splits.x_train):
        raise ConfigError(
            f"trainer.batch_size={batch_size} is larger than the training split of "
            f"{splits.name} ({len(splits.x_train)} samples): use at most "
            f"{len(splits.x_train)}")


def check_ready(cfg: DictConfig) -> None:
    """What can be known to fail before TensorFlow or MLflow is loaded: a dataset that is
    not downloaded (``DatasetUnavailable``), nothing to resume (``ResumeError``)."""
    from experiments import resume as ckpt
    from experiments.data import check_available

    check_available(cfg.dataset.name)
    t, tr = cfg.trainer, cfg.tracking
    if t.resume and not tr.enabled:
        raise ckpt.ResumeError("trainer.resume needs tracking: the run to continue is found "
                               "in the tracking store")
    if t.resume and is_chief(t.strategy):
        ckpt.check_resumable(tracking.resolve_tracking_uri(tr.uri), str(t.resume),
                             ckpt.config_hash(OmegaConf.to_container(cfg, resolve=True)))


def run(cfg: DictConfig, *, overrides: list[str] | None = None,
        sweep: dict | None = None, out=sys.stdout) -> dict[str, Any]:
    """Train as ``cfg`` says; log to MLflow unless ``tracking.enabled`` is false.

    The tracking store is checked first (``TrackingUnavailable``), then data and model are
    built, and only then is a run created, so a failure before training leaves no run.
    The run ends FINISHED, FAILED (with ``failure_reason``; a divergence also tags
    ``diverged_at_step``) or KILLED (SIGINT/SIGTERM: a checkpoint is saved at the step
    reached, ``Stopped`` is raised). ``trainer.resume`` continues a run from its
    checkpoint. Returns the final metrics (``val_loss``, ``val_accuracy``, ``test_loss``,
    ``test_accuracy``, ``steps``), when tracked ``run_id`` and ``tracking_uri``, and with
    ``trainer.curvature_every_n_steps``/``weights_every_n_steps`` ``curvature`` and
    ``weights`` (``experiments.curvature.TrainingWatch``), with
    ``trainer.curvature_spectrum`` ``spectra`` (``experiments.curvature.Spectrum``).
    """
    from experiments import resume as ckpt

    t, tr = cfg.trainer, cfg.tracking
    config = OmegaConf.to_container(cfg, resolve=True)
    fingerprint = ckpt.config_hash(config)
    uri = None
    resume_id = None
    tracked = tr.enabled and is_chief(t.strategy)
    check_ready(cfg)
    if tracked:
        uri = tracking.resolve_tracking_uri(tr.uri)
        tracking.probe_store(uri)
        if t.resume:
            from mlflow.tracking import MlflowClient

            resume_id = ckpt.find_run(MlflowClient(tracking_uri=uri), uri, tr.experiment_name,
                                      str(t.resume), fingerprint)

    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.optim import build_optimizer
    from experiments.trainer import Diverged, Interrupted, Progress, Trainer, fit

    strategy = make_strategy(t.strategy, t.logical_cpus)
    data_params = OmegaConf.to_container(cfg.dataset, resolve=True)
    splits = load_dataset(data_params.pop("name"), **data_params)
    batch_size = len(splits.x_train) if t.full_batch else t.batch_size
    _check_fits(splits, batch_size)
    seed_everything(t.seed, t.deterministic)
    progress = None
    with strategy.scope():
        if resume_id:
            model, saved = ckpt.load_checkpoint(ckpt.checkpoint_dir(uri, resume_id))
            optimizer = model.optimizer
            progress = Progress.from_dict(saved)
        else:
            model_params = OmegaConf.to_container(cfg.model, resolve=True)
            model = build_model(model_params.pop("name"), splits.input_shape,
                                splits.num_classes, **model_params)
            schedule = cfg.get("schedule")  # absent: constant (configs made in code)
            optimizer = build_optimizer(
                OmegaConf.to_container(cfg.optimizer, resolve=True),
                None if schedule is None else OmegaConf.to_container(schedule, resolve=True))
        trainer = Trainer(model, optimizer, splits.x_train, splits.y_train,
                          jit_compile=t.jit_compile, strategy=strategy, loss=t.loss)
    watch = _watch(t, model, optimizer, splits)

    name = tr.run_name or f"{run_label(cfg)}-{cfg.dataset.name}-{cfg.model.name}-s{t.seed}"
    logger = None
    logged_step = logged_epoch_step = 0
    if tracked:
        if resume_id:
            logger = tracking.RunLogger.reopen(uri, resume_id)
            logged_step = ckpt.last_logged_step(logger.client, resume_id, "loss")
            logged_epoch_step = ckpt.last_logged_step(logger.client, resume_id, "val_loss")
            logger.set_tags({"resumed_from_step": progress.step})
        else:
            logger = tracking.RunLogger.start(
                uri, tr.experiment_name, name,
                tags={**run_tags(cfg, sweep), "config_hash": fingerprint})
            config["tracking"]["uri"] = uri
            logger.log_params(tracking.flatten(config))
            logger.log_datasets(tracking.dataset_inputs(splits, data_params))
            _log_optimizer_paths(logger, optimizer)
            logger.log_metrics(numeric_hyperparameters(cfg), step=0)
            logger.flush()
        folder = ckpt.checkpoint_dir(uri, logger.run_id)

    hooks = (TrackedHooks(logger, model, folder, t.checkpoint_every_s, logged_step,
                          logged_epoch_step, fingerprint).as_fit_kwargs() if logger else {})
    display = _epoch_display(cfg, name, len(splits.x_train), progress, hooks)
    if watch:
        def probe(step, final):
            metrics = watch(step, final)
            if logger and metrics:
                logger.log_metrics(metrics, step)

        hooks.update(probe=probe, probe_every=watch.every)
    stop = StopOnSignal()
    with ended_run(logger) as run:
        try:
            with stop, display:
                history = fit(trainer, splits, epochs=t.epochs, batch_size=batch_size,
                              seed=t.seed, steps_per_execution=t.steps_per_execution,
                              max_steps=t.max_steps, log_every_n_steps=tr.log_every_n_steps,
                              progress=progress, should_stop=stop.should_stop, **hooks)
        except Diverged as err:
            run.failure_tags = {"failure_reason": "diverged", "diverged_at_step": err.step,
                                "diverged_metric": err.what, "failure_message": str(err)}
            raise
        except Interrupted as err:
            if logger:
                TrackedHooks(logger, model, folder, None,
                             fingerprint=fingerprint).checkpoint(err.progress)
            run.failure_tags = {"failure_reason": "interrupted", "interrupted_by": stop.received,
                                "interrupted_at_step": err.progress.step}
            raise Stopped(logger.run_id if logger else None, stop.received,
                          err.progress.step) from None
        final = dict(history.final)
        if watch and watch.measurements:
            final["curvature"] = watch.measurements  # [(step, metrics)]
        if watch and watch.weights:
            final["weights"] = (watch.steps, watch.weights)  # kept steps, flat weights
        if watch and watch.spectra:
            final["spectra"] = watch.spectra
        final.update({k: v[-1] for k, v in history.epoch.items() if k.startswith("val_")})
        if logger:
            logger.log_metrics({k: history.final[k] for k in ("test_loss", "test_accuracy")},
                               step=final["steps"])
            _log_artifacts(logger, cfg, model, history, overrides, resumed=bool(resume_id),
                           watch=watch)
            final.update(run_id=logger.run_id, tracking_uri=uri)
    if logger is None:
        print(f"Finished (not tracked): validation loss {final['val_loss']:.4f}, "
              f"test accuracy {final['test_accuracy']:.4f} after {final['steps']} steps.",
              file=out)
    else:
        print(f"Run {logger.run_id} finished: test accuracy "
              f"{final['test_accuracy']:.4f}, logged to {tracking.redact(uri)} "
              f"(experiment '{tr.experiment_name}').\n"
              f"See it with: {tracking.ui_command(uri)}", file=out)
    return final


def _epoch_display(cfg, label: str, n_train: int, progress, hooks: dict):
    """The progress display of the epochs (``experiments.progress``), fed by ``fit``'s
    ``on_epoch`` hook, which it wraps in ``hooks``."""
    import math

    from experiments.progress import Progress as Display

    t = cfg.trainer
    total = t.epochs
    if t.max_steps is not None:
        batch = n_train if t.full_batch else t.batch_size
        total = min(total, math.ceil(t.max_steps / math.ceil(n_train / batch)))
    display = Display(total, label, enabled=t.progress, unit="epoch",
                      initial=min(progress.epoch, total) if progress else 0)
    tracked = hooks.get("on_epoch")

    def on_epoch(epoch, step, metrics):
        if tracked:
            tracked(epoch, step, metrics)
        display.update(epoch_loss=metrics["epoch_loss"], val_loss=metrics["val_loss"],
                       val_accuracy=metrics["val_accuracy"])

    hooks["on_epoch"] = on_epoch
    return display


def _log_optimizer_paths(logger, optimizer):
    """Tag where the run is evaluated (``evaluation_point``: ``x``, the optimizer's average,
    or ``weights``), and for Muon log which variable took which path (optimizer/paths.json).
    """
    from experiments.optim import evaluation_point_name, update_paths

    logger.set_tags({"evaluation_point": evaluation_point_name(optimizer)})
    paths = update_paths(optimizer)
    if paths is not None:
        logger.set_tags({"muon_variables": len(paths["muon"]),
                         "adamw_variables": len(paths["adamw"])})
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "paths.json"
            file.write_text(json.dumps(paths, indent=1))
            logger.log_artifacts([file], "optimizer")


def _watch(t, model, optimizer, splits):
    """The ``TrainingWatch`` of ``trainer.curvature_*``/``weights_every_n_steps``, or None."""
    if not (t.curvature_every_n_steps or t.weights_every_n_steps):
        return None
    from experiments.curvature import FlatLoss, TrainingWatch, subset
    from experiments.trainer import layer_groups

    rows = subset(len(splits.x_train), t.curvature_samples, t.seed)
    loss = FlatLoss(model, splits.x_train[rows], splits.y_train[rows], t.loss)
    return TrainingWatch(model, optimizer, loss,
                         curvature_every=t.curvature_every_n_steps,
                         weights_every=t.weights_every_n_steps,
                         iterations=t.curvature_iterations, seed=t.seed,
                         operator=t.curvature_operator, spectrum=t.curvature_spectrum,
                         probes=t.curvature_probes,
                         blocks=loss.blocks(layer_groups(model)) if t.curvature_spectrum else {})


def _log_artifacts(logger, cfg, model, history, overrides, *, resumed: bool,
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
            _loss_plot(history, tmp / "loss_curve.png",
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
            from experiments.trainer import at_evaluation_point

            with at_evaluation_point(model, model.optimizer):  # the model as evaluated
                model.save(tmp / "model.keras")
            logger.log_artifacts([tmp / "model.keras"], "model")
