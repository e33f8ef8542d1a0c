"""The process a training job runs in: seeds, the distribution strategy, stop signals."""

from __future__ import annotations


def seed_everything(seed: int, deterministic: bool) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


class StopOnSignal:
    """While active, SIGINT and SIGTERM ask training to stop at the next step boundary
    (``should_stop()``); a second SIGINT interrupts at once. Only in the main thread."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame):
        import signal

        name = signal.Signals(signum).name
        if self.received == "SIGINT" and name == "SIGINT":
            raise KeyboardInterrupt
        self.received = name

    def should_stop(self) -> bool:
        return self.received is not None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopped(RuntimeError):
    """Training was interrupted by a signal; the run is KILLED and checkpointed."""

    killed = True  # the run's status (experiments.core.run_status)

    def __init__(self, run_id: str | None, signal_name: str, step: int):
        super().__init__(f"{signal_name} at step {step}")
        self.run_id, self.signal_name, self.step = run_id, signal_name, step


def make_strategy(name: str, logical_cpus: int | None = None):
    """The ``tf.distribute`` strategy ``trainer.strategy`` names (made before other TF work).

    ``logical_cpus`` splits the host CPU into that many logical devices first, so that
    ``mirrored`` can be tried, and tested, on a machine without accelerators.
    """
    import tensorflow as tf

    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy_name: str) -> bool:
    """Whether this process logs: always, except the non-chief workers of a cluster."""
    if strategy_name != "multi_worker":
        return True
    from experiments.train.config import tf_config

    cluster = tf_config()
    task = cluster["task"]
    if "chief" in cluster["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0
