"""One training job from a validated config: data, model, optimizer, tracking, artifacts.

``run(cfg)`` is what ``python -m experiments.train`` calls once the config has passed
``experiments.train.config.validate``; tests call it directly with configs from Hydra's
compose API.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.core import tracking
from experiments.core.run_status import ended_run
from experiments.train.records import (TrackedHooks, log_artifacts, log_optimizer_paths,
                                       numeric_hyperparameters, run_label, run_tags)
from experiments.train.runtime import (StopOnSignal, Stopped, is_chief, make_strategy,
                                       seed_everything)


def _check_fits(splits, batch_size: int) -> None:
    from experiments.core.checks import ConfigError

    if batch_size > len(splits.x_train):
        raise ConfigError(
            f"trainer.batch_size={batch_size} is larger than the training split of "
            f"{splits.name} ({len(splits.x_train)} samples): use at most "
            f"{len(splits.x_train)}")


def check_ready(cfg: DictConfig) -> None:
    """What can be known to fail before TensorFlow or MLflow is loaded: a dataset that is
    not downloaded (``DatasetUnavailable``), nothing to resume (``ResumeError``)."""
    from experiments.core import resume as ckpt
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
        sweep: dict | None = None, out=None) -> dict[str, Any]:
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
    The run's checkpoint folder is locked (``experiments.core.resume.RunLock``) while it
    trains: resuming a run that another live process trains is refused (``ResumeError``).
    """
    with contextlib.ExitStack() as held:  # the run's lock, released once the run has ended
        return _run(cfg, overrides, sweep, out or sys.stdout, held)


def _run(cfg: DictConfig, overrides, sweep, out, held: contextlib.ExitStack) -> dict[str, Any]:
    from experiments.core import resume as ckpt

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
            held.enter_context(ckpt.RunLock(ckpt.checkpoint_dir(uri, resume_id), resume_id))

    from experiments.data import load_dataset
    from experiments.models import build_model
    from experiments.core.optim import build_optimizer
    from experiments.train.trainer import Diverged, Interrupted, Trainer, TrainingState, fit

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
            progress = TrainingState.from_dict(saved)
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
    stop = StopOnSignal()
    logger = None
    # The run is created (or reopened) inside the block that ends it: whatever fails from
    # here on (logging params, dataset inputs, the watch, the training) ends it FAILED.
    with ended_run(None) as run:
        hooks: dict = {}
        if tracked:
            logger, logged_step, logged_epoch_step = _open_run(
                run, cfg, uri, name, resume_id, progress, config, fingerprint, sweep, splits,
                data_params, optimizer)
            if not resume_id:
                held.enter_context(ckpt.RunLock(ckpt.checkpoint_dir(uri, logger.run_id),
                                                logger.run_id))
            hooks = TrackedHooks(logger, model, ckpt.checkpoint_dir(uri, logger.run_id),
                                 t.checkpoint_every_s, logged_step, logged_epoch_step,
                                 fingerprint).as_fit_kwargs()
        display = _epoch_display(cfg, name, len(splits.x_train), progress, hooks)
        if watch:
            def probe(step, final):
                metrics = watch(step, final)
                if logger and metrics:
                    logger.log_metrics(metrics, step)

            hooks.update(probe=probe, probe_every=watch.every)
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
                TrackedHooks(logger, model, ckpt.checkpoint_dir(uri, logger.run_id), None,
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
            log_artifacts(logger, cfg, model, history, overrides, resumed=bool(resume_id),
                           watch=watch)
            final.update(run_id=logger.run_id, tracking_uri=uri)
    if logger is not None:  # FINISHED: nothing left to resume, the checkpoints go
        ckpt.remove_checkpoints(ckpt.checkpoint_dir(uri, logger.run_id))
    if logger is None:
        print(f"Finished (not tracked): validation loss {final['val_loss']:.4f}, "
              f"test accuracy {final['test_accuracy']:.4f} after {final['steps']} steps.",
              file=out)
    else:
        print(f"Run {logger.run_id} finished: test accuracy "
              f"{final['test_accuracy']:.4f}, logged to {tracking.redact(uri)} "
              f"(experiment '{tr.experiment_name}').\n"
              f"{tracking.see_it(uri, run_id=logger.run_id)}", file=out)
    return final



def _open_run(run, cfg, uri, name, resume_id, progress, config, fingerprint, sweep, splits,
              data_params, optimizer):
    """(logger, last logged step, last logged epoch step) of the run a tracked training
    logs to: ``resume_id`` reopened, or a new one with its params, tags, dataset inputs
    and hyperparameters. ``run`` (the ``ended_run`` around it) gets the logger as soon as
    the run exists, so it ends the run however the rest goes."""
    from experiments.core import resume as ckpt
    from experiments.data.inputs import dataset_inputs

    tr = cfg.tracking
    if resume_id:
        logger = run.logger = tracking.RunLogger.reopen(uri, resume_id)
        logger.set_tags({"resumed_from_step": progress.step})
        return (logger, ckpt.last_logged_step(logger.client, resume_id, "loss"),
                ckpt.last_logged_step(logger.client, resume_id, "val_loss"))
    logger = run.logger = tracking.RunLogger.start(
        uri, tr.experiment_name, name, tags={**run_tags(cfg, sweep), "config_hash": fingerprint})
    config["tracking"]["uri"] = uri
    logger.log_params(tracking.flatten(config))
    logger.log_datasets(dataset_inputs(splits, data_params))
    log_optimizer_paths(logger, optimizer)
    logger.log_metrics(numeric_hyperparameters(cfg), step=0)
    logger.flush()
    return logger, 0, 0

def _epoch_display(cfg, label: str, n_train: int, progress, hooks: dict):
    """The progress display of the epochs (``experiments.core.progress``), fed by ``fit``'s
    ``on_epoch`` hook, which it wraps in ``hooks``."""
    import math

    from experiments.core.progress import Progress as Display

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


def _watch(t, model, optimizer, splits):
    """The ``TrainingWatch`` of ``trainer.curvature_*``/``weights_every_n_steps``, or None."""
    if not (t.curvature_every_n_steps or t.weights_every_n_steps):
        return None
    from experiments.curvature import FlatLoss, TrainingWatch, subset
    from experiments.train.trainer import layer_groups

    rows = subset(len(splits.x_train), t.curvature_samples, t.seed)
    loss = FlatLoss(model, splits.x_train[rows], splits.y_train[rows], t.loss)
    return TrainingWatch(model, optimizer, loss,
                         curvature_every=t.curvature_every_n_steps,
                         weights_every=t.weights_every_n_steps,
                         iterations=t.curvature_iterations, seed=t.seed,
                         operator=t.curvature_operator, spectrum=t.curvature_spectrum,
                         probes=t.curvature_probes,
                         blocks=loss.blocks(layer_groups(model)) if t.curvature_spectrum else {})


