"""The run logger's metric buffer (issue 29, items 9 and 10): bounded when the store
stalls, and a failed write sent again before anything after it, so that resume's
``last_logged_step`` never skips a lost step."""

from __future__ import annotations

import threading
import time

from experiments.core.tracking import RunLogger


class Store:
    """A stand-in for ``MlflowClient``: ``log_batch`` fails ``failures`` times, or waits
    for ``release`` (a stalled server); what it stored, in order, is in ``steps``."""

    def __init__(self, failures: int = 0, stalled: bool = False):
        self.failures, self.steps, self.calls = failures, [], 0
        self.release = threading.Event()
        if not stalled:
            self.release.set()

    def log_batch(self, run_id, metrics=(), **kwargs):
        self.calls += 1
        self.release.wait(30)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the server answered 503")
        self.steps += [m.step for m in metrics]

    def set_terminated(self, run_id, status):
        self.status = status


def test_a_failed_batch_is_sent_again_before_the_ones_after_it():
    store = Store(failures=1)
    logger = RunLogger(store, "run")
    logger.log_metrics({"loss": 1.0}, step=1)
    logger.flush()  # this write fails in the background ...
    logger.log_metrics({"loss": 2.0}, step=2)
    logger.flush()  # ... and this one must not land before it
    logger.end()
    assert store.steps == [1, 2], "no step lost, none stored out of order"
    assert store.status == "FINISHED"


def test_a_store_that_stays_down_raises_and_keeps_the_rows():
    store = Store(failures=100)
    logger = RunLogger(store, "run")
    logger.log_metrics({"loss": 1.0}, step=1)
    try:
        logger.wait(attempts=2)
    except RuntimeError as err:
        assert "503" in str(err)
    else:
        raise AssertionError("the error must surface")
    store.failures = 0
    logger.wait()
    assert store.steps == [1]


def test_the_buffer_blocks_past_its_limit_while_a_write_is_pending():
    store = Store(stalled=True)
    logger = RunLogger(store, "run", flush_at=10)
    for step in range(10):
        logger.log_metrics({"loss": 1.0}, step=step + 1)  # the 10th hands them over
    assert store.calls <= 1 and len(logger._buffer) == 0

    def more():
        for step in range(10, 30):
            logger.log_metrics({"loss": 1.0}, step=step + 1)

    producer = threading.Thread(target=more)
    producer.start()
    time.sleep(0.5)
    assert producer.is_alive(), "a stalled store stops the producer ..."
    assert len(logger._buffer) <= 10, "... instead of growing the buffer"
    store.release.set()
    producer.join(10)
    assert not producer.is_alive()
    logger.wait()
    assert store.steps == list(range(1, 31))
