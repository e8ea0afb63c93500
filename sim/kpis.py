"""The flat KPIs an experiment reports per run, read from `sim.metrics.summary` (so the
scenario's warm-up is already cut). One number per name, None when undefined for that run."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FLOWS = ("order_release", "inventory_sync", "ship_to_invoice", "order_to_ship",
         "master_data_sync", "cancel_to_confirmed", "return_to_credit")
"""The flows whose latency the twin measures (see `sim.metrics`)."""


@dataclass(frozen=True)
class Kpi:
    name: str
    description: str
    read: Callable[[dict[str, Any]], float | None]
    lower_is_better: bool = True


def _latency(flow: str, stat: str) -> Callable[[dict[str, Any]], float | None]:
    def read(s: dict[str, Any]) -> float | None:
        lat = s["latency"][flow]
        if stat in lat.get("censored", ()):
            return math.inf  # falls on work that never finished: longer than the run
        v = lat[stat]
        return None if v is None else float(v)

    return read


def _div(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(s: dict[str, Any]) -> float | None:
        v = s["divergence"][key]
        return None if v is None else float(v)

    return read


def _top(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: float(s[key])


def _count(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: float(s["counts"].get(key, 0))


def _calls(system: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: float(s["api_calls"].get(system, 0))


def _damage(s: dict[str, Any]) -> float | None:
    # Lost, duplicated and given-up movements show in the unexplained units unless a repair
    # undid them: counting them again would count one cause twice.
    c = s["counts"]
    return float(s["divergence"]["unexplained_final_units"] + c.get("orders_stuck", 0)
                 + c.get("dead_letters_left", 0))


def _unfinished(flow: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: float(s["latency"][flow]["n_unfinished"])


def _slos_met(s: dict[str, Any]) -> float | None:
    return float(sum(x["met"] for x in s["slos"])) if s["slos"] else None


_ALL: list[Kpi] = [
    Kpi(f"{flow}_{stat}_s", f"{stat} latency of {flow}, seconds (after warm-up); infinite "
        "when it falls on operations that never finished", _latency(flow, stat))
    for flow in FLOWS for stat in ("p50", "p95", "p99")
] + [
    Kpi("divergence_max_units", "max |ERP - WMS| on-hand summed over SKU-locations",
        _div("max_units")),
    Kpi("divergence_mean_units", "mean divergence over the sampled run", _div("mean_units")),
    Kpi("divergence_final_units", "divergence at the end of the run", _div("final_units")),
    Kpi("unexplained_max_units", "max divergence not explained by movements in flight",
        _div("unexplained_max_units")),
    Kpi("unexplained_final_units", "unexplained divergence at the end (the damage)",
        _div("unexplained_final_units")),
    Kpi("skus_out_of_sync_max", "max SKU-locations that differ", _div("skus_out_of_sync_max")),
    Kpi("time_to_consistency_s", "end of last fault -> consistent again; None: never",
        _div("time_to_consistency_s")),
    Kpi("lost", "acknowledged movements never applied", _top("lost")),
    Kpi("duplicated", "movements applied more than once", _top("duplicated")),
    Kpi("unexpected", "applied but never produced", _top("unexpected")),
    Kpi("updates_given_up", "movements a direct caller gave up on",
        _count("movements_given_up")),
    Kpi("movements_never_applied", "movements the ERP never applied by the end (given up, "
        "lost or still on their way)", _unfinished("inventory_sync")),
    Kpi("orders_not_shipped", "orders placed but not shipped by the end",
        _unfinished("order_to_ship")),
    Kpi("orders_stuck", "orders that will not ship without someone's help (given up, "
        "stuck at a failed step)", _count("orders_stuck")),
    Kpi("orders_not_invoiced", "orders shipped but not invoiced by the end",
        _unfinished("ship_to_invoice")),
    Kpi("dead_letters_left", "dead letters nobody redrove by the end", _count("dead_letters_left")),
    Kpi("damage", "what someone must fix at the end: stock units unexplained + orders stuck + "
        "dead letters left", _damage),
    Kpi("warehouse_blocked_s", "warehouse worker time spent waiting on sync calls",
        _top("warehouse_blocked_s")),
    Kpi("erp_api_calls", "calls to the ERP API", _calls("erp")),
    Kpi("wms_api_calls", "calls to the WMS API", _calls("wms")),
    Kpi("api_calls", "calls to every partner API", lambda s: float(sum(s["api_calls"].values()))),
    Kpi("api_cost", "what the partner API calls cost (cost_per_1000_calls)",
        lambda s: float(s.get("api_cost", 0.0))),
    Kpi("erp_rate_limited", "ERP requests refused by its rate limit (429)",
        _count("erp_rate_limited")),
    Kpi("items_out_of_sync_final", "item master records out of sync at the end",
        _count("items_out_of_sync_final")),
    Kpi("slos_met", "SLOs met (None without SLOs)", _slos_met, lower_is_better=False),
]

KPIS: dict[str, Kpi] = {k.name: k for k in _ALL}
"""Every KPI by name, in report order."""

DEFAULT_KPI = "inventory_sync_p95_s"

HEADLINE = ("inventory_sync_p95_s", "order_release_p95_s", "ship_to_invoice_p95_s",
            "unexplained_final_units", "time_to_consistency_s", "lost", "duplicated",
            "updates_given_up", "warehouse_blocked_s")
"""The columns of the markdown report; every KPI is in the Parquet tables."""


def kpi(name: str) -> Kpi:
    """The KPI called `name`; the error lists the valid names."""
    try:
        return KPIS[name]
    except KeyError:
        raise ValueError(f"unknown KPI {name!r}; one of: {', '.join(KPIS)}") from None


SITE_FLOWS = ("order_release", "inventory_sync", "ship_to_invoice", "order_to_ship")
"""The flows measured per warehouse (the item master is one for every site; cancellations and
returns are few: their figures are the landscape's)."""
SITE_KPIS = tuple(
    [f"{flow}_{stat}_s" for flow in SITE_FLOWS for stat in ("p50", "p95", "p99")]
    + ["divergence_max_units", "divergence_mean_units", "divergence_final_units",
       "unexplained_max_units", "unexplained_final_units", "movements_never_applied",
       "orders_not_shipped", "orders_stuck", "orders_not_invoiced"])
"""The KPIs a warehouse has of its own: read from its part of the summary (`warehouses`),
named `<kpi>@<warehouse>` in flat tables and usable in per-site SLOs."""
SITE = "@"


def flatten(summary: dict[str, Any]) -> dict[str, float | None]:
    """Every KPI of one run's `sim.metrics.summary`, then each warehouse's (`kpi@site`)."""
    out = {k.name: k.read(summary) for k in _ALL}
    for site, part in summary.get("warehouses", {}).items():
        out.update({f"{name}{SITE}{site}": value for name, value in flatten_site(part).items()})
    return out


def flatten_site(part: dict[str, Any]) -> dict[str, float | None]:
    """A warehouse's KPIs from its part of the summary."""
    return {name: KPIS[name].read(part) for name in SITE_KPIS}
