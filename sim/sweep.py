"""Sweep files: a grid over scenario fields, declared in TOML next to the scenarios.

```toml
name = "patterns_x_outage"          # default: the file's stem
base = "../baseline.toml"           # or a list of scenario files: one more grid dimension
replications = 5
kpi = "unexplained_final_units"     # ranking KPI (see sim.kpis.KPIS); lower is better unless
lower_is_better = true              # the KPI says otherwise or this is set

[set]                               # applied to every configuration
duration_h = 12

[grid]                              # dotted field paths; list indices allowed
"patterns.inventory" = ["direct", "event_driven"]
"warehouses.0.movements_per_hour" = [2000, 8000]
"faults.outages" = [[], [{ system = "erp", start_h = 4, duration_h = 2 }]]  # whole value

[labels]                            # optional names for a grid key's values
"faults.outages" = ["none", "erp 2h"]

rank_within = ["faults.outages"]    # optional: rank separately within each outage (grid keys,
                                    # or "scenario" when `base` lists several files)
```

A path walks the fully resolved base scenario (defaults filled in), so every field can be
swept; the result is validated by `Scenario`, whose errors name the field.
"""

from __future__ import annotations

import copy
import itertools
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.kpis import kpi as lookup_kpi
from sim.scenario import Scenario, ScenarioError, load


class SweepError(ValueError):
    """A sweep file that cannot be used; the message names the file and the field."""


class SweepSpec(BaseModel):
    """The TOML file's schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="Experiment name; default: the file's stem.")
    description: str = ""
    base: str | list[str] = Field(
        description="Scenario file(s), relative to the sweep file. Several: a grid dimension."
    )
    replications: int = Field(5, ge=1, le=10_000)
    kpi: str = Field("inventory_sync_p95_s", description="KPI the ranking orders by.")
    lower_is_better: bool | None = Field(None, description="Default: the KPI's own sense.")
    set: dict[str, Any] = Field(default_factory=dict, description="Fixed dotted-path values.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted path -> list of values to sweep."
    )
    labels: dict[str, list[str]] = Field(
        default_factory=dict, description="Dotted path -> one display name per grid value."
    )
    rank_within: list[str] = Field(
        default_factory=list, description="Grid keys: rank separately per combination of their "
        "values (e.g. per outage length) instead of across the whole grid."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        lookup_kpi(self.kpi)
        if isinstance(self.base, list) and not self.base:
            raise ValueError("base needs at least one scenario file")
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"grid '{key}' has no values")
        for key, names in self.labels.items():
            if key not in self.grid:
                raise ValueError(f"labels '{key}' names no grid key")
            if len(names) != len(self.grid[key]):
                raise ValueError(f"labels '{key}' has {len(names)} names for "
                                 f"{len(self.grid[key])} grid values")
        several = isinstance(self.base, list) and len(self.base) > 1
        for key in self.rank_within:
            if key not in self.grid and not (key == "scenario" and several):
                raise ValueError(f"rank_within '{key}' is not a grid key")
        return self


@dataclass(frozen=True)
class Config:
    """One grid point: a fully resolved scenario and the values that made it."""

    id: str
    label: str
    params: dict[str, Any]
    scenario: Scenario
    shown: dict[str, str] = field(default_factory=dict)
    """Each param as the label shows it (its `labels` name, or the value in short)."""


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    replications: int
    kpi: str
    lower_is_better: bool
    configs: tuple[Config, ...]
    rank_within: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    """The sweep file as read, with its path, for the experiment record."""


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b.0.c` in nested dicts and lists, in place. In a list, a part is an index, `*`
    (every entry: `warehouses.*.peak_multiplier` scales every site) or an entry's `id`
    (`warehouses.DC.movements_per_hour`). An unknown key is added (the scenario validation
    then rejects it by name); a bad list index or a scalar in the way raises."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise ValueError(f"field '{path}': not a dotted path")
    _set(data, parts, 0, path, value)


def _set(node: Any, parts: list[str], i: int, path: str, value: Any) -> None:
    part, last = parts[i], i == len(parts) - 1
    where = ".".join(parts[:i]) or "(top level)"
    if isinstance(node, list):
        if part == "*":
            idxs = list(range(len(node)))
        elif part.isdigit():
            idxs = [int(part)]
            if idxs[0] >= len(node):
                raise ValueError(f"field '{path}': index {idxs[0]} out of range ('{where}' has "
                                 f"{len(node)} entries)")
        else:
            idxs = [j for j, x in enumerate(node) if isinstance(x, dict) and x.get("id") == part]
            if not idxs:
                ids = [x.get("id") for x in node if isinstance(x, dict)]
                raise ValueError(f"field '{path}': '{where}' is a list, '{part}' is not an index"
                                 + (f", '*' or an id ({', '.join(map(str, ids))})" if any(ids)
                                    else ""))
        for idx in idxs:
            if last:
                node[idx] = copy.deepcopy(value)
            else:
                if node[idx] is None:
                    node[idx] = {}
                _set(node[idx], parts, i + 1, path, value)
    elif isinstance(node, dict):
        if last:
            node[part] = copy.deepcopy(value)  # `*` sets it in several entries
        else:
            if node.get(part) is None:
                node[part] = {}
            _set(node[part], parts, i + 1, path, value)
    else:
        raise ValueError(f"field '{path}': '{where}' is {node!r}, not a table or list")


def resolve(base: str | Path, assignments: Mapping[str, Any]) -> Scenario:
    """The scenario in `base` with dotted-path `assignments` applied, validated."""
    base = Path(base)
    scenario = load(base)
    if not assignments:
        return scenario
    data = scenario.model_dump(mode="json", by_alias=True)
    for path, value in assignments.items():
        set_path(data, path, copy.deepcopy(value))
    tops = {path.split(".")[0] for path in assignments}
    # Through `load` so errors read like any scenario error (file, field, expected).
    return load(base, **{t: data[t] for t in tops})


def short(key: str) -> str:
    """A dotted path's last part, for labels."""
    return key.rsplit(".", 1)[-1]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 32 else text[:29] + "..."


def expand(
    bases: Sequence[str | Path],
    grid: Mapping[str, Sequence[Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> list[Config]:
    """Every combination of `bases` x `grid` values (in order, last key fastest), with
    `fixed` applied to all. Raises ValueError / ScenarioError naming the field."""
    grid, fixed, labels = grid or {}, fixed or {}, labels or {}
    names = [load(b).name for b in bases]
    choices = [list(enumerate(v)) for v in grid.values()]
    configs = []
    width = max(2, len(str(len(bases) * _product(grid) - 1)))
    for n, (b, combo) in enumerate(itertools.product(range(len(bases)),
                                                     itertools.product(*choices))):
        params: dict[str, Any] = {"scenario": names[b]} if len(bases) > 1 else {}
        shown = {"scenario": names[b]} if len(bases) > 1 else {}
        for key, (j, value) in zip(grid, combo, strict=True):
            params[key] = value
            shown[key] = labels[key][j] if key in labels else _show(value)
        label = ", ".join(v if k == "scenario" else f"{short(k)}={v}"
                          for k, v in shown.items()) or names[b]
        scenario = resolve(bases[b], {**fixed, **{k: params[k] for k in grid}})
        configs.append(Config(f"c{n:0{width}d}", label, params, scenario, shown))
    return configs


def _product(grid: Mapping[str, Sequence[Any]]) -> int:
    n = 1
    for v in grid.values():
        n *= len(v)
    return n


def _problems(exc: ValidationError) -> str:
    return "\n".join(
        f"  field '{'.'.join(str(p) for p in e['loc']) or '(top level)'}': {e['msg']}"
        + (f" (got {e['input']!r})" if e["type"] != "missing" else "")
        for e in exc.errors()
    )


def is_sweep(path: str | Path) -> bool:
    """Whether `path` reads as a sweep file (it names a `base` scenario; a scenario has no
    such field). Unreadable files are not: the scenario loader says what is wrong."""
    try:
        return "base" in tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def load_sweep(path: str | Path) -> Sweep:
    """Read and expand a sweep file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: not valid TOML: {exc}") from None
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise SweepError(f"{path}: invalid sweep:\n{_problems(exc)}") from None
    bases = [path.parent / b for b in ([spec.base] if isinstance(spec.base, str) else spec.base)]
    try:
        configs = expand(bases, spec.grid, spec.set, spec.labels)
    except ScenarioError as exc:
        raise SweepError(f"{path}: a grid point is not a valid scenario: {exc}") from None
    except ValueError as exc:
        raise SweepError(f"{path}: {exc}") from None
    sense = lookup_kpi(spec.kpi).lower_is_better
    return Sweep(
        name=spec.name or path.stem, description=spec.description,
        replications=spec.replications, kpi=spec.kpi,
        lower_is_better=sense if spec.lower_is_better is None else spec.lower_is_better,
        configs=tuple(configs), rank_within=tuple(spec.rank_within),
        source={"path": str(path), **raw},
    )
