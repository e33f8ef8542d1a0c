"""``python -m experiments.compare``: compare optimizers over the runs of a sweep.

    python -m experiments.compare --sweep latest             # the newest multirun
    python -m experiments.compare --experiment optimizer-lab --dataset digits \
        --optimizers adam,keras_adam --target-loss 0.3
    python -m experiments.compare --filter "metrics.test_accuracy > 0.9"

Runs are selected with MLflow's search API (``MlflowClient.search_runs`` and
``get_metric_history``), never by reading the store's database, so any tracking server
works. Finished runs are grouped per optimizer (and per dataset/model when the selection
holds several, or per ``--group-by`` keys) and summarised over their seeds: mean, standard
deviation and count of the final and best validation loss and accuracy, the test accuracy,
the steps until the training loss first reaches a target, and the time per epoch. Each
lecture optimizer stands beside its Keras counterpart with the difference (custom − keras).

The table is printed and written as CSV and Markdown next to PNG plots (loss per step and
per epoch, gradient norm, effective learning rate; mean over seeds with a band), which are
also logged to a new MLflow run tagged ``run_type=comparison`` in the same experiment.
Comparison runs are never selected themselves.

The package: ``selection`` (which runs), ``summary`` (one summary per run, the grouped
rows), ``tables`` (text, Markdown, CSV), ``plots`` and ``command`` (``compare`` and the
command line). A plain argparse command rather than a Hydra app: MLflow filter strings are
full of quotes, ``=`` and spaces, which Hydra's override grammar would make the user escape.
"""

from experiments.compare.command import Result, compare, main, parse_args
from experiments.compare.selection import (COMPARISON, RUN_TYPE_TAG, CompareError, Selection,
                                           filter_strings, select_runs, sweep_spellings)

__all__ = ["COMPARISON", "RUN_TYPE_TAG", "CompareError", "Result", "Selection", "compare",
           "filter_strings", "main", "parse_args", "select_runs", "sweep_spellings"]
