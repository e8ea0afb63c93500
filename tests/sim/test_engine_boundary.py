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


def _sim_imports(path: Path) -> set[str]:
    """The `sim` modules a module imports, anywhere in it (TYPE_CHECKING and lazy ones too)."""
    out = set()
    for module, name in _imports(ast.parse(path.read_text(), str(path))):
        if module == "sim" and name:
            out.add(f"sim.{name}")
        elif module.startswith("sim."):
            out.add(module)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle in `graph` (module -> modules it imports), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_sim_has_no_import_circle() -> None:
    graph = {}
    for path in SIM.rglob("*.py"):
        parts = path.relative_to(SIM.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _sim_imports(path)
    assert _cycle(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
