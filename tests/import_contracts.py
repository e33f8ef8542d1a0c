"""An import-linter contract type that the built-in ones lack: no private names across modules.

``private_modules`` (built in) keeps a module named ``_x`` to its own package. This contract
keeps a *name* ``_x`` (a function, class or constant) to the module that defines it: no
other module of the checked packages may write ``from a.b import _x``, nor ``b._x`` after
``from a import b`` or ``import a.b as b``. A helper two modules need is public, under a
name that says what it is. ``.importlinter`` declares it
(``contract_types = private_names: tests.import_contracts.PrivateNamesContract``);
``lint-imports`` runs from the repository root, where ``tests`` is importable.
"""

from __future__ import annotations

import ast
import importlib.util

from importlinter import Contract, ContractCheck, fields, output


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def reaches(source: str, importer: str, modules: set[str]) -> list[str]:
    """Each reach of ``source`` (the text of module ``importer``) into a private name of
    another module among ``modules``: ``"importer:line uses module._name"``."""
    found, bound = [], {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
            for alias in node.names:
                if _is_private(alias.name) and f"{node.module}.{alias.name}" not in modules:
                    found.append(f"{importer}:{node.lineno} uses {node.module}.{alias.name}")
                elif f"{node.module}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    bound[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in bound and _is_private(node.attr)
                and bound[node.value.id] != importer):
            found.append(f"{importer}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    return found


class PrivateNamesContract(Contract):
    """No module of ``containers`` uses another module's private names."""

    type_name = "private_names"
    containers = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        modules = set(graph.modules)
        found = []
        for container in self.containers:
            for module in sorted(graph.find_descendants(container) | {container}):
                spec = importlib.util.find_spec(module)
                if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                    continue
                with open(spec.origin, encoding="utf-8") as file:
                    found += reaches(file.read(), module, modules)
        return ContractCheck(kept=not found, metadata={"reaches": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["reaches"]:
            output.print_error(line)
            output.new_line()
