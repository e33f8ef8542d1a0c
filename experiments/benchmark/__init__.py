"""The AlgoPerf-style optimizer benchmark (``python -m experiments.benchmark``).

Protocol: ``docs/benchmark-protocol.md``. Modules:

- ``workloads``: ``conf/workload/*.yaml`` and the optimizers (registry rules, Keras twins);
- ``search``: the paired quasi-random draws and the trial seeds, one stream per use;
- ``trials``: what a trial is and the trainer's path; ``engine``: the fast path;
  ``pool``: the worker processes (watched: a dead one is reported and its group retried);
- ``store``: MLflow (a parent run per benchmark, a child run per trial, resume);
  ``files``: the trial journal when tracking is off, and files replaced whole;
- ``scoring``: times, profiles, scores and their paired bootstrap (the descriptive
  leaderboard; tables only);
- ``verdicts``: two rules compared, paired and censoring-aware; ``stats``: its t-test and
  Holm; ``claims``: the lecture's and today's claims, their verdicts and power;
  ``power``: the simulation behind the power (``python -m experiments.benchmark.power``);
- ``report``: leaderboard, claims and the results page; ``figures``: its plots;
  ``python -m experiments.benchmark.report`` rewrites them from a stored run;
- ``settings``: the checked settings; ``app``: the run, the calibration;
  ``__main__``: the command.

Nothing imported here loads TensorFlow.
"""

from experiments.benchmark.app import (benchmark_specs, calibrate, curves_frame, main_entry,
                                       results_frame, run_benchmark, run_trials)
from experiments.benchmark.search import sample, to_value, trial_seed
from experiments.benchmark.settings import MODES, RULESETS, Settings, check, settings
from experiments.benchmark.store import TrialStore
from experiments.benchmark.engine import Engine
from experiments.benchmark.trials import DataCache, TrialSpec, plan_trials, run_trial_with_trainer
from experiments.benchmark.workloads import (METRICS, BenchmarkError, Optimizer, Workload,
                                             all_optimizers, exact_pairs, load_workload,
                                             select_optimizers, workload_names, write_target)

__all__ = ["MODES", "RULESETS", "METRICS", "Settings", "Workload", "Optimizer", "TrialSpec",
           "TrialStore", "DataCache", "Engine", "BenchmarkError", "settings", "check",
           "benchmark_specs", "calibrate", "main_entry", "results_frame", "curves_frame",
           "run_benchmark", "run_trials", "sample", "to_value", "trial_seed", "plan_trials",
           "run_trial_with_trainer", "all_optimizers", "exact_pairs", "load_workload",
           "select_optimizers", "workload_names", "write_target"]
