"""The gallery's figures, in the README's order (the benchmark's are in
``benchmark_figures``). Each ``make`` reads its runs back from the store (making the
missing ones) and writes its outputs under ``ctx.root``."""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.gallery import ROOT, Context, Figure, register
from experiments.gallery.runs import Trainings, compose, download, find_run, history


class FigureFailed(RuntimeError):
    """A figure could not be made; the message is one line."""


def _save(fig, ctx: Context, output: str) -> None:
    from experiments.core.plotting import pyplot

    fig.savefig(ctx.path(output))
    pyplot().close(fig)


def _params(run) -> dict[str, str]:
    return run.data.params


# --------------------------------------------------------------------------- landscapes
LANDSCAPES = ("rosenbrock", "saddle")


def _landscape_outputs() -> tuple[str, ...]:
    return tuple(f"docs/landscape_{name}.png" for name in LANDSCAPES)


def make_landscapes(ctx: Context) -> None:
    """Each landscape run again (seconds), tracked; its contour plot of the paths kept."""
    from experiments.landscape import register_schemas, run, validate

    register_schemas()
    for name, output in zip(LANDSCAPES, _landscape_outputs()):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose("landscape", [f"landscape={name}", f"tracking.uri={ctx.uri}",
                                        f"output_dir={tmp}"])
            result = run(cfg, optimizers=validate(cfg), out=io.StringIO())
            shutil.copyfile(Path(tmp) / f"{name}_paths.png", ctx.path(output))
        ctx.log(f"{name}: run {result['run_id']} → {output}")


register(Figure(
    name="landscapes",
    outputs=_landscape_outputs(),
    command="python -m experiments.landscape -m landscape=" + ",".join(LANDSCAPES),
    cost="about 15 s per landscape",
    make=make_landscapes,
    status=lambda ctx: "runs every landscape again (seconds), tracked",
    description="every optimizer's path on the 2-D test functions, over f's contours"))


# --------------------------------------------------------------------------- curvature
EDGE = Trainings("edge_of_stability",
                 {f"η = {lr}": [f"optimizer.learning_rate={lr}"] for lr in (0.2, 0.3, 0.4)})
SADDLE = Trainings("saddle_real",
                   {name: [f"optimizer={name}"] for name in ("sgd", "momentum", "rmsprop",
                                                               "adam")})


LOSS_NAMES = {"mse": "½‖logits − one_hot(y)‖²", "cross_entropy": "cross-entropy"}


def _model_title(params: dict) -> str:
    return (f"{params['model.activation']} MLP, {params['model.depth']} hidden layers of "
            f"{params['model.width']}, on {params['dataset.name']}")


def _curvature_figure(ctx: Context, output: str, runs: dict, draw, panels, title: str):
    """Two panels over the runs of one preset: ``draw(left, right, i, label, run)`` per
    run, then each panel's ``(xlabel, ylabel, title, yscale)``, a grid and a legend."""
    from experiments.core.plotting import pyplot

    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8), dpi=100)
    for i, (label, run) in enumerate(runs.items()):
        draw(*axes, i, label, run)
    for ax, (xlabel, ylabel, subtitle, yscale) in zip(axes, panels):
        ax.set(xlabel=xlabel, ylabel=ylabel, yscale=yscale)
        ax.set_title(subtitle, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, ctx, output)


def make_edge_of_stability(ctx: Context) -> None:
    runs = EDGE.runs(ctx)

    def draw(left, right, i, label, run):
        lr = float(_params(run)["optimizer.learning_rate"])
        steps, sharpness = history(ctx.uri, run.info.run_id, "curvature/lambda_max")
        left.plot(steps, sharpness, color=f"C{i}", label=label)
        left.axhline(2 / lr, color=f"C{i}", linestyle="--", linewidth=0.9)
        steps, loss = history(ctx.uri, run.info.run_id, "loss")
        right.plot(steps, loss, color=f"C{i}", linewidth=0.9, label=label)

    params = _params(next(iter(runs.values())))
    loss = params["trainer.loss"]
    _curvature_figure(
        ctx, "docs/edge_of_stability.png", runs, draw,
        [("step (full-batch gradient descent)", "λ_max (sharpness)",
          "sharpness rises to 2/η (dashed) and hovers there", "linear"),
         ("step", f"training loss ({LOSS_NAMES.get(loss, loss)})",
          "the loss keeps falling, not monotonically", "log")],
        f"edge_of_stability: {_model_title(params)}, {loss} loss")


register(Figure("edge_of_stability", ("docs/edge_of_stability.png",), EDGE.command,
                "about 15 s a run, 3 runs (2 cores, load 4-5)", make_edge_of_stability,
                EDGE.status, "λ_max against 2/η under full-batch gradient descent"))


def _trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.insert(values, 0, 0.0))
    return (sums[window:] - sums[:-window]) / window


def make_saddle_real(ctx: Context) -> None:
    from experiments.core.plotting import option_style

    runs = SADDLE.runs(ctx)
    window = 20

    def draw(left, right, i, label, run):
        colour = option_style(label)["color"]
        if i == 0:
            left.axhline(0, color="black", linewidth=0.8)
            right.axhline(math.log(10), color="black", linestyle=":", linewidth=0.8)
        steps, lam = history(ctx.uri, run.info.run_id, "curvature/lambda_min")
        left.plot(steps, lam, marker=".", color=colour, label=label)
        steps, loss = history(ctx.uri, run.info.run_id, "loss")
        right.plot(steps[window - 1:], _trailing_mean(loss, window), color=colour,
                   label=label)

    params = _params(next(iter(runs.values())))
    _curvature_figure(
        ctx, "docs/saddle_real.png", runs, draw,
        [("step", f"λ_min ({params['trainer.curvature_samples']} training examples)",
          "negative curvature on the plateau and after it", "linear"),
         ("step", f"training loss ({window}-step mean)",
          "the plateau at ln 10: who leaves it", "linear")],
        f"saddle_real: {_model_title(params)} (optimizers at their default η)")


register(Figure("saddle_real", ("docs/saddle_real.png",), SADDLE.command,
                "about 10 s a run, 4 runs (2 cores, load 4-5)", make_saddle_real,
                SADDLE.status, "λ_min and the loss on the plateau of a sigmoid MLP"))


SPECTRUM_RULES, SPECTRUM_SEEDS = ("sgd", "adam"), (0, 1, 2)
SPECTRUM = Trainings("spectrum_real", {
    f"{rule}, seed {seed}": [f"optimizer={rule}", f"trainer.seed={seed}"]
    for rule in SPECTRUM_RULES for seed in SPECTRUM_SEEDS})


def make_spectrum_real(ctx: Context) -> None:
    """The spectra (``curvature/spectrum/*.npz``) of the preset's runs, every seed, by rule."""
    from experiments.curvature.figures import spectrum_figure

    runs = SPECTRUM.runs(ctx)
    by_rule = {rule: [runs[f"{rule}, seed {seed}"].info.run_id for seed in SPECTRUM_SEEDS]
               for rule in SPECTRUM_RULES}
    spectrum_figure(by_rule, ctx.path("docs/spectrum_real.png"), tracking_uri=ctx.uri,
                    classes=10)  # the digits


register(Figure("spectrum_real", ("docs/spectrum_real.png",), SPECTRUM.command,
                "about 3 min a run, 6 runs (2 cores, load 7)", make_spectrum_real,
                SPECTRUM.status, "the Hessian's spectral density, trace and layer "
                "sharpness under SGD and Adam"))


# --------------------------------------------------------------------------- surfaces
SURFACE_FILES = {"lines.png": "docs/surface_lines.png", "contour.png": "docs/surface_contour.png",
                 "paths.png": "docs/surface_paths.png", "paths.gif": "docs/surface_paths.gif"}


def _surface(ctx: Context):
    """(the config of ``python -m experiments.surface``, the tags its run is found by)."""
    from experiments.surface import config_digest, register_schemas

    register_schemas()
    cfg = compose("surface", [f"tracking.uri={ctx.uri}"])
    return cfg, {"kind": "surface", "config_hash": config_digest(cfg)}


def _surface_status(ctx: Context) -> str:
    cfg, tags = _surface(ctx)
    run = find_run(ctx.uri, cfg.tracking.experiment_name, tags)
    return "trains 3 runs and computes the grids" if run is None else \
        f"reads the grids of stored run {run.info.run_id}"


def make_surfaces(ctx: Context) -> None:
    """The grids (``data/surface.npz``) of the stored surface run, drawn again; the run
    is made first when the store has none for this config."""
    from omegaconf import open_dict

    from experiments.surface import draw, run, validate

    cfg, tags = _surface(ctx)
    stored = find_run(ctx.uri, cfg.tracking.experiment_name, tags)
    with tempfile.TemporaryDirectory() as tmp:
        if stored is None:
            ctx.log("no stored surface run: training 3 optimizers and computing the grids")
            with open_dict(cfg):
                cfg.output_dir = str(Path(tmp) / "run")
            start = time.perf_counter()
            result = run(cfg, train=validate(cfg), out=io.StringIO())
            ctx.log(f"run {result['run_id']} made in {time.perf_counter() - start:.0f} s")
            stored = find_run(ctx.uri, cfg.tracking.experiment_name, tags)
        else:
            ctx.log(f"stored run {stored.info.run_id}")
        params = _params(stored)
        with np.load(download(ctx.uri, stored.info.run_id, "data/surface.npz", Path(tmp))) as f:
            grids = {k: f[k] for k in f.files}
        labels = [k.split("/", 1)[1] for k in grids if k.startswith("path/")]
        folder = Path(tmp) / "drawn"
        folder.mkdir()
        draw(folder, f"{params['model.name']} on {params['dataset.name']}", grids, labels,
             int(params["gif_frames"]), params.get("trainer.loss", "cross_entropy"))
        for name, output in SURFACE_FILES.items():
            shutil.copyfile(folder / name, ctx.path(output))


register(Figure(
    name="surfaces",
    outputs=tuple(SURFACE_FILES.values()),
    command="python -m experiments.surface",
    cost="about 30 s (2 cores, load 4-5)",
    make=make_surfaces,
    status=_surface_status,
    description="loss along lines, a filter-normalised contour, the paths on their PCA "
                "plane"))


# --------------------------------------------------------------------------- MLflow UI
UI_TEST = "tests/test_mlflow_ui.py::test_chart_view_screenshot"
UI_OUTPUT = "docs/mlflow-ui-chart-view.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def headless_browser() -> str | None:
    """The first of ``BROWSERS`` on the PATH (what ``tests/test_mlflow_ui.py`` drives)."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def _ui_status(ctx: Context) -> str:
    found = headless_browser()
    return (f"runs {UI_TEST} with {found}" if found else
            f"cannot be made here: no headless browser ({', '.join(BROWSERS)}) on the PATH")


def make_mlflow_ui(ctx: Context) -> None:
    """The end-to-end test of the MLflow UI takes the screenshot (three tiny trainings,
    ``mlflow server``, headless Chromium); ``CI=true`` makes a missing browser a failure."""
    if headless_browser() is None:
        raise FigureFailed(f"no headless browser ({', '.join(BROWSERS)}) on the PATH; "
                           "`.ci/run` installs chromium")
    target = ctx.path(UI_OUTPUT)
    env = dict(os.environ, MLFLOW_UI_SCREENSHOT=str(target), CI="true",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    before = target.stat().st_mtime_ns if target.exists() else None
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0",
                           "-p", "no:cacheprovider", UI_TEST], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    after = target.stat().st_mtime_ns if target.exists() else None
    if done.returncode != 0 or after is None or after == before:
        lines = [line for line in done.stdout.splitlines() if line.startswith(("E ", "FAILED"))]
        reason = lines[-1] if lines else (done.stdout or done.stderr).strip()[-300:]
        raise FigureFailed(f"{UI_TEST} did not take the screenshot: {' '.join(reason.split())}")


register(Figure(
    name="mlflow_ui",
    outputs=(UI_OUTPUT,),
    command=f"MLFLOW_UI_SCREENSHOT={UI_OUTPUT} python -m pytest tests/test_mlflow_ui.py",
    cost="about 1-2 min (three tiny trainings, an mlflow server, headless Chromium)",
    make=make_mlflow_ui,
    status=_ui_status,
    description="the MLflow UI's chart view over three real training runs"))
