"""Principle 9 (small, sorted public API) and principle 1 (the core stays sans-I/O)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import integration_core

FORBIDDEN = {"simpy", "asyncio", "fastapi", "starlette", "uvicorn", "httpx", "requests",
             "aiohttp", "flask", "locust", "sim", "socket", "trio"}
CORE = Path(integration_core.__file__).parent


def packages() -> list[str]:
    found = ["integration_core"]
    for mod in pkgutil.walk_packages([str(CORE)], "integration_core."):
        if mod.ispkg:
            found.append(mod.name)
    return found


@pytest.mark.parametrize("name", packages())
def test_all_is_sorted_and_matches_public_names(name: str) -> None:
    pkg = importlib.import_module(name)
    exported = pkg.__all__
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    public = {n for n in vars(pkg) if not n.startswith("_")}
    submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
    assert set(exported) == public - submodules - {"annotations"}, name


def test_core_does_not_import_io_frameworks() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        if "service" in path.relative_to(CORE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
