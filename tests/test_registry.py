"""The rule registry (``custom_optimizers.rules``): each rule described once, and the
descriptions agree with the classes, the references and ``conf/optimizer``."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from experiments.core import registry

ROOT = Path(__file__).resolve().parents[1]
RULES = registry.rules()


def test_rules_are_discovered_in_order_with_unique_names():
    names = [rule.name for rule in RULES]
    assert names[:6] == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    assert len(set(names)) == len(names)
    assert [r.order for r in RULES] == sorted(r.order for r in RULES)
    modules = {p.stem for p in (ROOT / "custom_optimizers" / "rules").glob("[!_]*.py")}
    assert modules == set(names)


def test_unknown_rule_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"'adamax' is not known: choose one of sgd, momentum"):
        registry.rule("adamax")


def test_registry_loads_without_tensorflow():
    from light import run_light

    out = run_light("from experiments.core import config, registry\n"
                    "print(len(registry.optimizer_names()), len(config.OPTIMIZER_SCHEMAS))\n",
                    heavy=("tensorflow", "keras", "custom_optimizers"))
    twins = sum(rule.keras is not None for rule in RULES)
    assert out.split("\n")[0] == f"{len(RULES) + twins} {len(RULES)}"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_description_matches_class_and_reference(rule):
    import keras

    import custom_optimizers
    from custom_optimizers import reference

    cls = rule.load_class()
    assert getattr(custom_optimizers, cls.__name__) is cls
    assert keras.saving.get_registered_object(f"custom_optimizers>{cls.__name__}") is cls
    assert issubclass(cls, custom_optimizers.AdaptiveLectureOptimizer) == rule.adaptive
    assert reference.BY_NAME[rule.name] is rule.reference
    assert rule.reference.__name__ == cls.__name__
    # The class's defaults are the rule's defaults, and the reference takes the same names.
    signature = inspect.signature(cls.__init__).parameters
    for name, default in rule.defaults().items():
        assert signature[name].default == default, (rule.name, name)
    reference_args = set(inspect.signature(rule.reference.__init__).parameters) - {"self", "kw"}
    reference_args -= {"clip_threshold", "clip_mode"}
    assert reference_args == set(rule.defaults())
    # Every hyperparameter's range is the one the class checks its argument with.
    for hp in rule.hyperparameters:
        if hp.low is not None:
            with pytest.raises(ValueError, match=hp.name):
                cls(**{hp.name: hp.low - 1.0})
        if hp.high is not None and hp.high_open:
            with pytest.raises(ValueError, match=hp.name):
                cls(**{hp.name: hp.high})


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_search_space_and_test_arguments_lie_in_the_valid_ranges(rule):
    assert "learning_rate" in rule.search_space
    for name, dim in rule.search_space.items():
        for value in dim.value_range():
            rule.check(name, value)
    for name, value in rule.test_arguments.items():
        rule.check(name, value)
    rule.check("learning_rate", rule.landscape_learning_rate)


def test_conf_optimizer_holds_one_option_per_rule_and_twin():
    options = {p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml")}
    assert options == set(registry.optimizer_names())


@pytest.mark.parametrize("rule", [r for r in RULES if r.keras is not None],
                         ids=lambda rule: rule.name)
def test_keras_twin_translation_builds_the_builtin(rule):
    import keras

    class_name, kwargs = rule.keras_arguments({**rule.defaults(), "clip_threshold": 2.0})
    optimizer = getattr(keras.optimizers, class_name)(**kwargs)
    assert optimizer.clipnorm == 2.0
    assert rule.keras_refusal({"clip_threshold": 1.0, "clip_mode": "sign"}).startswith(
        "optimizer.clip_mode=sign has no Keras counterpart")


@pytest.mark.parametrize("option", registry.optimizer_names())
def test_optimizer_option_trains_at_the_rules_defaults(option):
    """One value per hyperparameter, written once in the rule: ``optimizer=<option>``
    composes to the registry's defaults (which the class signature shows, see above), a
    Keras twin's option adds only the values its built-in fixes, and no YAML restates a
    default."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.train.config import register_schemas as register_train_schemas
    register_train_schemas()

    name, implementation = registry.parse_option(option)
    rule = registry.rule(name)
    fixed = dict(rule.keras.fixed) if implementation == "keras" else {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        opt = OmegaConf.to_container(compose("train", [f"optimizer={option}"]).optimizer)
    assert {k: opt[k] for k in rule.defaults()} == {**rule.defaults(), **fixed}
    assert (opt["name"], opt["implementation"]) == (name, implementation)
    yaml = OmegaConf.load(ROOT / "conf" / "optimizer" / f"{option}.yaml")
    assert set(yaml) & set(rule.defaults()) <= set(fixed), "a default written twice"
