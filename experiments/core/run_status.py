"""Ending an MLflow run with the status that says how the work inside it ended."""

from __future__ import annotations

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


def failure_tags(err: BaseException) -> dict[str, str]:
    """Why a run did not finish: ``failure_reason`` (``interrupted`` for Ctrl-C, else the
    error's type) and ``failure_message``."""
    if isinstance(err, KeyboardInterrupt):
        return {"failure_reason": "interrupted", "interrupted_by": "SIGINT"}
    return {"failure_reason": type(err).__name__, "failure_message": str(err)[:500]}


class ended_run:
    """``with ended_run(logger) as run:`` ends ``logger``'s run when the block is left.

    FINISHED when the block completes; KILLED on Ctrl-C or an error whose ``killed`` is
    true; FAILED on any other error. A run that did not finish is first tagged with
    ``run.failure_tags`` when the block set them (a divergence, a signal), else with
    ``failure_tags(error)``. ``run.status`` holds the status afterwards; the error itself
    propagates. ``logger=None`` (an untracked job) only records the status.
    """

    def __init__(self, logger):
        self.logger = logger
        self.status = FAILED
        self.failure_tags: dict | None = None

    def __enter__(self) -> "ended_run":
        return self

    def __exit__(self, exc_type, err, tb) -> bool:
        if err is None:
            self.status = FINISHED
        elif isinstance(err, KeyboardInterrupt) or getattr(err, "killed", False):
            self.status = KILLED
        if self.logger is not None:
            try:
                if err is not None:
                    self.logger.set_tags(self.failure_tags or failure_tags(err))
            finally:
                self.logger.end(self.status)
        return False
