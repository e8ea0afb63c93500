"""One engine: the twin carries out no saga command and calls no saga transition itself; it
plays the partners and hands everything else to `integration_core.engine`."""

from __future__ import annotations

import ast
from pathlib import Path

SIM = Path(__file__).resolve().parents[2] / "sim"
FORBIDDEN_MODULES = ("integration_core.orchestrator.commands",
                     "integration_core.orchestrator.logic")
FORBIDDEN_NAMES = {"handle", "start"}
"""The saga's transition functions: only the engine's order desk calls them."""


def _imports(tree: ast.AST) -> list[tuple[str, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names]
    return out


def _offenders(source: str, name: str) -> list[str]:
    out = []
    for module, imported in _imports(ast.parse(source, name)):
        if module.startswith(FORBIDDEN_MODULES):
            out.append(f"{name}: imports {module}")
        if module.startswith("integration_core.orchestrator") and imported in FORBIDDEN_NAMES:
            out.append(f"{name}: imports the saga's {imported}()")
    return out


def test_sim_goes_through_the_engine_for_the_saga() -> None:
    found = [o for path in sorted(SIM.rglob("*.py"))
             for o in _offenders(path.read_text(), path.name)]
    assert found == []


def test_the_boundary_check_sees_a_forbidden_import() -> None:
    bad = ("from integration_core.orchestrator import Status, handle\n"
           "from integration_core.orchestrator.commands import ReserveInventory\n")
    assert _offenders(bad, "x.py") == [
        "x.py: imports the saga's handle()",
        "x.py: imports integration_core.orchestrator.commands"]
