"""One declaration per optimizer, and what it offers through one interface.

A rule's hyperparameters (``custom_optimizers.rules``) make its class: signature, checks,
attributes, ``get_config``, Args table, registry entry. A new rule is its declaration, its
class (``build``/``update_step``), its lab settings and its test: shown here with a toy rule
from a temporary module. ``custom_optimizers.capabilities`` answers for ours and for
Keras's twins alike; nothing outside ``custom_optimizers`` asks by ``hasattr`` or reads a
Keras private attribute.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

import custom_optimizers as co
from custom_optimizers import capabilities, reference, rules, twins
from experiments.core import config, registry
from experiments.core.checks import ConfigError
from experiments.core.optim import build_optimizer
from helpers import ROOT, check_against_reference, random_problem, run_keras, run_reference

TOY = '''
"""A toy rule: a decaying sum of gradients, declared once."""

from keras import ops

from custom_optimizers import LectureOptimizer
from custom_optimizers.rules import Hyperparameter, Reference, Rule


class ToyReference(Reference):
    state_names = ("m",)

    def __init__(self, learning_rate, decay, **kw):
        super().__init__(learning_rate, **kw)
        self.decay = decay

    def _update(self, i, w, g):
        m = self.state["m"][i] = self.decay * self.state["m"][i] + g
        return w - self.lr * m


RULE = Rule(name="toy", title="Toy", order=990, reference=ToyReference, learning_rate=0.05,
            hyperparameters=(Hyperparameter("decay", 0.5, 0.0, 1.0, False, True,
                                            "β, the decay of the sum"),),
            adaptive=False, no_keras_reason="a toy", module=__name__)


class Toy(LectureOptimizer, rule=RULE):
    """Toy: ``m <- β m + g; W <- W - lr m``."""

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.sums = self.add_optimizer_variables(var_list, "sum")

    def update_step(self, gradient, variable, learning_rate):
        gradient = self._prepare_gradient(gradient, variable)
        m = self.sums[self._get_variable_index(variable)]
        decay = ops.convert_to_tensor(self.decay, dtype=m.dtype)  # not via float32
        self.assign(m, ops.add(ops.multiply(m, decay), gradient))
        self.assign_sub(variable, ops.multiply(m, ops.cast(learning_rate, m.dtype)))
'''

TOY_LAB = """\
colour: tab:pink
landscape_learning_rate: 0.1
search_space:
  learning_rate: [log, 1.0e-4, 1.0]
  decay: [log1m, 1.0e-3, 0.5]
test_arguments: {learning_rate: 0.03, decay: 0.7}
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy rule, registered from a module in a temporary folder, with its lab settings
    in a temporary ``conf``; unregistered afterwards."""
    (tmp_path / "toy_rule.py").write_text(TOY)
    conf = tmp_path / "conf"
    registry.lab_file("toy", conf).parent.mkdir(parents=True)
    registry.lab_file("toy", conf).write_text(TOY_LAB)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_rule")
    rules.register(module.RULE)
    try:
        yield module, conf
    finally:
        rules.unregister("toy")
        sys.modules.pop("toy_rule", None)


def test_a_registered_rule_gives_class_config_schema_reference_test_and_search_space(toy):
    module, conf = toy
    rule = registry.rule("toy")
    assert rule is module.RULE and "toy" in registry.rule_names()
    # the class, from its declaration alone
    cls = rule.load_class()
    assert cls is module.Toy and cls.rule is rule
    assert str(inspect.signature(cls)) == ("(learning_rate=0.05, decay=0.5, clip_threshold=None, "
                                           "clip_mode='norm', name='toy', **kwargs)")
    optimizer = cls(0.2, 0.25)
    assert (float(optimizer.learning_rate), optimizer.decay) == (pytest.approx(0.2), 0.25)
    with pytest.raises(ValueError, match=r"decay=1.0 is out of range: valid values are in "
                                         r"\[0, 1\)"):
        cls(decay=1.0)
    assert re.search(r"decay: β, the decay of the sum; default 0.5, in \[0, 1\)\.", cls.__doc__)
    # its config, saved and read back by its registered name
    config_ = keras.optimizers.serialize(optimizer)
    assert config_["registered_name"] == "custom_optimizers>Toy"
    assert config_["config"]["decay"] == 0.25
    again = keras.optimizers.deserialize(config_)
    assert type(again) is cls and again.get_config() == optimizer.get_config()
    # its config schema: the rule's defaults, and a bad value refused in one line
    schema = config.optimizer_schema(rule)
    node = OmegaConf.structured(schema)
    assert (node.name, node.learning_rate, node.decay) == ("toy", 0.05, 0.5)
    node.decay = 1.5
    with pytest.raises(ConfigError, match=r"optimizer.decay=1.5 is out of range"):
        config.validate_optimizer(node)
    # its lab settings, and so its benchmark search space and its test arguments
    lab = registry.lab("toy", conf)
    assert list(lab.search_space) == ["learning_rate", "decay"]
    from experiments.benchmark import search

    points = search.sample(lab.search_space, 8, 0, "digits_mlp", 0)
    assert all(1e-4 <= p["learning_rate"] <= 1.0 and 0.5 <= p["decay"] <= 0.999
               for p in points)
    # the shared reference test, passed by the toy's own class and reference
    check_against_reference(cls, rule.reference, lab.test_arguments)
    # and the lab builds it from a config like any rule
    built = build_optimizer({"name": "toy", "implementation": "custom", "learning_rate": 0.1,
                             "decay": 0.3, "clip_threshold": None, "clip_mode": "norm"})
    assert type(built) is cls and built.decay == 0.3


def test_a_wrong_reference_fails_the_shared_reference_test(toy):
    """The shared test can fail: the toy's class against a reference that forgets β."""
    module, _ = toy

    class Forgetful(module.ToyReference):
        def _update(self, i, w, g):
            return w - self.lr * g

    with pytest.raises(AssertionError):
        check_against_reference(module.Toy, Forgetful, {"learning_rate": 0.03, "decay": 0.7})


def test_registering_a_taken_name_or_order_is_refused(toy):
    module, _ = toy
    import dataclasses

    with pytest.raises(ValueError, match="a rule named 'toy' is already registered"):
        rules.register(module.RULE)
    clash = dataclasses.replace(module.RULE, name="toy2", order=registry.rule("adam").order)
    with pytest.raises(ValueError, match="two rules share an order"):
        rules.register(clash)
    assert "toy2" not in registry.rule_names()


@pytest.mark.parametrize("rule", registry.rules(), ids=lambda rule: rule.name)
def test_the_class_is_made_from_its_rule(rule):
    """Signature, attributes, config and Args table come from the rule's hyperparameters."""
    cls = rule.load_class()
    parameters = inspect.signature(cls).parameters
    names = ["learning_rate", *(hp.name for hp in rule.hyperparameters)]
    assert list(parameters)[:len(names)] == names
    assert list(parameters)[-4:] == ["clip_threshold", "clip_mode", "name", "kwargs"]
    optimizer = cls()
    config_ = optimizer.get_config()
    for hp in rule.hyperparameters:
        assert config_[hp.name] == getattr(optimizer, hp.name) == hp.default
        assert f"    {hp.name}: {hp.doc}; default {hp.default!r}" in cls.__doc__
    assert cls.__doc__.count("Args:") == 1
    # positional arguments bind in the declared order
    values = [0.02, *(hp.default for hp in rule.hyperparameters)]
    assert cls(*values).get_config() == cls(**dict(zip(names, values))).get_config()


def test_a_fixed_attribute_is_accepted_back_only_at_its_value():
    assert co.AdamW(bias_correction=True).bias_correction is True
    with pytest.raises(ValueError, match="bias_correction is fixed at True in AdamW"):
        co.AdamW(bias_correction=False)


# --------------------------------------------------------------------------- capabilities
def _built(option: str, variables):
    name, implementation = registry.parse_option(option)
    rule = registry.rule(name)
    hp = {**rule.defaults(), **(rule.keras.fixed if implementation == "keras" else {})}
    optimizer = build_optimizer({"name": name, "implementation": implementation, **hp})
    optimizer.build(variables)
    return optimizer


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                              keras.layers.Dense(2, name="logits")])
    return model


@pytest.mark.parametrize("option", registry.optimizer_names())
def test_every_option_answers_through_one_interface(option):
    model = _model()
    optimizer = _built(option, model.trainable_variables)
    offers = capabilities.of(optimizer)
    name, implementation = registry.parse_option(option)
    custom = implementation == "custom"
    assert offers.evaluation_point_name == ("x" if option == "schedule_free_adamw" else "weights")
    groups = offers.parameter_groups()
    if name == "muon":  # ours and Keras's split the same way: 2-D, not the logits, Muon
        paths = [v.path for v in model.trainable_variables]
        assert groups == {"muon": paths[:1], "adamw": paths[1:]}, paths
    else:
        assert groups is None
    rule = registry.rule(name)
    assert (offers.effective_learning_rates() is not None) == (
        rule.adaptive if custom else rule.keras.effective_learning_rates is not None)
    assert float(offers.current_learning_rate()) == pytest.approx(offers.learning_rate)
    # what the benchmark searches, the optimizer holds in variables: one trace, many trials
    if custom:
        searched = set(registry.lab(name).search_space) - {"learning_rate"}
        assert searched <= offers.tunable, searched - offers.tunable
    assert offers.tunable <= set(offers.hyperparameters())


def test_every_keras_twin_is_described():
    assert {r.keras.class_name for r in registry.rules() if r.keras is not None} == set(twins.TWINS)
    assert capabilities.of(keras.optimizers.Adamax()).hyperparameter_names() == ()


@pytest.mark.parametrize("option", ["schedule_free_adamw", "keras_schedule_free_adamw", "adam",
                                    "keras_adagrad"])
def test_the_reset_returns_the_state_build_leaves_for_new_weights(option):
    """After training, ``restore(new weights)`` leaves every variable as a fresh optimizer
    built on the new weights has it (Schedule-Free's z and x: the weights)."""
    init, grads = random_problem("float32", steps=4, seed=7, shapes=[(3, 2), (2,)])
    variables = [keras.Variable(w) for w in init]
    optimizer = _built(option, variables)
    reset = capabilities.of(optimizer).initial_state()
    apply = tf.function(lambda g: optimizer.apply_gradients(zip(g, variables)))
    for step in grads:
        apply([tf.constant(g) for g in step])
    fresh_weights = [w + 1.0 for w in init]
    for v, w in zip(variables, fresh_weights):
        v.assign(w)
    reset.restore(fresh_weights)
    fresh = _built(option, [keras.Variable(w) for w in fresh_weights])
    assert len(optimizer.variables) == len(fresh.variables)
    for a, b in zip(optimizer.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_static_hyperparameter_is_not_held_in_a_variable():
    offers = capabilities.of(co.NAdam())
    assert "momentum_decay" not in offers.tunable
    with pytest.raises(ValueError, match="momentum_decay of NAdam cannot be held in variables: "
                                         "tunable are beta_1, beta_2, epsilon"):
        offers.hold_in_variables({"momentum_decay"}, "float32")


def test_held_hyperparameters_give_the_same_steps():
    """Adam with β1, β2, δ held in variables: the same weights as with Python numbers."""
    init, grads = random_problem("float64", steps=6, seed=4, shapes=[(3, 2)])
    plain = run_keras(co.Adam(0.01, 0.8, 0.99, 1e-3), init, grads)
    held = co.Adam(0.01, 0.5, 0.5, 0.5)
    variables = capabilities.of(held).hold_in_variables({"beta_1", "beta_2", "epsilon"},
                                                        "float64")
    for name, value in (("beta_1", 0.8), ("beta_2", 0.99), ("epsilon", 1e-3)):
        variables[name].assign(value)
    np.testing.assert_allclose(run_keras(held, init, grads), plain, rtol=1e-13)
    # the held values are not the optimizer's state
    assert not any(v is h for v in held.variables for h in variables.values())


def test_nothing_outside_the_library_asks_by_hasattr_or_reads_keras_privates():
    pattern = re.compile(r"hasattr\(.*optimizer|optimizer\._|\._velocities|_should_use_adamw|"
                         r"\._trainable_variables|_get_current_learning_rate|object\.__setattr__")
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in ("experiments", "speed")
             for path in (ROOT / folder).rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_the_evaluation_point_of_schedule_free_is_its_average():
    """Its evaluation point is the average x, to rounding the reference's, and its slot."""
    init, grads = random_problem("float64", steps=9, seed=8, shapes=[(4,)])
    kwargs = {"learning_rate": 0.05, "beta_1": 0.9, "beta_2": 0.99, "epsilon": 1e-3,
              "decoupled_weight_decay": 0.0, "warmup_steps": 0}
    optimizer = co.ScheduleFreeAdamW(**kwargs)
    run_keras(optimizer, init, grads)
    ref = reference.ScheduleFreeAdamW(**{**kwargs, "learning_rate": float(np.float32(0.05))})
    run_reference(ref, init, grads)
    x = capabilities.of(optimizer).evaluation_point(optimizer._trainable_variables)
    np.testing.assert_allclose(x[0].numpy(), ref.evaluation_point()[0], rtol=1e-12)
    np.testing.assert_array_equal(optimizer.x[0].numpy(), x[0].numpy())  # and in its slot


def test_the_evaluation_point_is_the_same_while_the_weights_hold_it():
    """Asked again while the weights hold x (a nested evaluation, a model saved at x), x
    is the same: it comes from its slot, not from the weights."""
    init, grads = random_problem("float64", steps=5, seed=6, shapes=[(3,)])
    variables = [keras.Variable(w) for w in init]
    optimizer = co.ScheduleFreeAdamW(learning_rate=0.1)
    apply = tf.function(lambda g: optimizer.apply_gradients(zip(g, variables)))
    for step in grads[:4]:
        apply([tf.constant(g) for g in step])
    x = optimizer.evaluation_point(variables)[0].numpy()
    variables[0].assign(x)
    np.testing.assert_array_equal(optimizer.evaluation_point(variables)[0].numpy(), x)
    apply([tf.constant(g) for g in grads[4]])  # a new step: x moves on
    assert not np.array_equal(optimizer.evaluation_point(variables)[0].numpy(), x)


def test_schedule_free_with_beta_1_zero_keeps_x_in_its_step():
    """β1 = 0 (y = z, which says nothing of x): x is still the average of the z's."""
    init, grads = random_problem("float64", steps=5, seed=9, shapes=[(3,)])
    optimizer = co.ScheduleFreeAdamW(learning_rate=0.1, beta_1=0.0)
    y = run_keras(optimizer, init, grads)
    ref = reference.ScheduleFreeAdamW(float(np.float32(0.1)), 0.0, 0.999, 1e-8, 0.0, 0)
    params = run_reference(ref, init, grads)
    np.testing.assert_allclose(y[0], params[0], rtol=1e-12)
    np.testing.assert_allclose(optimizer.x[0].numpy(), ref.evaluation_point()[0], rtol=1e-12)
    assert not np.allclose(optimizer.x[0].numpy(), y[0])
