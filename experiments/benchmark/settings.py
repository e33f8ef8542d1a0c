"""The benchmark's settings: ``settings(cfg)`` checks a composed ``conf/benchmark.yaml``
without TensorFlow or MLflow and raises ``BenchmarkError`` (a ``ConfigError``) with one
line; ``experiments.core.cli`` refuses through ``check`` before Hydra runs the app."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from experiments.benchmark.workloads import (MAX_STEPS, PROJECT_ROOT, WORKLOAD_DIR,
                                             BenchmarkError, load_workload, select_optimizers)


MODES = ("benchmark", "tuned", "defaults", "calibrate")


RULESETS = ("tuned", "defaults")


#: Every key of conf/benchmark.yaml (and of a conf/preset); None: a free value.
SCHEMA = {
    "mode": None, "benchmark_id": None, "optimizers": None, "workloads": None,
    "workload_dir": None, "seed": None, "shard": None, "workers": None, "eval_every": None,
    "output_dir": None,
    "scoring": {"bootstrap": None, "r_max": None, "level": None, "delta": None,
                "power_sims": None},
    "tracking": {"enabled": None, "uri": None, "experiment_name": None},
    "preset": {"name": None, "description": None, "workloads": None, "optimizers": None,
               "budget": None, "stop_at_target": None,
               "tuned": {"trials": None, "studies": None}, "at_defaults": {"seeds": None},
               "calibrate": {"references": None, "trials": None, "seeds": None,
                             "budget": None}},
}


def check_keys(c: dict, schema: dict = SCHEMA, prefix: str = "") -> None:
    """Refuse a key the benchmark does not read (``+nope=1``, ``+preset.tuned.k=3``)."""
    for key, value in c.items():
        if key not in schema:
            raise BenchmarkError(f"{prefix}{key} is not a key of the benchmark's config: "
                                 f"valid keys{' under ' + prefix[:-1] if prefix else ''} are "
                                 f"{', '.join(schema)}")
        if isinstance(schema[key], dict):
            if not isinstance(value, dict):
                raise BenchmarkError(f"{prefix}{key} must be a mapping of "
                                     f"{', '.join(schema[key])}")
            check_keys(value, schema[key], f"{prefix}{key}.")


@dataclass
class Settings:
    """The checked config: what to run and where."""

    mode: str
    benchmark_id: str
    workloads: list
    optimizers: list
    preset: dict
    seed: int
    shard: tuple[int, int] | None
    workers: int
    eval_every: int | None
    output_dir: Path
    bootstrap: int
    r_max: float
    level: float
    uri: str | None
    experiment: str
    overrides: list = field(default_factory=list)
    delta: float = 0.15
    power_sims: int = 1000


def _shard(value) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise BenchmarkError(f"shard={value!r} is not valid: write i/n with 0 <= i < n, "
                             "e.g. shard=0/2")
    return int(m.group(1)), int(m.group(2))


#: upper bounds of the integer settings (a larger value is a typo, or weeks of work)
MAX = {"preset.tuned.trials": 10_000, "preset.tuned.studies": 1_000,
       "preset.at_defaults.seeds": 1_000, "preset.calibrate.trials": 10_000,
       "preset.calibrate.seeds": 1_000, "scoring.bootstrap": 1_000_000,
       "scoring.power_sims": 1_000_000, "workers": 512,
       "eval_every": MAX_STEPS, "seed": 2**32 - 1}
#: the most trials one benchmark may plan
MAX_TRIALS = 1_000_000


def _integer(key: str, value, low: int = 1) -> int:
    high = MAX.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low \
            or (high is not None and value > high):
        raise BenchmarkError(f"{key}={value!r} must be an integer "
                             + (f"in [{low}, {high}]" if high is not None else f">= {low}"))
    return value


def writable_folder(key: str, folder: Path) -> None:
    """Refuse ``folder`` unless it exists as a writable folder or can be created: a
    folder is made and removed again in its nearest existing parent (nothing is left)."""
    import tempfile

    folder = folder.absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise BenchmarkError(f"{key}={folder} cannot be created: {existing} is a file")
    try:
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as err:
        raise BenchmarkError(f"{key}={folder} cannot be created: {err.strerror} in "
                             f"{existing}") from None


def _number(key: str, value, low: float, high: float, low_open=True, high_open=False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and \
             (value < high if high_open else value <= high)
    if not ok:
        raise BenchmarkError(f"{key}={value!r} must be a number in "
                             f"{'(' if low_open else '['}{low:g}, {high:g}"
                             f"{')' if high_open else ']'}")
    return float(value)


def settings(cfg) -> Settings:
    """Check a composed ``conf/benchmark.yaml``; ``BenchmarkError`` with one line."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("hydra", None)
    check_keys(c)
    if c["mode"] not in MODES:
        raise BenchmarkError(f"mode={c['mode']!r} is not valid: choose one of "
                             f"{', '.join(MODES)}")
    shard = _shard(c["shard"])
    preset = c["preset"]
    _integer("seed", c["seed"], 0)
    for key, value in (("preset.tuned.trials", preset["tuned"]["trials"]),
                       ("preset.tuned.studies", preset["tuned"]["studies"]),
                       ("preset.at_defaults.seeds", preset["at_defaults"]["seeds"]),
                       ("preset.calibrate.trials", preset["calibrate"]["trials"]),
                       ("preset.calibrate.seeds", preset["calibrate"]["seeds"]),
                       ("scoring.bootstrap", c["scoring"]["bootstrap"])):
        _integer(key, value)
    _integer("scoring.power_sims", c["scoring"]["power_sims"], 0)
    for key, value in (("preset.budget", preset["budget"]),
                       ("preset.calibrate.budget", preset["calibrate"]["budget"])):
        _number(key, value, 0, 10)
    r_max = _number("scoring.r_max", c["scoring"]["r_max"], 1, 1e9)
    level = _number("scoring.level", c["scoring"]["level"], 0, 1, high_open=True)
    delta = _number("scoring.delta", c["scoring"]["delta"], 0, 1, high_open=True)
    if not isinstance(preset["stop_at_target"], bool):
        raise BenchmarkError(f"preset.stop_at_target={preset['stop_at_target']!r} must be "
                             "true or false")
    workers = c["workers"]
    if workers is None:
        workers = os.cpu_count() or 1
    _integer("workers", workers)
    eval_every = c["eval_every"]
    if eval_every is not None:
        _integer("eval_every", eval_every)
    folder = Path(c["workload_dir"]) if c.get("workload_dir") else WORKLOAD_DIR
    names = c["workloads"] or preset["workloads"]
    if isinstance(names, str) or not names:
        raise BenchmarkError(f"workloads={names!r} is not valid: give a list of "
                             "conf/workload names, e.g. workloads=[digits_mlp]")
    workloads = [load_workload(n, folder) for n in names]
    choice = c["optimizers"] if c["optimizers"] is not None else preset["optimizers"]
    optimizers = select_optimizers(choice)
    per_cell = preset["tuned"]["trials"] * preset["tuned"]["studies"] + \
        preset["at_defaults"]["seeds"]
    if len(workloads) * len(optimizers) * per_cell > MAX_TRIALS:
        raise BenchmarkError(f"{len(workloads)} workloads x {len(optimizers)} optimizers x "
                             f"{per_cell} trials each is over {MAX_TRIALS} trials: lower "
                             "preset.tuned.trials, preset.tuned.studies or "
                             "preset.at_defaults.seeds")
    if c["mode"] == "calibrate":
        select_optimizers(preset["calibrate"]["references"])
    if c["mode"] in ("benchmark", "tuned", "defaults"):
        missing = [w.name for w in workloads if w.target is None]
        if missing:
            raise BenchmarkError(f"workload(s) {', '.join(missing)} have no target yet: run "
                                 "python -m experiments.benchmark mode=calibrate first")
    bid = c["benchmark_id"] or f"{preset['name']}-{c['mode']}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(bid)):
        raise BenchmarkError(f"benchmark_id={bid!r} is not valid: use letters, digits, "
                             "'.', '_' and '-'")
    experiment = c["tracking"]["experiment_name"]
    if not isinstance(experiment, str) or not experiment.strip() or len(experiment) > 500:
        raise BenchmarkError(f"tracking.experiment_name={experiment!r} is not valid: give a "
                             "name of 1 to 500 characters")
    uri = None
    if c["tracking"]["enabled"]:
        from experiments.core import tracking

        uri = tracking.resolve_tracking_uri(c["tracking"]["uri"])
    out = Path(c["output_dir"]) if c["output_dir"] else PROJECT_ROOT / "outputs" / "benchmark" / bid
    writable_folder("output_dir", out)
    if c["mode"] == "calibrate":
        unwritable = [w.path.name for w in workloads if not os.access(w.path, os.W_OK)]
        if unwritable:
            raise BenchmarkError(f"mode=calibrate writes the targets into {folder}, but "
                                 f"{', '.join(unwritable)} cannot be written")
    return Settings(c["mode"], bid, workloads, optimizers, preset, int(c["seed"]), shard,
                    int(workers), eval_every, out, int(c["scoring"]["bootstrap"]), r_max,
                    level, uri, experiment, delta=delta,
                    power_sims=int(c["scoring"]["power_sims"]))


def check(cfg) -> None:
    """``settings`` for ``experiments.core.cli.check_command_line``."""
    settings(cfg)
