"""Order-status breaks: the ERP, WMS and shop disagree about an order for longer than allowed.

Each system reports its status for an order and when it last changed, mapped by the caller to
one shared status vocabulary. A difference is normal for a while (the WMS ships, the ERP hears
of it minutes later), so a break is raised only when it outlives the allowed lag of the
*leading* status: the status most recently reached, whose news has not yet spread.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

SYSTEMS = ("erp", "wms", "shop")


@dataclass(frozen=True, slots=True)
class OrderView:
    """One system's view of an order."""

    status: str
    since: float
    """When this system's status last changed."""


class OrderBreakKind(StrEnum):
    STATUS_MISMATCH = "status_mismatch"
    MISSING = "missing"
    """A system that must know the order does not."""


@dataclass(frozen=True, slots=True)
class OrderBreak:
    order_id: str
    kind: OrderBreakKind
    erp_status: str | None
    wms_status: str | None
    shop_status: str | None
    """None: the system does not report the order."""
    leading_system: str
    leading_status: str
    since: float
    """When the leading status was reached: the disagreement is at least this old."""
    age_s: float
    allowed_lag_s: float


def order_breaks(
    erp: Mapping[str, OrderView],
    wms: Mapping[str, OrderView],
    shop: Mapping[str, OrderView],
    now: float,
    *,
    allowed_lag: Mapping[str, float] | None = None,
    default_lag: float = 900.0,
    wms_statuses: Collection[str] = (),
) -> list[OrderBreak]:
    """Orders on which the systems disagree for longer than `allowed_lag[leading status]`
    (`default_lag` for a status not listed), sorted by order id.

    The ERP, the system of record for orders, must know every order another system reports.
    The WMS must know it once any system reports one of `wms_statuses` (e.g. released), since
    orders reach it only on release. The shop knows only its own orders, so its absence is
    never a break."""
    lags = allowed_lag or {}
    views = {"erp": erp, "wms": wms, "shop": shop}
    out = []
    for order_id in sorted(set(erp) | set(wms) | set(shop)):
        seen = {name: v[order_id] for name, v in views.items() if order_id in v}
        statuses = {v.status for v in seen.values()}
        missing = "erp" not in seen or (
            "wms" not in seen and not statuses.isdisjoint(wms_statuses)
        )
        if not missing and len(statuses) == 1:
            continue
        # Latest change leads; ties go to the first system in SYSTEMS, for determinism.
        lead = max(seen, key=lambda name: (seen[name].since, -SYSTEMS.index(name)))
        view = seen[lead]
        allowed = lags.get(view.status, default_lag)
        age = now - view.since
        if age <= allowed:
            continue
        out.append(OrderBreak(
            order_id=order_id,
            kind=OrderBreakKind.MISSING if missing else OrderBreakKind.STATUS_MISMATCH,
            erp_status=seen["erp"].status if "erp" in seen else None,
            wms_status=seen["wms"].status if "wms" in seen else None,
            shop_status=seen["shop"].status if "shop" in seen else None,
            leading_system=lead, leading_status=view.status, since=view.since, age_s=age,
            allowed_lag_s=allowed,
        ))
    return out
