"""``python -m experiments.gallery``: every image the README and docs/ link has an entry
whose caption names its command; an entry made into a folder from a real store; the runs
of a figure found by their tags; a bad name refused; the contour plots' colour bars."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import gallery

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _gallery(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPTLAB_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "experiments.gallery", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _caption(text: str, target: str) -> str:
    """The first paragraph after the image ``target`` that is not only image links."""
    after = text[text.index(f"]({target})"):].split("\n\n")[1:]
    return next(p for p in after if p.strip() and not re.fullmatch(
        r"(\s*!\[[^\]]*\]\([^)]+\)\s*)+", p))


def test_every_linked_image_has_an_entry_and_every_output_is_linked():
    linked = gallery.linked_images()
    assert "docs/edge_of_stability.png" in linked and "docs/benchmark/profiles.png" in linked
    missing = {image: pages for image, pages in linked.items() if gallery.owner(image) is None}
    assert not missing, f"images without a gallery entry: {missing}"
    for figure in gallery.entries().values():
        for output in figure.outputs:
            assert (ROOT / output).exists(), f"{figure.name}: {output} is not in the repository"
        assert any(o in linked for o in figure.outputs), f"{figure.name} is linked nowhere"


def test_every_caption_names_the_command_of_its_figure():
    """On every page that shows a figure (the README and the site), the caption under it
    names the gallery command and the command that makes its runs."""
    checked = 0
    for image, pages in gallery.linked_images().items():
        figure = gallery.owner(image)
        for page in dict.fromkeys(pages):
            text = (ROOT / page).read_text()
            target = os.path.relpath(ROOT / image, (ROOT / page).parent)
            caption = " ".join(_caption(text, target).split())
            assert re.search(rf"`{re.escape(figure.gallery_command)}`", caption), (
                page, image, caption)
            assert figure.command in caption, (page, image, figure.command, caption)
            checked += 1
    assert checked >= len(gallery.entries())


def test_a_bad_name_is_refused_in_one_line_before_anything_loads():
    start = time.perf_counter()
    done = _gallery("landscapes", "landscape")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [f"Error: 'landscape' is not a figure of the gallery: choose from "
                     f"{', '.join(gallery.entries())}"], done.stderr
    assert time.perf_counter() - start < 60  # (tests/test_refusals.py: no TF, no MLflow)


@pytest.mark.slow
def test_dry_run_says_what_an_empty_store_lacks(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = _gallery("--dry-run", "--tracking-uri", store, "edge_of_stability", "benchmark")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[1/2] edge_of_stability: 0 of 3 runs stored; trains "
                               "η = 0.2, η = 0.3, η = 0.4 (the runs from scratch: about")
    assert lines[0].endswith("→ docs/edge_of_stability.png")
    assert re.match(r"\[2/2\] benchmark: 0 of (\d+) trials of benchmark 'default-benchmark' "
                    r"stored; trains the \1 others", lines[1]), lines[1]
    assert not list(tmp_path.glob("docs")), "a dry run wrote a figure"


@pytest.mark.slow
def test_a_run_made_by_the_figures_command_is_found_by_its_tags(tmp_path):
    """A run trained by ``python -m experiments.train +experiment=...`` is what the
    gallery reads back: same preset tag, same config digest; another config is not."""
    from experiments.gallery.runs import Trainings

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tiny = ["trainer.max_steps=2", "trainer.epochs=1", "tracking.log_model=false",
            "tracking.log_plots=false"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPTLAB_PROGRESS="0")
    done = subprocess.run([sys.executable, "-m", "experiments.train", "+experiment=saddle_point",
                           "optimizer=momentum", *tiny, f"tracking.uri={store}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = re.search(r"Run (\w+) finished", done.stdout).group(1)
    ctx = gallery.Context(root=tmp_path, uri=store)
    runs = Trainings("saddle_point", {"momentum": ["optimizer=momentum", *tiny],
                                      "sgd": ["optimizer=sgd", *tiny]})
    assert {k: r.info.run_id for k, r in runs.stored(ctx).items()} == {"momentum": run_id}
    assert runs.status(ctx) == "1 of 2 runs stored; trains sgd"


@pytest.mark.slow
def test_the_landscapes_entry_is_made_into_a_folder_from_a_tracked_run(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = _gallery("landscapes", "--out", str(tmp_path / "out"), "--tracking-uri", store,
                    timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figure = gallery.entries()["landscapes"]
    for output in figure.outputs:
        written = (tmp_path / "out" / output).read_bytes()
        assert written[:8] == PNG_MAGIC
    progress = done.stderr.splitlines()
    assert progress[0].startswith("[1/1] landscapes: docs/landscape_rosenbrock.png")
    assert re.fullmatch(r"\[1/1\] landscapes: done in \d+ s", progress[-1]), progress
    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("landscapes")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'landscape'")
    assert sorted(r.data.tags["landscape"] for r in runs) == sorted(
        ["rosenbrock", "saddle"])
    for run in runs:  # the figure names the run it was drawn from
        assert f"{run.data.tags['landscape']}: run {run.info.run_id} →" in done.stderr


@pytest.mark.parametrize("location", ["right", "bottom"])
def test_contour_colour_bar_names_the_quantity_and_ticks_the_quantile_levels(location):
    from experiments.landscape.plots import filled_contours
    from experiments.core.plotting import pyplot

    plt = pyplot()
    xs = np.linspace(-1, 1, 41)
    X, Y = np.meshgrid(xs, xs)
    Z = np.exp(3 * X) + Y ** 2
    fig, ax = plt.subplots()
    bar = filled_contours(ax, X, Y, Z, "f(x, y)", location=location)
    axis = bar.ax.xaxis if location == "bottom" else bar.ax.yaxis
    assert axis.get_label().get_text() == "f(x, y) (bands at quantiles of the grid)"
    levels = np.quantile(Z, np.linspace(0, 1, 25))
    np.testing.assert_allclose(axis.get_ticklocs(), levels[::4], rtol=1e-12)
    assert [t.get_text() for t in axis.get_ticklabels()] == [f"{v:.3g}" for v in
                                                              levels[::4]]
    plt.close(fig)


@pytest.mark.slow
def test_the_benchmark_entry_trains_what_is_missing_then_reads_it_back(tmp_path, monkeypatch):
    """The adapter over the benchmark's code on a three-trial benchmark: the first make
    trains and stores the trials and draws the plots; then every trial is read back."""
    from experiments.gallery import benchmark_figures as adapter

    monkeypatch.setattr(adapter, "OVERRIDES", [
        "preset=smoke", "benchmark_id=gallery-test", "optimizers=[sgd]",
        "workloads=[noisy_quadratic]", "preset.tuned.trials=2",
        "preset.tuned.studies=1", "preset.at_defaults.seeds=1"])
    ctx = gallery.Context(root=tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    figure = gallery.entries()["benchmark"]
    assert figure.status(ctx) == ("0 of 3 trials of benchmark 'gallery-test' stored; "
                                  "trains the 3 others")
    figure.make(ctx)
    assert figure.status(ctx) == "reads 3 stored trials of benchmark 'gallery-test'"
    for output in figure.outputs:
        assert (tmp_path / output).read_bytes()[:8] == PNG_MAGIC


def _synthetic_spectrum():
    """SLQ (10 probes x 40 Lanczos steps) of a diagonal 'Hessian': a bulk of 2000
    eigenvalues spread over [-0.5, 1] around a spike at 0, and 9 outliers in [2, 4]."""
    from experiments.curvature import Spectrum, slq

    rng = np.random.default_rng(0)
    bulk = np.concatenate([rng.normal(0, 0.01, 1500), rng.uniform(-0.5, 1.0, 500)])
    outliers = np.linspace(2.0, 4.0, 9)
    eigenvalues = np.concatenate([bulk, outliers])
    q = slq(lambda v: eigenvalues * v, eigenvalues.size, probes=10, iterations=40)
    spectrum = Spectrum(q.nodes, q.weights, q.probe, step=0, trace=float(eigenvalues.sum()),
                        size=eigenvalues.size)
    return spectrum, bulk, outliers


def test_the_spectrum_density_reads_as_a_density_with_its_outliers_marked(tmp_path):
    """The broadening follows the nodes' spread: inside the bulk the drawn density has no
    dip under half its neighbourhood's maximum (the old width, 1/300 of the range, drew a
    comb of one spike per node, with dips of more than 10x); the outliers are the nine
    eigenvalues right of the bulk, each its own peak. (Here: 0.63 against 0.05.)"""
    from experiments.curvature.figures import density_plot, kernel_width, outlier_values

    spectrum, bulk, outliers = _synthetic_spectrum()
    np.testing.assert_allclose(np.sort(outlier_values(spectrum)), outliers, atol=1e-6)
    sigma = kernel_width(spectrum)
    grid = np.linspace(0.15, 0.9, 400)  # where the bulk is flat: off the spike and edges

    def worst_gap(width):
        d = spectrum.density(grid, width)
        window = np.lib.stride_tricks.sliding_window_view(d, 41)  # ±1/20 of the bulk
        return float((window.min(axis=1) / window.max(axis=1)).min())

    assert worst_gap(sigma) > 0.5
    assert worst_gap(np.ptp(spectrum.nodes) / 300) < 0.1  # the comb it replaces
    peaks = spectrum.density(outliers, sigma)
    between = spectrum.density((outliers[:-1] + outliers[1:]) / 2, sigma)
    assert (between < 0.1 * np.minimum(peaks[:-1], peaks[1:])).all()
    density_plot(spectrum, tmp_path / "density.png")
    assert (tmp_path / "density.png").read_bytes()[:8] == PNG_MAGIC
