"""What ``experiments.train.trainer.fit`` calls between compiled steps when
``trainer.curvature_every_n_steps`` or ``trainer.weights_every_n_steps`` is on.

At each measurement: ``curvature/lambda_max``, ``curvature/lambda_min``,
``curvature/preconditioned_lambda_max`` (adaptive rules: λ_max of P⁻¹H with P the rule's
per-weight denominator, Cohen et al. 2022; P⁻¹ = effective learning rate / η, and P⁻¹H
has the eigenvalues of the symmetric P^-½ H P^-½, on which Lanczos runs) and, with
``trainer.curvature_spectrum``, ``curvature/trace`` (Hutch++), ``curvature/lambda_max/<layer>``
and a ``Spectrum`` (stochastic Lanczos quadrature); ``curvature/seconds`` is what all of it
took. H is the Hessian or the Gauss–Newton matrix (``trainer.curvature_operator``).
The flat weights are kept along the way (``weights/trajectory.npz``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from custom_optimizers import capabilities
from experiments.curvature.lanczos import block_lambda_max, lanczos, slq
from experiments.curvature.operators import FlatLoss, flat_weights
from experiments.curvature.spectrum import Spectrum
from experiments.curvature.trace import hutchpp
from experiments.core.optim import effective_learning_rates


def extreme_eigenvalues(loss: FlatLoss, theta, iterations: int = 20, seed: int = 0,
                        scale: np.ndarray | None = None,
                        operator: str = "hessian") -> tuple[float, float]:
    """(λ_min, λ_max) of H(θ) (or of the GGN), or of S H S for a positive diagonal
    ``scale`` S (whose eigenvalues are those of S²H: S² = P⁻¹ gives the preconditioned
    Hessian's)."""
    product = loss.operator(operator, theta)
    matvec = product if scale is None else (lambda v: scale * product(scale * v))
    ritz = lanczos(matvec, loss.size, iterations, seed)
    return float(ritz[0]), float(ritz[-1])


def inverse_preconditioner(optimizer) -> np.ndarray | None:
    """P⁻¹ as one flat vector: the optimizer's effective learning rate over η, i.e.
    1/(δ + sqrt(r)) per weight; None for the rules without one (SGD, momentum) or
    before their first step (no second-moment estimate yet)."""
    if int(optimizer.iterations.numpy()) == 0:
        return None
    rates = effective_learning_rates(optimizer)
    if rates is None:
        return None
    lr = float(np.asarray(capabilities.of(optimizer).current_learning_rate()))
    return np.concatenate([np.ravel(np.asarray(r)) for r in rates]).astype(np.float64) / lr


#: ``samples=0`` takes at most this many examples: the whole training split of MNIST or
#: CIFAR-10 in one pass of the flat loss would take gigabytes (ask for more explicitly).
DEFAULT_SAMPLES = 10_000


def subset(n: int, samples: int, seed: int) -> np.ndarray:
    """Indices of the curvature subset: ``samples`` examples (0: all ``n``, or a sample of
    ``DEFAULT_SAMPLES`` when there are more), a seeded sample without replacement
    (sorted, the same every time); all ``n`` when ``samples`` is at least ``n``."""
    samples = samples or min(n, DEFAULT_SAMPLES)
    if samples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1729]).choice(n, samples, replace=False))


class Snapshots(Sequence):
    """Flat float32 weight vectors, written to a temporary file as they are taken, so a
    long run's trajectory does not grow the memory; read back as rows of a read-only
    memory map (``array()``, indexing, iteration)."""

    def __init__(self):
        self._file = None
        self._size = self._count = 0

    def append(self, theta) -> None:
        row = np.ascontiguousarray(theta, dtype=np.float32).ravel()
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="weights-")
            self._size = row.size
        if row.size != self._size:
            raise ValueError(f"a snapshot of {row.size} weights after ones of {self._size}")
        self._file.write(row.tobytes())
        self._count += 1

    def array(self) -> np.ndarray:
        """The snapshots as one (k, n) array, memory-mapped."""
        if not self._count:
            return np.zeros((0, self._size), np.float32)
        self._file.flush()
        return np.memmap(self._file, np.float32, mode="r", shape=(self._count, self._size))

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self.array()[index]

    def __iter__(self):
        return iter(self.array())


def measure_spectrum(loss: FlatLoss, theta, *, step: int = 0, operator: str = "hessian",
                     probes: int = 10, iterations: int = 20, seed: int = 0,
                     blocks: dict | None = None) -> Spectrum:
    """SLQ with ``probes`` probes of ``iterations`` steps, Hutch++ with 3 × ``probes``
    products, and Lanczos (``iterations`` steps) on every block of ``blocks``."""
    matvec = loss.operator(operator, theta)
    quadrature = slq(matvec, loss.size, probes, iterations, seed)
    layers = {name: block_lambda_max(matvec, loss.size, idx, iterations, seed)
              for name, idx in (blocks or {}).items()}
    return Spectrum(step=step, nodes=quadrature.nodes, weights=quadrature.weights,
                    probe=quadrature.probe, trace=hutchpp(matvec, loss.size, 3 * probes, seed),
                    size=loss.size, operator=operator,
                    lambda_max=float(lanczos(matvec, loss.size, iterations, seed)[-1]),
                    layers=layers)


@dataclass
class TrainingWatch:
    """Measurements and weight snapshots taken between training steps.

    ``curvature_every``/``weights_every`` = 0 switch either off; ``every`` is the step
    grid ``fit`` must stop on (their gcd). Calling it at ``step`` returns the metrics to
    log there (empty when nothing was measured). ``blocks`` (layer name -> flat indices)
    are the layers whose sharpness the spectrum measures.
    """

    model: object
    optimizer: object
    loss: FlatLoss
    curvature_every: int = 0
    weights_every: int = 0
    iterations: int = 20
    seed: int = 0
    operator: str = "hessian"
    spectrum: bool = False
    probes: int = 10
    blocks: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    weights: Snapshots = field(default_factory=Snapshots)  # on disk, not in memory
    measurements: list = field(default_factory=list)  # (step, metrics)
    spectra: list = field(default_factory=list)  # Spectrum per measurement

    @property
    def every(self) -> int:
        return int(np.gcd(self.curvature_every, self.weights_every))

    def __call__(self, step: int, final: bool = False) -> dict:
        metrics: dict = {}
        if self._due(self.weights_every, step, final, self.steps):
            self.steps.append(step)
            self.weights.append(flat_weights(self.model).astype(np.float32))
        if self._due(self.curvature_every, step, final, [s for s, _ in self.measurements]):
            metrics = self.measure(step)
            self.measurements.append((step, metrics))
        return metrics

    @staticmethod
    def _due(every: int, step: int, final: bool, done: list) -> bool:
        return bool(every) and (step % every == 0 or final) and step not in done[-1:]

    def measure(self, step: int = 0) -> dict:
        start = time.perf_counter()
        theta = flat_weights(self.model)
        low, high = extreme_eigenvalues(self.loss, theta, self.iterations, self.seed,
                                        operator=self.operator)
        metrics = {"curvature/lambda_max": high, "curvature/lambda_min": low}
        inverse = inverse_preconditioner(self.optimizer)
        if inverse is not None:
            metrics["curvature/preconditioned_lambda_max"] = extreme_eigenvalues(
                self.loss, theta, self.iterations, self.seed, scale=np.sqrt(inverse),
                operator=self.operator)[1]
        if self.spectrum:
            spectrum = measure_spectrum(self.loss, theta, step=step, operator=self.operator,
                                        probes=self.probes, iterations=self.iterations,
                                        seed=self.seed, blocks=self.blocks)
            self.spectra.append(spectrum)
            metrics["curvature/trace"] = spectrum.trace
            metrics.update({f"curvature/lambda_max/{name}": value
                            for name, value in spectrum.layers.items()})
        metrics["curvature/seconds"] = time.perf_counter() - start
        return metrics

    def save_trajectory(self, path) -> None:
        """The kept weights: ``steps`` (k,), ``theta`` (k, n) and the variables' shapes."""
        np.savez_compressed(path, steps=np.asarray(self.steps, np.int64),
                            theta=self.weights.array(),
                            sizes=np.asarray(self.loss.sizes, np.int64))
