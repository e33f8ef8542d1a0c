"""Running many trials: grouped by (workload, optimizer) so that one ``Engine`` serves a
group, in this process or in a pool of worker processes.

The pool is watched, never waited on blindly: each worker has its own pipe, and the
parent waits on the pipes and on the processes' exit at once. A worker that dies (the
OOM killer, a segfault, a ``kill -9``) is reported in one line and the trials of its group
that had not reported are given to a new worker, once; a group whose worker dies twice is
given up (``WorkerLost`` once the other groups are done, every finished trial stored). A
worker stops itself when its parent is gone (SIGKILL of the command), and the parent
stops its workers on the way out (SIGINT, SIGTERM, an error).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections import deque
from typing import Callable, Sequence

from experiments.benchmark.engine import Engine
from experiments.benchmark.trials import DataCache, TrialSpec

#: seconds between a worker's checks that its parent is alive
PARENT_CHECK_S = 1.0
#: seconds a worker gets to end after SIGTERM before SIGKILL
STOP_GRACE_S = 5.0


class WorkerLost(RuntimeError):
    """A group's worker died twice: its trials were not run (the others are stored)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that the workers are stopped on the way out."""

    signal_name = "SIGTERM"


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


def _watch_parent(parent: int) -> None:
    """End this process as soon as ``parent`` is gone (its SIGKILL leaves no orphan)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def _worker(conn, specs, threads, runner, parent) -> None:  # a process of the pool
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the pool
    _watch_parent(parent)
    try:
        if runner is run_group:
            _quiet_tensorflow(threads)
        data = DataCache()
        while True:
            group = conn.recv()
            if group is None:
                break
            runner(specs, group, data, lambda i, row: conn.send(("row", i, row)))
            conn.send(("idle", None, None))
    except (EOFError, BrokenPipeError):  # the parent is gone
        pass
    except BaseException:
        conn.send(("error", None, traceback.format_exc()))


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class _Pool:
    """The worker processes, the group each one runs and what is left of it."""

    def __init__(self, specs, size: int, runner, emit, log):
        import multiprocessing as mp

        self.ctx = mp.get_context("spawn")
        self.specs, self.size, self.runner, self.emit, self.log = specs, size, runner, emit, log
        self.work: dict = {}  # process -> [connection, group index or None, left]
        self.tries: dict[int, int] = {}
        self.queue: deque = deque()
        self.groups: list[list[int]] = []
        self.lost: list[str] = []

    def label(self, g: int) -> str:
        s = self.specs[self.groups[g][0]]
        return f"{s.workload.name} {s.optimizer.name}"

    def start(self) -> None:
        mine, theirs = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, daemon=True, name="benchmark-worker",
                             args=(theirs, list(self.specs), 1, self.runner, os.getpid()))
        p.start()
        theirs.close()
        self.work[p] = [mine, None, []]

    def give(self, p) -> None:
        """The next group to the idle worker ``p``; nothing left: tell it to end."""
        conn, _, _ = state = self.work[p]
        if self.queue:
            g, left = self.queue.popleft()
            state[1:] = [g, list(left)]
        else:
            state[1:] = [None, []]
        try:
            conn.send(state[2] or None)
        except OSError:  # it has just died: its exit is seen next, and the group retried
            pass

    def receive(self, p) -> bool:
        """Every message ``p`` has sent; False when its pipe is closed."""
        state = self.work[p]
        conn = state[0]
        try:
            while conn.poll():
                kind, i, payload = conn.recv()
                if kind == "row":
                    state[2].remove(i)
                    self.emit(i, payload)
                elif kind == "idle":
                    self.give(p)
                else:
                    raise RuntimeError(f"a benchmark worker failed:\n{payload}")
        except (EOFError, OSError):
            return False
        return True

    def ended(self, p) -> None:
        """``p`` has exited: if it was running a group, report it and retry its rest once."""
        conn, g, left = self.work.pop(p)
        conn.close()
        if p.is_alive():  # its pipe closed, yet it runs: end it
            p.kill()
        p.join()
        if g is None or not left:
            if p.exitcode != 0 and self.queue:  # died between groups: replace it
                self.start()
            return
        n = len(left)
        if self.tries.get(g, 0) >= 1:
            self.lost.append(f"{self.label(g)} ({n} trials)")
            self.log(f"A benchmark worker (pid {p.pid}) died again ({_how(p.exitcode)}) "
                     f"running {self.label(g)}: giving up its {n} trials.")
        else:
            self.tries[g] = 1
            self.queue.appendleft((g, left))
            self.log(f"A benchmark worker (pid {p.pid}) died ({_how(p.exitcode)}) running "
                     f"{self.label(g)}: its {n} unfinished trials go to a new worker, once.")
        if self.queue and len(self.work) < self.size:
            self.start()
            self.give(list(self.work)[-1])

    def run(self, groups: list[list[int]]) -> None:
        from multiprocessing.connection import wait

        self.groups = groups
        self.queue.extend((g, group) for g, group in enumerate(groups))
        for _ in range(self.size):
            self.start()
        for p in list(self.work):
            self.give(p)
        while self.work:
            by_handle = {}
            for p, (conn, _, _) in self.work.items():
                by_handle[conn] = by_handle[p.sentinel] = p
            for handle in wait(list(by_handle)):
                p = by_handle[handle]
                if p not in self.work:
                    continue
                if not self.receive(p) or handle == p.sentinel:
                    self.receive(p)  # what it sent before it ended
                    p.join(STOP_GRACE_S)
                    self.ended(p)

    def stop(self) -> None:
        """End every worker still running: SIGTERM, then SIGKILL after a grace period."""
        procs = list(self.work)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(STOP_GRACE_S)
            if p.is_alive():
                p.kill()
                p.join()
            self.work[p][0].close()
        self.work.clear()


def _on_sigterm(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_raises():
    """While active (in the main thread), SIGTERM raises ``Terminated``: the ``finally``
    blocks run (workers stopped, the parent run ended KILLED) instead of a silent death."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute(specs: Sequence[TrialSpec], pending: Sequence[int], workers: int, emit,
            log: Callable[[str], None] | None = None, runner=run_group) -> None:
    """Run the ``pending`` trials of ``specs``; ``emit(index, row)`` in this process as
    each finishes. ``workers`` > 1: that many processes, each taking the next
    (workload, optimizer) group when it is free (see the module docstring); 1: here.
    ``log`` gets the one-line reports of dead workers (default: stderr); ``runner`` runs a
    group (``run_group``; a module-level function: the tests inject faults). SIGTERM
    raises ``Terminated`` here (in the main thread), after the workers are stopped."""
    groups = _groups(specs, pending)
    workers = max(1, min(workers, len(groups)))
    with sigterm_raises():
        if workers == 1:
            data = DataCache()
            for group in groups:
                runner(specs, group, data, emit)
            return
        pool = _Pool(specs, workers, runner, emit,
                     log or (lambda line: print(line, file=sys.stderr, flush=True)))
        try:
            pool.run(groups)
        finally:
            pool.stop()
    if pool.lost:
        raise WorkerLost(f"benchmark workers died twice on {', '.join(pool.lost)}: those "
                         f"trials were not run; every other trial is stored, and the same "
                         "command resumes")
