"""Time one optimizer step of each custom optimizer beside its Keras built-in counterpart.

Usage::

    python -m speed.optimizer_step [--sizes 1000000 10000000] [--repeats N] [--quick]
                                        [--control RULE | --no-control]

For each rule of the registry (``custom_optimizers.rules``) with a Keras twin, the custom
optimizer and the Keras built-in that ``experiments.core.optim.keras_arguments`` translates the
same lecture hyperparameters into apply the same fixed float32 gradients to float32
parameters (``size`` elements split over a few tensors) inside ``tf.function``, once without
and once with ``jit_compile=True``.

Machines here are shared and noisy, so every comparison is measured side by side in one
process: both optimizers are warmed up, then timed interleaved (custom, built-in, built-in,
custom, ...), each timing running the same number of steps, enough to last
``MIN_SAMPLE_SECONDS``; a NumPy copy of the same traffic is timed after them. Reported are the median milliseconds per step, the
median of the per-repeat ratios custom/built-in with a 95% bootstrap confidence interval
of that median and the ratios' interquartile range, the ratio of the fastest steps, and
the achieved memory bandwidth of each step. A control row per size and mode times one
built-in against a second copy of itself by the same method: two equally fast optimizers
read like that on this machine (its interval is the noise floor of every other row).

Bandwidth: a rule must at least read and write every array it touches once per step, e.g.
Adam reads g, w, m, v and writes w, m, v: 7 × 4 bytes per float32 parameter; plain SGD
reads g, w and writes w: 3 × 4 bytes. That traffic divided by the step time is compared
with ``np.copyto`` of an array of the same number of bytes, whose traffic is counted the
same way (every byte read once and written once: twice the array's size).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable, Sequence

import numpy as np

from experiments.core import markdown, registry
from speed.machine import load_average, machine_info, median_interval, quantile
from speed.step_problem import (N_TENSORS, calls_per_sample, make_problem, make_step,
                                     optimizer_pair, step_work, time_calls)


DEFAULT_SIZES = (1_000_000, 10_000_000)
DEFAULT_REPEATS = 200
QUICK_REPEATS = 40
# Many short timings rather than a few long ones: the VM's noise comes in bursts shorter
# than a second, which a ratio of two adjacent 5 ms timings mostly sees in both or neither.
MIN_SAMPLE_SECONDS = 0.005
# An even number: half the pairs create (and allocate the state of) the custom optimizer
# first, half the built-in, because where its state lands in memory moves a step by a few
# percent (measured: built-in against built-in, the first-created was 2-5% slower).
ROUNDS = 4
WARMUP_STEPS = 3

RULES = tuple(rule.name for rule in registry.rules() if rule.keras is not None)
# The A/A control: this rule's built-in timed against a second copy of itself, by the same
# method. Its ratio is 1 by construction, so its spread is what "as fast" looks like here.
CONTROL_RULE = "adam"


# Arrays each rule must read and write once per parameter and step (g: the gradient; the
# rule's state as its NumPy reference names it).
TRAFFIC = {
    rule.name: (" ".join(("g", "w", *rule.reference.state_names)),
                " ".join(("w", *rule.reference.state_names)))
    for rule in registry.rules() if rule.name in RULES
}
FLOAT32_BYTES = 4


def bytes_per_parameter(rule: str) -> int:
    """Minimal bytes one step of ``rule`` reads plus writes per float32 parameter."""
    reads, writes = TRAFFIC[rule]
    return FLOAT32_BYTES * (len(reads.split()) + len(writes.split()))


def traffic_label(rule: str) -> str:
    """E.g. ``g,w,v,r → w,v,r = 7×4``: arrays read → arrays written, times float32 bytes."""
    reads, writes = TRAFFIC[rule]
    n = len(reads.split()) + len(writes.split())
    return f"{','.join(reads.split())} → {','.join(writes.split())} = {n}×4"


@dataclasses.dataclass(frozen=True)
class Row:
    """One comparison: a rule, a size, XLA on or off."""

    rule: str
    size: int
    xla: bool
    bytes_per_param: int
    custom_ms: float  # median ms per step
    keras_ms: float
    ratio: float  # median of per-repeat custom/keras ratios
    ratio_ci_low: float  # 95% bootstrap confidence interval of that median
    ratio_ci_high: float
    ratio_q1: float
    ratio_q3: float
    ratio_min: float
    ratio_max: float
    best_ratio: float  # fastest custom step / fastest built-in step
    copy_gbps: float  # np.copyto bandwidth, read + write bytes per second / 1e9
    custom_gbps: float  # rule's minimal traffic / custom step time / 1e9
    keras_gbps: float
    control: bool = False  # the built-in against a second copy of itself: what "equal" reads
    # With XLA, what the compiled step does per parameter (``compiled_work``): bytes read
    # plus written, and element-wise operations; None without XLA.
    custom_work: tuple[float, float] | None = None
    keras_work: tuple[float, float] | None = None

    @property
    def custom_copy_fraction(self) -> float:
        return self.custom_gbps / self.copy_gbps

    @property
    def keras_copy_fraction(self) -> float:
        return self.keras_gbps / self.copy_gbps


def compare(rule: str, size: int, xla: bool, repeats: int,
            min_sample_seconds: float = MIN_SAMPLE_SECONDS, rounds: int = ROUNDS,
            control: bool = False) -> Row:
    """Custom vs built-in interleaved (and a NumPy copy of the same traffic after them); with
    ``control``, the built-in against a second built-in in the custom one's place.

    The repeats are spread over ``rounds`` fresh pairs of optimizers, created in turn
    custom first and built-in first, so that where their state happens to sit in memory
    averages out too.
    """
    # Both update the same parameters with the same gradients; only their own state lives
    # in separate buffers. (On this VM the same code runs up to ~10% apart on different
    # buffers of the same size, which would swamp the differences being measured.)
    variables, grads = make_problem(size, seed=0)
    traffic = bytes_per_parameter(rule) * size
    src = np.ones(traffic // FLOAT32_BYTES, dtype=np.float32)
    dst = np.empty_like(src)

    def run_copy():
        np.copyto(dst, src)

    repeats = max(1, repeats)
    rounds = max(1, min(rounds, repeats))
    samples = {"copy": [], "custom": [], "keras": []}
    calls, work = {}, {}
    i = 0
    for round_ in range(rounds):
        custom, builtin = optimizer_pair(rule, control)
        first, second = ("custom", "keras") if round_ % 2 == 0 else ("keras", "custom")
        opts = {"custom": custom, "keras": builtin}
        fns = {"copy": run_copy}
        for name in (first, second):  # builds the optimizer: allocates its state
            fns[name] = make_step(opts[name], variables, grads, xla)
        for fn in fns.values():  # trace, compile, build, fault in pages
            for _ in range(WARMUP_STEPS):
                fn()
        if xla and not work:
            work = {name: step_work(fns[name], size, N_TENSORS) for name in ("custom", "keras")}
        if not calls:
            calls = {name: calls_per_sample(fn, min_sample_seconds) for name, fn in fns.items()}
            # Both optimizers run the same number of steps per timing, so that a timing's
            # first step (which may find other data in the caches) weighs the same in both.
            calls["custom"] = calls["keras"] = max(calls["custom"], calls["keras"])
        # custom, built-in, built-in, custom, ...: the optimizers take turns at going first.
        # The copy is timed after them: run between them, it evicted what the caches held
        # and doubled the spread of the ratios of fast (1M-parameter, XLA) steps.
        n = repeats // rounds + (round_ < repeats % rounds)
        for _ in range(n):
            for name in ("custom", "keras") if i % 2 == 0 else ("keras", "custom"):
                samples[name].append(time_calls(fns[name], calls[name]))
            i += 1
        samples["copy"] += [time_calls(fns["copy"], calls["copy"]) for _ in range(n)]

    ratios = [c / k for c, k in zip(samples["custom"], samples["keras"])]
    ci_low, ci_high = median_interval(ratios)
    custom_s = float(np.median(samples["custom"]))
    keras_s = float(np.median(samples["keras"]))
    copy_s = float(np.median(samples["copy"]))
    return Row(
        rule=rule,
        size=size,
        xla=xla,
        bytes_per_param=bytes_per_parameter(rule),
        custom_ms=custom_s * 1e3,
        keras_ms=keras_s * 1e3,
        ratio=quantile(ratios, 0.5),
        ratio_ci_low=ci_low,
        ratio_ci_high=ci_high,
        ratio_q1=quantile(ratios, 0.25),
        ratio_q3=quantile(ratios, 0.75),
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        best_ratio=min(samples["custom"]) / min(samples["keras"]),
        copy_gbps=2 * traffic / copy_s / 1e9,
        custom_gbps=traffic / custom_s / 1e9,
        keras_gbps=traffic / keras_s / 1e9,
        control=control,
        custom_work=work.get("custom"),
        keras_work=work.get("keras"),
    )


def benchmark_rows(
    sizes: Sequence[int] = DEFAULT_SIZES,
    repeats: int = DEFAULT_REPEATS,
    rules: Sequence[str] = RULES,
    xla_modes: Sequence[bool] = (False, True),
    progress: Callable[[Row], None] | None = None,
    min_sample_seconds: float = MIN_SAMPLE_SECONDS,
    rounds: int = ROUNDS,
    control: str | None = CONTROL_RULE,
) -> list[Row]:
    """Every comparison, largest size first: one ``Row`` per (size, rule, XLA), after a
    control row per (size, XLA) (``control``'s built-in against itself; None: none).

    ``min_sample_seconds`` is how long one timing (several back-to-back steps) lasts at
    least; a test passes something tiny to finish fast.
    """
    import keras

    rows = []
    cases = ([(control, True)] if control else []) + [(rule, False) for rule in rules]
    for size in sorted(sizes, reverse=True):
        for rule, is_control in cases:
            for xla in xla_modes:
                row = compare(rule, size, xla, repeats, min_sample_seconds, rounds, is_control)
                rows.append(row)
                if progress is not None:
                    progress(row)
                keras.backend.clear_session()
    return rows


def _size_label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1_000 and size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def format_table(rows: Sequence[Row], info: dict | None = None, repeats: int | None = None,
                 rounds: int | None = None) -> str:
    """The rows as a Markdown table, with the machine and versions above it."""
    lines = []
    if info is not None:
        lines += [
            f"# Optimizer step: custom vs Keras built-in ({info['date']})",
            "",
            f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable); "
            f"load average before the run {info['load']}, after {load_average()}",
            f"- TensorFlow {info['tensorflow']}, Keras {info['keras']}, "
            f"NumPy {info['numpy']}, Python {info['python']}",
            f"- float32 parameters split over {N_TENSORS} tensors, shared by both optimizers; "
            "`apply_gradients` in `tf.function`; custom and built-in interleaved, copy after"
            + (f", {repeats} repeats" if repeats else "")
            + (f" over {rounds} fresh optimizer pairs" if rounds else "")
            + "; ms = median per step; ratio = median of per-repeat custom/built-in "
            "ratios [95% bootstrap CI of that median] (IQR); best = fastest custom step / "
            "fastest built-in step",
            f"- control: the built-in {CONTROL_RULE} against a second copy of itself, timed "
            "the same way: the ratio an equally fast optimizer gets on this machine",
            "- bandwidth = minimal bytes read + written per step / step time; "
            "copy = `np.copyto` of an array of that many bytes, counted as read + write",
            "- compiled (XLA rows): bytes read + written and element-wise operations per "
            "parameter in XLA's optimized HLO of each step, counted, not timed "
            "(`compiled_work`)",
            "",
        ]
    header = ["params", "rule", "XLA", "bytes/param (read → written)", "custom ms",
              "built-in ms", "custom/built-in [95% CI] (IQR)", "best", "custom GB/s",
              "built-in GB/s", "copy GB/s", "custom % copy", "built-in % copy",
              "compiled bytes/param (custom / built-in)",
              "compiled ops/param (custom / built-in)"]
    body = [
        [_size_label(r.size), f"control: built-in {r.rule} vs itself" if r.control else r.rule,
         "yes" if r.xla else "no",
         f"{traffic_label(r.rule)} = {r.bytes_per_param}", f"{r.custom_ms:.3f}",
         f"{r.keras_ms:.3f}",
         f"{r.ratio:.3f} [{r.ratio_ci_low:.3f}–{r.ratio_ci_high:.3f}] "
         f"({r.ratio_q1:.3f}–{r.ratio_q3:.3f})",
         f"{r.best_ratio:.3f}", f"{r.custom_gbps:.2f}", f"{r.keras_gbps:.2f}",
         f"{r.copy_gbps:.2f}", f"{100 * r.custom_copy_fraction:.0f}%",
         f"{100 * r.keras_copy_fraction:.0f}%",
         *((f"{r.custom_work[0]:g} / {r.keras_work[0]:g}",
            f"{r.custom_work[1]:g} / {r.keras_work[1]:g}") if r.custom_work else ("", ""))]
        for r in rows
    ]
    return "\n".join(lines + [markdown.table(header, body, "llllrrlrrrrrrll")])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m speed.optimizer_step",
        description="Time custom optimizers against their Keras built-ins (Markdown table).",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="total parameters per model (default: "
                        f"{' '.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"interleaved timings per optimizer (default {DEFAULT_REPEATS}, "
                        f"--quick {QUICK_REPEATS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="fresh optimizer pairs the repeats are spread over "
                        f"(default {ROUNDS})")
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES),
                        help="rules to compare (default: all)")
    parser.add_argument("--control", choices=RULES, default=CONTROL_RULE,
                        help="rule whose built-in is timed against itself as the control "
                        f"(default {CONTROL_RULE})")
    parser.add_argument("--no-control", dest="control", action="store_const", const=None,
                        help="no control rows")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {_size_label(DEFAULT_SIZES[0])} parameters and "
                        f"{QUICK_REPEATS} repeats unless --sizes/--repeats say otherwise")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [DEFAULT_SIZES[0]] if args.quick else list(DEFAULT_SIZES)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if any(s <= 0 for s in args.sizes) or args.repeats <= 0 or args.rounds <= 0:
        parser.error("sizes, repeats and rounds must be positive")
    return args


def main(argv=None) -> str:
    """Run the benchmark and print (and return) the Markdown table."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = parse_args(argv)
    info = machine_info()

    def progress(row):  # on stderr, so stdout holds just the table
        name = f"control ({row.rule} vs itself)" if row.control else row.rule
        print(f"{_size_label(row.size)} {name} xla={row.xla}: {row.ratio:.3f} "
              f"[{row.ratio_ci_low:.3f}–{row.ratio_ci_high:.3f}]", file=sys.stderr, flush=True)

    rows = benchmark_rows(args.sizes, args.repeats, args.rules, progress=progress,
                          rounds=args.rounds, control=args.control)
    table = format_table(rows, info, args.repeats, min(args.rounds, args.repeats))
    print(table, flush=True)
    return table


if __name__ == "__main__":
    main()
