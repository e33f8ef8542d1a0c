"""The rule registry (``custom_optimizers.rules``): each rule described once, and the
descriptions agree with the classes, the references and ``conf/optimizer``."""

from __future__ import annotations

import inspect

import pytest

from experiments.core import registry
from helpers import ROOT

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
    """``import custom_optimizers`` and its rules need no TensorFlow: a class loads it when
    first named."""
    from light import run_light

    classes = tuple(f"custom_optimizers.{rule.name}" for rule in RULES)
    out = run_light("import custom_optimizers\n"
                    "from custom_optimizers import reference\n"
                    "from experiments.core import config, registry\n"
                    "print(len(registry.optimizer_names()), len(config.OPTIMIZER_SCHEMAS))\n",
                    heavy=("tensorflow", "keras", "custom_optimizers._base", *classes))
    twins = sum(rule.keras is not None for rule in RULES)
    assert out.split("\n")[0] == f"{len(RULES) + twins} {len(RULES)}"
    out = run_light("import custom_optimizers\nprint(custom_optimizers.Lion.__module__)\n",
                    heavy=())
    assert out.strip() == "custom_optimizers.lion"


def test_naming_a_class_that_is_not_there_is_an_attribute_error():
    import custom_optimizers

    with pytest.raises(AttributeError, match="has no attribute 'Adamax'"):
        custom_optimizers.Adamax  # noqa: B018


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
    assert cls.rule is rule
    # The class's signature, attributes and config are made from the rule (one
    # declaration); the hand-written NumPy reference takes the same names.
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
def test_lab_settings_lie_in_the_valid_ranges(rule):
    """``conf/optimizer/lab/<rule>.yaml``: read and checked against the rule (``lab``)."""
    settings = registry.lab(rule.name)
    assert list(settings.search_space)[0] == "learning_rate"
    for name, dim in settings.search_space.items():
        for value in dim.value_range():
            rule.check(name, value)
    for name, value in settings.test_arguments.items():
        rule.check(name, value)
    rule.check("learning_rate", settings.landscape_learning_rate)


@pytest.mark.parametrize("text, message", [
    ("colour: red\n", "holds colour: it holds exactly colour, landscape_learning_rate"),
    ("colour: red\nlandscape_learning_rate: 0.1\nsearch_space:\n  learning_rate: [log, 1, 0.1]"
     "\ntest_arguments: {}\n", r"SearchDim\('log', 1.0, 0.1\): the scale is one of"),
    ("colour: red\nlandscape_learning_rate: 0.1\nsearch_space:\n  learning_rate: [log, 0.1, 1]"
     "\ntest_arguments: {momentum: 0.5}\n", "momentum is not a hyperparameter of the rule"),
    ("colour: red\nlandscape_learning_rate: -1\nsearch_space:\n  learning_rate: [log, 0.1, 1]"
     "\ntest_arguments: {}\n", r"landscape_learning_rate=-1.0 is out of range"),
])
def test_bad_lab_settings_are_refused_naming_the_file(tmp_path, text, message):
    path = registry.lab_file("sgd", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        registry.lab("sgd", tmp_path)
    assert "sgd.yaml of rule 'sgd'" in str(err.value)


def test_a_rule_without_lab_settings_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"rule 'adam' has no lab settings: write "
                                         r"\S*conf/optimizer/lab/adam.yaml"):
        registry.lab("adam", tmp_path / "conf")


def test_the_optimizer_library_knows_nothing_of_the_lab():
    """``custom_optimizers`` is an optimizer library a user can take alone: no colour, no
    search space, no path into ``conf/`` (the import contract keeps ``experiments`` out)."""
    for path in (ROOT / "custom_optimizers").rglob("*.py"):
        text = path.read_text()
        for word in ("conf/", "search_space", "colour", "landscape_learning_rate",
                     "test_arguments"):
            assert word not in text, (path.name, word)


def test_conf_optimizer_holds_one_option_per_rule_and_twin():
    options = {p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml")}
    assert options == set(registry.optimizer_names())
    lab = {p.stem for p in (ROOT / "conf" / "optimizer" / "lab").glob("*.yaml")}
    assert lab == set(registry.rule_names())


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
