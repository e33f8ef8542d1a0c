"""The plotting set-up every picture shares: a headless matplotlib, one look per rule.

A rule keeps its colour everywhere (``colour`` in ``conf/optimizer/lab/<rule>.yaml``); its
Keras twin is drawn dashed and thinner, so a gap between the two lines of one colour is a
finding. matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

from experiments.core import registry

UNKNOWN_COLOUR = "tab:gray"


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rule_style(rule: str, keras: bool = False) -> dict:
    """Line style of rule ``rule`` (its Keras twin if ``keras``): colour, dash and width."""
    colours = {r.name: registry.lab(r.name).colour for r in registry.rules()}
    return {"color": colours.get(rule, UNKNOWN_COLOUR), "linestyle": "--" if keras else "-",
            "linewidth": 1.2 if keras else 1.6}


def option_style(option: str) -> dict:
    """``rule_style`` of a ``conf/optimizer`` option (``adam``, ``keras_adam``)."""
    rule, implementation = registry.parse_option(option)
    return rule_style(rule, implementation == "keras")
