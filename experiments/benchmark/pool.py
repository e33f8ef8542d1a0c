"""Running many trials: grouped by (workload, optimizer) so that one ``Engine`` serves a
group, in this process or in a pool of worker processes."""

from __future__ import annotations

from typing import Sequence

from experiments.benchmark.engine import Engine
from experiments.benchmark.trials import DataCache, TrialSpec


def _groups(specs: Sequence[TrialSpec], pending: Sequence[int]) -> list[list[int]]:
    """Pending trials grouped by (workload, optimizer), the costliest group first."""
    groups: dict = {}
    for i in pending:
        s = specs[i]
        groups.setdefault((s.workload.name, s.optimizer.name), []).append(i)
    return sorted(groups.values(), key=lambda g: -sum(specs[i].steps for i in g))


def run_group(specs: Sequence[TrialSpec], group: Sequence[int], data: DataCache, emit) -> None:
    """Run one group's trials in this process; ``emit(index, row)`` after each."""
    first = specs[group[0]]
    engine = Engine(first.workload, first.optimizer, data.get(first.workload),
                    [specs[i].hp for i in group])
    for i in group:
        emit(i, engine.run(specs[i]))


def _quiet_tensorflow(threads: int | None) -> None:
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _worker(specs, tasks, results, threads) -> None:  # a process of the pool
    import traceback

    try:
        _quiet_tensorflow(threads)
        data = DataCache()
        while True:
            group = tasks.get()
            if group is None:
                break
            run_group(specs, group, data, lambda i, row: results.put(("row", i, row)))
        results.put(("done", None, None))
    except BaseException:
        results.put(("error", None, traceback.format_exc()))


def execute(specs: Sequence[TrialSpec], pending: Sequence[int], workers: int, emit) -> None:
    """Run the ``pending`` trials of ``specs``; ``emit(index, row)`` in this process as
    each finishes. ``workers`` > 1: that many processes, each taking the next
    (workload, optimizer) group when it is free; 1: here."""
    groups = _groups(specs, pending)
    workers = max(1, min(workers, len(groups)))
    if workers == 1:
        data = DataCache()
        for group in groups:
            run_group(specs, group, data, emit)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for group in groups:
        tasks.put(group)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(list(specs), tasks, results, 1), daemon=True)
             for _ in range(workers)]
    for p in procs:
        p.start()
    try:
        running = workers
        while running:
            kind, i, payload = results.get()
            if kind == "row":
                emit(i, payload)
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(f"a benchmark worker failed:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
