"""``python -m experiments.gallery.readme [--check]``: the README's optimizer table, from
the rule registry.

One row per rule of ``experiments.core.registry.rules()``, in the registry's order: the
class, its formula in one line and its source (both from the class's docstring, whose first
line is the formula and whose ``Formula card (...)`` names the paper or the lecture's
slide), its Keras twin and when the two compute the same numbers (the rule's
``KerasTwin``: ``exact``, ``fixed``, ``equal_when``). The table sits in README.md between
``<!-- optimizer-table:start -->`` and ``<!-- optimizer-table:end -->``; this command
rewrites it there, ``--check`` only says whether it is current (exit code 1 if not), and
``tests/test_docs.py`` fails when it has drifted. Reads no TensorFlow: the docstrings are
read from the source files.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import re
import sys
from pathlib import Path

from experiments.core import PROJECT_ROOT, registry

README = PROJECT_ROOT / "README.md"
START, END = "<!-- optimizer-table:start -->", "<!-- optimizer-table:end -->"
COMMAND = "python -m experiments.gallery.readme"
SYMBOLS = {"epsilon": "δ"}


def optimizer_class(rule) -> tuple[str, str]:
    """The name and docstring of the class that declares ``rule=`` ``rule`` in its module
    (``rule.module``, default ``custom_optimizers.<name>``), read from the source file:
    naming the class would import TensorFlow."""
    module = rule.module or f"custom_optimizers.{rule.name}"
    package, _, rest = module.partition(".")
    folder = Path(importlib.util.find_spec(package).submodule_search_locations[0])
    tree = ast.parse((folder / f"{rest.replace('.', '/')}.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef)
                and any(k.arg == "rule" for k in n.keywords))
    return node.name, ast.get_docstring(node) or ""


def _markdown(text: str) -> str:
    """reST inline code as Markdown's, one line, table-safe."""
    return " ".join(text.replace("``", "`").replace("|", "\\|").split())


def formula(doc: str) -> str:
    """The one-line formula: the docstring's first sentence, less the rule's name."""
    first = doc.split("\n\n")[0]
    return _markdown(first.split(": ", 1)[-1].rstrip("."))


def source(doc: str) -> str:
    """Where the formula comes from: the paper (first item of ``Formula card (...)``), or
    ``the lecture``."""
    found = re.search(r"Formula card \((.*?)\)::", " ".join(doc.split()))
    if not found:
        return "–"
    first = found.group(1).split(";")[0].strip()
    return "the lecture" if first.startswith("lecture") else _markdown(first)


def twin(rule) -> tuple[str, str]:
    """The Keras twin, as called with the rule's hyperparameters (the head of its note),
    and when it computes the rule's numbers."""
    k = rule.keras
    if k is None:
        return "none", _markdown(rule.no_keras_reason)
    call = re.match(rf"(keras\.optimizers\.{k.class_name}\([^:]*?\))[: ]", k.note)
    name = f"`{call.group(1) if call else f'keras.optimizers.{k.class_name}'}`"
    fixed = ", ".join(f"{key} = {value:g}" if isinstance(value, float) else f"{key} = {value}"
                      for key, value in k.fixed.items()
                      if rule.hyperparameter(key).default != value)
    if k.exact:
        return name, "exactly" + (f", at {fixed}" if fixed else "")
    if k.equal_when:
        limits = ", ".join(f"{SYMBOLS.get(key, key)} → {value:g}"
                           for key, value in k.equal_when.items())
        return name, f"as {limits}"
    return name, "never (see [formulas](docs/formulas.md))"


def table() -> str:
    """The table, as Markdown."""
    lines = ["| optimizer | update, in one line | from | Keras twin | equal to the twin |",
             "|---|---|---|---|---|"]
    for rule in registry.rules():
        name, doc = optimizer_class(rule)
        keras_name, equal = twin(rule)
        lines.append(f"| `{name}` (`{rule.name}`) | "
                     f"{formula(doc)} | {source(doc)} | {keras_name} | {equal} |")
    return "\n".join(lines)


def replace_table(text: str, new: str) -> str:
    """``text`` with the part between the markers replaced by ``new``."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"README.md needs exactly one {START} and one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{new}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description="Rewrite the README's "
                                     "optimizer table from the rule registry.")
    parser.add_argument("--check", action="store_true",
                        help="only say whether the README's table is current (exit 1 if not)")
    args = parser.parse_args(argv)
    text = README.read_text()
    updated = replace_table(text, table())
    if args.check:
        current = updated == text
        print("README.md: the optimizer table is " + ("current." if current else
              f"out of date: run {COMMAND}"))
        return 0 if current else 1
    README.write_text(updated)
    print(f"README.md: optimizer table of {len(registry.rules())} rules written.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
