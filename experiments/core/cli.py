"""The command line of every Hydra app here: mistakes refused first, one exit-code table.

Each ``python -m experiments.<command>`` calls, before Hydra runs its app,

    check_command_line("<config name>", check)     # check(cfg) raises ConfigError

which refuses, before TensorFlow (or MLflow) is imported, with one line on stderr and
exit code 2, and so before any run exists:

- what Hydra itself would refuse (an unknown option or key, a wrong type, a malformed
  override, an unknown flag), re-worded to one line naming the value and the valid ones;
- keys added with ``+``/``++`` that the schema does not have (``+trainer.epoch=50``),
  which Hydra accepts: ``experiments.core.config.check_schema_keys``;
- whatever ``check`` refuses (ranges, combinations, a dataset not downloaded, ...).

With ``-m`` every job of the sweep is checked, not only the first: the command-line
sweeps and the sweeper's own ``hydra.sweeper.params`` (Optuna's search space; an
``interval`` is checked at both ends). Up to ``MAX_JOBS`` jobs are composed one by one;
a larger sweep is checked one value at a time (the others at their first value).
``--help``, ``--cfg``, ``--info`` and the other Hydra flags that do not run the app are
left to Hydra.

Exit codes, shared by every command (README, "Exit codes"):
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from dataclasses import is_dataclass
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from experiments.core import CONF


EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and failed (diverged; a bug's traceback)
EXIT_BAD_INPUT = 2  # refused before any work: config, command line, store, resume, dataset
EXIT_SIGINT = 130  # interrupted (Ctrl-C): the run is KILLED with a checkpoint
EXIT_SIGTERM = 143  # terminated (SIGTERM): the same
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the work ran and failed",
    EXIT_BAD_INPUT: "refused before any work started",
    EXIT_SIGINT: "interrupted by SIGINT",
    EXIT_SIGTERM: "interrupted by SIGTERM",
}
__doc__ += "".join(f"\n    {code:3d}  {meaning}" for code, meaning in EXIT_CODES.items())

MAX_JOBS = 8
MAX_SWEEP = 10_000  # jobs in one -m sweep; more is refused (split the sweep)
# Hydra flags that print something instead of running the app: nothing to check.
_NOT_RUNNING = ("help", "hydra_help", "cfg", "info", "shell_completion",
                "experimental_rerun")


def refuse(message: str, prefix: str = "Error in config", code: int = EXIT_BAD_INPUT
           ) -> NoReturn:
    """Print ``prefix: message`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    print(f"{prefix}: {line}", file=sys.stderr)
    sys.exit(code)


@contextlib.contextmanager
def refusing():
    """Around a command's work: what it refuses before any run exists — a config mistake
    (``ConfigError``, ``ResumeError``), an unusable tracking store, a dataset not
    downloaded: any ``experiments.core.checks.Refusal`` — ends as one line and exit code 2
    (``refuse``, with the refusal's prefix); anything else passes."""
    from experiments.core.checks import Refusal

    try:
        yield
    except Refusal as err:
        refuse(str(err), prefix=err.prefix)


def _first_line(text) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def hydra_message(err: BaseException) -> str:
    """One line for an exception Hydra or OmegaConf raised while composing a config."""
    from hydra.errors import MissingConfigException

    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option} is not an option: choose one of {', '.join(err.options)}"
    cause = err.__cause__ or err
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    text = _first_line(cause)
    if key and text.startswith("Key ") and "not in" in text and is_dataclass(schema):
        from experiments.core.config import unknown_key_message

        return unknown_key_message(key, schema)
    message = _first_line(err)
    if message.startswith("Ambiguous value for argument"):
        return (f"{message.split(' ', 4)[-1]} is a sweep: add -m (--multirun) to run one "
                "job per value (a list is written [a,b], a string with a comma is quoted)")
    if cause is not err and text:
        message = f"{message.removeprefix('Error merging override ')}: {text}"
    return message


def _parse_arguments(argv: Sequence[str]):
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.error = lambda message: refuse(f"{message} (see --help)", prefix="Error")
    return parser.parse_args(list(argv))


def _dimensions(overrides: Sequence[str], sweeper_params, multirun: bool):
    """(fixed overrides, [(key, [override per value checked], number of values)]) from the
    command line and, in a multirun, the sweeper's ``params`` (the command line wins for a
    key given in both). An ``interval`` is checked at both ends (one value: the sweeper
    draws from it), a ``range`` at its first and last value (without listing the others)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import RangeSweep

    from experiments.core.checks import ConfigError

    parser = OverridesParser.create()
    fixed, sweeps = [], {}
    given = dict.fromkeys(overrides)
    if multirun:
        for key, value in (sweeper_params or {}).items():
            given.setdefault(f"{key}={value}", None)
    seen = set()
    for text in given:
        try:
            override = parser.parse_override(text)
        except Exception as err:
            raise ConfigError(f"cannot read the override {text!r}: {_first_line(err)}") \
                from None
        key = override.get_key_element()
        if key in seen:  # a sweeper param that the command line also sets
            continue
        seen.add(key)
        if multirun and override.is_hydra_override() and override.is_sweep_override():
            raise ConfigError(f"{text}: Hydra's own configuration cannot be swept (a search "
                              "space goes in an hparams_search preset)")
        value = override.value() if multirun and override.is_sweep_override() else None
        if value is None:
            fixed.append(text)
        elif override.is_interval_sweep():
            ends = (value.start, value.end)
            sweeps[key] = ([f"{key}={int(v) if float(v).is_integer() else v!r}"
                            for v in ends], 1)
        elif isinstance(value, RangeSweep) and not value.shuffle:
            count = max(0, math.ceil((value.stop - value.start) / value.step))
            ends = dict.fromkeys((value.start, value.start + (count - 1) * value.step))
            sweeps[key] = ([f"{key}={v!r}" for v in ends][:count], count)
        else:
            try:
                values = [f"{key}={v}" for v in override.sweep_string_iterator()]
            except Exception:  # glob(): Hydra expands it against the options itself
                continue
            sweeps[key] = (values, len(values))
    return fixed, [(key, values, count) for key, (values, count) in sweeps.items()]


def _jobs(fixed: list[str], dims) -> list[list[str]]:
    """The override lists to check: every job, or one value at a time if too many.
    Refuses a sweep of more than ``MAX_SWEEP`` jobs, which would take hours to check."""
    from experiments.core.checks import ConfigError

    values = [options for _, options, _ in dims]
    total = math.prod(count for _, _, count in dims)
    if total > MAX_SWEEP:
        sizes = ", ".join(f"{key}: {count} values" for key, _, count in dims if count > 1)
        raise ConfigError(f"-m: a sweep of {total} jobs ({sizes}) is more than {MAX_SWEEP}: "
                          "split it into smaller sweeps")
    count = math.prod(len(options) for options in values)
    if count <= MAX_JOBS:
        return [fixed + list(combo) for combo in itertools.product(*values)]
    firsts = [options[0] for options in values]
    jobs = [fixed + firsts]
    for i, options in enumerate(values):
        jobs += [fixed + firsts[:i] + [v] + firsts[i + 1:] for v in options[1:]]
    return jobs


def _compose_and_check(config_name: str, overrides: list[str], check) -> object:
    from hydra import compose
    from omegaconf import open_dict

    from experiments.core.config import check_schema_keys

    cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    hydra_cfg = cfg.hydra
    with open_dict(cfg):
        del cfg["hydra"]
    check_schema_keys(cfg)
    check(cfg)
    _check_common(cfg)
    return hydra_cfg


def _check_common(cfg) -> None:
    """What every command's config is refused for, after its own ``check``: a number out
    of range (``checks.check_numbers``: not finite, or an integer above its limit), an
    ``output_dir`` that cannot be created or written, an experiment name MLflow refuses."""
    from omegaconf import OmegaConf

    from experiments.core.checks import check_folder, check_numbers
    from experiments.core.tracking import check_experiment_name

    # the job's own keys: Hydra's node (present where a config was composed with it)
    # holds values that resolve only inside a running job (hydra.job.num)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    check_numbers(OmegaConf.to_container(job, resolve=True))
    if cfg.get("output_dir"):
        check_folder("output_dir", cfg.output_dir)
    tracking = cfg.get("tracking")
    if tracking is not None and tracking.get("enabled", True):
        check_experiment_name(tracking.get("experiment_name"))


def _check_output_dir(hydra_cfg, multirun: bool) -> None:
    """Refuse an output folder (``hydra.run.dir``, ``hydra.sweep.dir`` with ``-m``) that
    cannot be created, where Hydra would fail with a traceback."""
    from experiments.core.checks import check_folder

    key = "sweep" if multirun else "run"
    check_folder(f"hydra.{key}.dir", hydra_cfg[key].dir)


def _config_dirs(args, config_dir: Path) -> tuple[Path, list[str]]:
    """(the primary config folder, overrides adding to the search path) as Hydra takes
    them from ``--config-path``/``-cp`` (absolute, or relative to the command's
    ``__main__``) and ``--config-dir``/``-cd`` (a folder added to the search path)."""
    from experiments.core.checks import ConfigError

    if args.config_path:
        given = args.config_path
        path = Path(given.removeprefix("file://"))
        if given.startswith("pkg://"):  # a package's folder
            import importlib.util

            with contextlib.suppress(ImportError, ValueError, AttributeError):
                spec = importlib.util.find_spec(given[len("pkg://"):].replace("/", "."))
                path = Path(next(iter(spec.submodule_search_locations or []), "-"))
        elif not path.is_absolute():
            main = getattr(sys.modules.get("__main__"), "__file__", None)
            path = (Path(main).parent if main else Path.cwd()) / path
        if not path.is_dir():
            raise ConfigError(f"--config-path={given}: no such folder")
        config_dir = path.resolve()
    search = []
    if args.config_dir:
        extra = Path(args.config_dir).absolute()
        if not extra.is_dir():
            raise ConfigError(f"--config-dir={args.config_dir}: no such folder")
        search = [f"hydra.searchpath=[file://{extra}]"]
    return config_dir, search


def check_command_line(config_name: str, check: Callable, argv: Sequence[str] | None = None,
                       config_dir: Path = CONF) -> None:
    """Refuse the command line ``argv`` (default ``sys.argv[1:]``) with one line and exit
    code 2 if Hydra, the schemas or ``check(cfg)`` would refuse any of its jobs (``check``
    raises what ``refusing`` turns into one line)."""
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    args = _parse_arguments(sys.argv[1:] if argv is None else argv)
    if any(getattr(args, flag, None) for flag in _NOT_RUNNING):
        return
    config_name = args.config_name or config_name
    try:
        with refusing():
            config_dir, search = _config_dirs(args, config_dir)
        with refusing(), initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            fixed, dims = _dimensions(args.overrides, None, args.multirun)
            fixed = search + fixed
            first = fixed + [options[0] for _, options, _ in dims if options]
            hydra_cfg = _compose_and_check(config_name, first, check)
            _check_output_dir(hydra_cfg, args.multirun)
            if args.multirun:
                params = hydra_cfg.sweeper.get("params")
                params = OmegaConf.to_container(params) if params else None
                fixed, dims = _dimensions(args.overrides, params, True)
                for overrides in _jobs(fixed, dims):
                    if overrides != first:
                        _compose_and_check(config_name, overrides, check)
    except (HydraException, OmegaConfBaseException) as err:
        refuse(hydra_message(err))
