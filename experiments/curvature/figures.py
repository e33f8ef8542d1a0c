"""Pictures of the Hessian's spectrum, drawn from stored ``Spectrum`` measurements.

- ``density_plot(spectrum, path)``: one measurement's density Σ w_j N(λ; θ_j, σ²) on a
  log-density axis, as Ghorbani, Krishnan, Xiao (2019) draw it, σ tied to the spread of
  the nodes (``kernel_width``) and the outliers right of the bulk marked (each run's
  ``curvature/spectrum/step_<N>.png``);
- ``spectrum_figure(runs, path)``: the ``spectrum_real`` picture of the README, from the
  ``curvature/spectrum/*.npz`` artifacts of tracked runs only (no retraining): the density
  at initialisation and after training per optimizer, the trace over training (every
  seed), and each layer's λ_max at initialisation and at the end (mean ± sd over seeds).
  ``runs`` maps a label (an optimizer option) to run ids; ``find_runs`` gives it from a
  store (the runs of ``python -m experiments.train -m +experiment=spectrum_real ...``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from experiments.curvature.spectrum import Spectrum
from experiments.core.plotting import option_style, pyplot

FLOOR = 1e-7  # the density axis starts this far under its peak


def _grid(spectra, points: int = 4000) -> np.ndarray:
    low = min(float(s.nodes.min()) for s in spectra)
    high = max(float(s.nodes.max()) for s in spectra)
    pad = 0.05 * (high - low or 1.0)
    return np.linspace(low - pad, high + pad, points)


def kernel_width(spectrum: Spectrum) -> float:
    """The Gaussian broadening σ tied to the spread of the Lanczos nodes: the width of the
    bulk (its lowest node to its right edge, ``Spectrum.bulk_edge``) over the number of
    nodes one probe places there. Narrower, and the bulk reads as a comb of one spike per
    node (the nodes of m Lanczos steps sit about width/m apart); the outliers right of the
    bulk are further apart than σ, so they stay separate peaks."""
    edge = spectrum.bulk_edge()
    probes = int(spectrum.probe.max()) + 1
    per_probe = max(1, int(np.sum(spectrum.nodes <= edge)) // probes)
    return max(edge - float(spectrum.nodes.min()), 1e-12) / per_probe


def outlier_values(spectrum: Spectrum) -> np.ndarray:
    """The eigenvalues right of the bulk: the top Ritz values, as many as the probes
    count (their median count), averaged over the probes (they agree once converged)."""
    count = int(np.median(spectrum.outliers()))
    return spectrum.top(count).mean(axis=0) if count else np.empty(0)


def _draw_density(ax, spectrum: Spectrum, grid, label: str = "", **style) -> float:
    """The density with ``kernel_width`` broadening on a log axis, the outliers marked as
    ticks above it; returns the density's peak."""
    sigma = kernel_width(spectrum)
    density = spectrum.density(grid, sigma)
    outliers = outlier_values(spectrum)
    ax.semilogy(grid, np.maximum(density, 1e-300), **style,
                label=f"{label}{', ' if label else ''}{len(outliers)} outliers, σ = {sigma:.2g}")
    peak = float(density.max())
    if len(outliers):
        heights = np.interp(outliers, grid, density)
        ax.vlines(outliers, heights * 1.5, heights * 12, colors=style.get("color"),
                  lw=1.0, alpha=0.9)
        ax.plot(outliers, heights * 12, "v", ms=4, color=style.get("color"))
    return peak


def density_plot(spectrum: Spectrum, path, title: str = "") -> None:
    """The spectral density of one measurement (Gaussian broadening of ``kernel_width``,
    log density), its outliers marked."""
    plt = pyplot()
    grid = _grid([spectrum])
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    peak = _draw_density(ax, spectrum, grid, f"step {spectrum.step}", color="tab:blue", lw=1.2)
    ax.set_ylim(peak * FLOOR, peak * 30)
    operator = "Gauss–Newton matrix" if spectrum.operator == "ggn" else "Hessian"
    ax.set_xlabel(f"eigenvalue λ of the {operator} (loss units per weight²)")
    ax.set_ylabel("spectral density (per unit λ, log scale)")
    ax.set_title(title or f"step {spectrum.step}: trace {spectrum.trace:.3g}, "
                          f"λ_max {spectrum.lambda_max:.3g}, n = {spectrum.size}")
    ax.legend(fontsize=8, title="▼ outliers right of the bulk", title_fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def load_run(run_id: str, tracking_uri: str) -> list[Spectrum]:
    """The spectra a run logged (``curvature/spectrum/*.npz``), by step."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars
    client = MlflowClient(tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(client.download_artifacts(run_id, "curvature/spectrum", tmp))
        spectra = [Spectrum.load(p) for p in folder.glob("step_*.npz")]
    return sorted(spectra, key=lambda s: s.step)


def find_runs(tracking_uri: str, challenge: str = "spectrum_real",
              experiment: str = "challenges", operator: str = "hessian") -> dict[str, list[str]]:
    """Finished runs tagged ``challenge`` that measured ``operator``, by optimizer option,
    oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = client.search_runs([found.experiment_id],
                              filter_string=f"tags.challenge = '{challenge}' and "
                                            "attributes.status = 'FINISHED' and "
                                            "params.`trainer.curvature_operator` = "
                                            f"'{operator}'",
                              order_by=["attributes.start_time ASC"])
    out: dict[str, list[str]] = {}
    for r in runs:
        out.setdefault(r.data.tags["optimizer"], []).append(r.info.run_id)
    return out


def spectrum_figure(runs, path, tracking_uri: str | None = None,
                    classes: int | None = None) -> Path:
    """The three-panel spectrum picture of ``runs`` ({label: [run id or list of
    ``Spectrum``]}, or None: ``find_runs`` in ``tracking_uri``), written to ``path``;
    ``classes``: the number of classes C, whose C − 1 outliers the title names."""
    from experiments.core import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    if runs is None:
        runs = find_runs(uri)
    if not runs:
        raise ValueError("no runs with spectra: train them first with "
                         "python -m experiments.train -m +experiment=spectrum_real "
                         "optimizer=sgd,adam trainer.seed=0,1,2")
    loaded = {label: [load_run(r, uri) if isinstance(r, str) else r for r in ids]
              for label, ids in runs.items()}
    plt = pyplot()
    fig, ((start, end), (trace, layers)) = plt.subplots(2, 2, figsize=(13, 8.5), dpi=100)
    first = next(iter(loaded.values()))[0][0]
    finals = {label: seeds[0][-1] for label, seeds in loaded.items()}
    expected = f"; C − 1 = {classes - 1} expected for {classes} classes" if classes else ""
    panels = [(start, {"initialisation": first}, f"at initialisation (step {first.step})"),
              (end, finals, f"after training (step {max(f.step for f in finals.values())})")]
    for ax, spectra, when in panels:
        grid = _grid(list(spectra.values()))
        peak = max(_draw_density(ax, spectrum, grid, label,
                                 **({"color": "black", "lw": 1.0} if label == "initialisation"
                                    else option_style(label)))
                   for label, spectrum in spectra.items())
        ax.set_ylim(peak * FLOOR, peak * 30)
        ax.set_xlabel(f"eigenvalue λ of the {first.operator} (n = {first.size} weights)")
        ax.set_ylabel("spectral density (per unit λ, log scale)")
        ax.set_title(f"density {when}, first seed\n▼ the outliers right of the bulk{expected}",
                     fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    for label, seeds in loaded.items():
        for i, spectra in enumerate(seeds):
            trace.plot([s.step for s in spectra], [s.trace for s in spectra], marker="o",
                       ms=3, alpha=0.8, **option_style(label), label=label if i == 0 else None)
    trace.set_xlabel("optimizer step")
    trace.set_ylabel("trace of the Hessian (Hutch++)")
    trace.set_title(f"trace over training, {max(len(s) for s in loaded.values())} seeds")
    trace.legend(fontsize=8)
    names = list(first.layers)
    x = np.arange(len(names))
    bars = [("initialisation", [s[0] for seeds in loaded.values() for s in seeds], "black")]
    bars += [(label, [s[-1] for s in seeds], option_style(label)["color"])
             for label, seeds in loaded.items()]
    width = 0.8 / len(bars)
    for i, (label, spectra, colour) in enumerate(bars):
        values = np.array([[s.layers[n] for n in names] for s in spectra])
        layers.bar(x + (i - (len(bars) - 1) / 2) * width, values.mean(0), width,
                   yerr=values.std(0, ddof=1) if len(values) > 1 else None, color=colour,
                   alpha=0.75, capsize=2, label=label)
    layers.set_xticks(x, names)
    layers.set_xlabel("layer (its kernel and bias)")
    layers.set_yscale("log")
    layers.set_ylabel("λ_max of the layer's diagonal block (log scale)")
    layers.set_title("layer sharpness (mean ± sd over seeds)")
    layers.legend(fontsize=8)
    for ax in (start, end, trace, layers):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
