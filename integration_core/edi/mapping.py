"""Transaction sets to and from the canonical models.

One mapper per set, chosen from `MAPPERS` by ST01. A mapper reads the flat segment list (the
syntax check has already placed each segment), checks the set's totals against its lines and
returns messages or errors, never both: a set that cannot be mapped whole is not mapped at all.
Quantities stay Decimal until a model converts them; with a catalog, units convert to base.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from integration_core.edi.document import FunctionalGroup, Segment, TransactionSet
from integration_core.edi.envelope import make_set
from integration_core.edi.errors import AppCode, EdiError
from integration_core.edi.records import AckRecord, AsnLine, Message, OrderRelease, ReleaseAction
from integration_core.edi.syntax import parse_date
from integration_core.models import (
    MOVEMENT_SIGN,
    Canonical,
    Catalog,
    Channel,
    InventoryBalance,
    Movement,
    MovementKind,
    SalesOrder,
    Shipment,
)

W05_ACTION: Mapping[str, ReleaseAction] = MappingProxyType(
    {"N": ReleaseAction.NEW, "R": ReleaseAction.CHANGE, "F": ReleaseAction.CANCEL}
)
W05_CODE: Mapping[ReleaseAction, str] = MappingProxyType({v: k for k, v in W05_ACTION.items()})
_NOT_ID = re.compile(r"[^\x21-\x7e]|[#%/?\\]")


@dataclass(frozen=True, slots=True)
class Context:
    """Where the set came from: ids for movement keys, fallbacks for parties."""

    sender: str
    interchange: str
    group: FunctionalGroup
    catalog: Catalog | None = None


class _Unmappable(Exception):
    def __init__(self, errors: list[EdiError]) -> None:
        self.errors = errors


def _fail(code: AppCode, message: str, seg: str = "", position: int = 0) -> _Unmappable:
    return _Unmappable([EdiError(code, message, segment_id=seg, segment_position=position)])


def _find(ts: TransactionSet, tag: str) -> list[tuple[int, Segment]]:
    return [(i, s) for i, s in enumerate(ts.segments, 1) if s.tag == tag]


def _first(ts: TransactionSet, tag: str) -> Segment:
    found = _find(ts, tag)
    if not found:
        raise _fail(AppCode.INVALID_CONTENT, f"the {ts.code} has no {tag}", tag)
    return found[0][1]


def _party(ts: TransactionSet, *codes: str) -> str:
    """N104 of the first N1 with one of the entity codes, in the order given; "" if none."""
    for code in codes:
        for _, n1 in _find(ts, "N1"):
            if n1.get(1) == code and n1.get(4):
                return n1.get(4)
    return ""


def _dates(ts: TransactionSet) -> dict[str, date]:
    out: dict[str, date] = {}
    for _, g62 in _find(ts, "G62"):
        d = parse_date(g62.get(2))
        if d is not None:
            out.setdefault(g62.get(1), d)
    return out


def _at(d: date | None) -> datetime:
    if d is None:
        raise _fail(AppCode.INVALID_CONTENT, "the set carries no usable date")
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _product(seg: Segment, pairs: Sequence[tuple[int, int]], upc: int = 0) -> str:
    """The first product id of the qualifier/id pairs, else the U.P.C. case code."""
    for _, id_pos in pairs:
        if seg.get(id_pos):
            return seg.get(id_pos)
    return seg.get(upc) if upc else ""


def _qty(value: str, seg: str, position: int) -> Decimal:
    try:
        q = Decimal(value)
    except InvalidOperation:
        raise _fail(
            AppCode.INVALID_CONTENT, f"{seg} quantity {value!r} is not a number", seg, position
        ) from None
    if not q.is_finite():
        raise _fail(
            AppCode.INVALID_CONTENT, f"{seg} quantity {value!r} is not finite", seg, position
        )
    return q


def _base(ctx: Context, sku: str, q: Decimal, unit: str, seg: str, position: int) -> int:
    if ctx.catalog is not None and sku in ctx.catalog.items:
        return ctx.catalog.items[sku].to_base(q, unit or None)
    if unit not in ("", "EA"):  # without the item master only eaches count as base units
        raise _fail(AppCode.INVALID_CONTENT, f"{seg} quantity in {unit!r}: no item master "
                    "says how many base units that is", seg, position)  # fmt: skip
    if q != q.to_integral_value():
        raise _fail(
            AppCode.INVALID_CONTENT,
            f"{seg} quantity {q} is not whole and no item master says how it converts",
            seg,
            position,
        )
    return int(q)


def _check_total(ts: TransactionSet, tag: str, pos: int, lines: Decimal) -> None:
    found = _find(ts, tag)
    if not found:
        return
    at, seg = found[0]
    declared = _qty(seg.get(pos), tag, at)
    if declared != lines:
        raise _fail(
            AppCode.TOTAL_MISMATCH,
            f"{tag}{pos:02d} says {declared}, the lines add up to {lines}",
            tag,
            at,
        )


def _ident(*parts: str) -> str:
    return _NOT_ID.sub("_", "-".join(p.strip() for p in parts if p.strip()))


def _model(ctx: Context, model: type[Canonical], data: dict[str, Any]) -> Any:
    if ctx.catalog is not None:
        return ctx.catalog.parse(model, data)
    return model.model_validate(data)


def _order_release(ts: TransactionSet, ctx: Context) -> list[Message]:
    w05 = _first(ts, "W05")
    action = W05_ACTION.get(w05.get(1))
    if action is None:
        raise _fail(
            AppCode.INVALID_CONTENT,
            f"W0501 {w05.get(1)!r} is not N (new), R (change) or F (cancel)",
            "W05",
            2,
        )
    lines: list[dict[str, Any]] = []
    lx, total = "", Decimal(0)
    for at, seg in enumerate(ts.segments, 1):
        if seg.tag == "LX":
            lx = seg.get(1)
        elif seg.tag == "W01":
            total += _qty(seg.get(1), "W01", at)
            lines.append(
                {
                    "line_no": int(lx) if lx.isdigit() and int(lx) > 0 else len(lines) + 1,
                    "sku": _product(seg, ((4, 5), (6, 7)), 3),
                    "quantity": _qty(seg.get(1), "W01", at),
                    "unit": seg.get(2) or None,
                }
            )
            lx = ""
    if len({ln["line_no"] for ln in lines}) != len(lines):
        for n, ln in enumerate(lines, 1):
            ln["line_no"] = n
    _check_total(ts, "W76", 1, total)
    gs, dates = ctx.group.header, _dates(ts)
    requested = dates.get("02") or dates.get("10")
    order = _model(ctx, SalesOrder, {
        "order_id": w05.get(2), "customer_id": _party(ts, "ST") or gs.get(2),
        "channel": Channel.EDI, "placed_at": _group_time(gs), "requested_date": requested,
        "ship_from": _party(ts, "WH") or None, "lines": lines,
    })  # fmt: skip
    return [OrderRelease(action, order, w05.get(3))]


def _group_time(gs: Segment) -> datetime:
    d, t = parse_date(gs.get(4)), gs.get(5)
    at = _at(d)
    if t[:4].isdigit() and int(t[:2]) < 24 and int(t[2:4]) < 60:
        at = at.replace(hour=int(t[:2]), minute=int(t[2:4]))
    return at


def _shipment(ts: TransactionSet, ctx: Context) -> list[Message]:
    w06 = _first(ts, "W06")
    lines: list[dict[str, Any]] = []
    lx, shipped = "", Decimal(0)
    for at, seg in enumerate(ts.segments, 1):
        if seg.tag == "LX":
            lx = seg.get(1)
        elif seg.tag == "W12":
            q = _qty(seg.get(3) or "0", "W12", at)
            shipped += q
            if q == 0:
                continue  # a line reported as not shipped ships nothing
            sku = _product(seg, ((7, 8),), 6)
            lines.append({"order_line_no": int(lx) if lx.isdigit() else len(lines) + 1,
                          "sku": sku, "quantity_base": _base(ctx, sku, q, seg.get(5), "W12", at),
                          "lot": seg.get(9) or None})  # fmt: skip
    _check_total(ts, "W03", 1, shipped)
    w27 = _find(ts, "W27")
    carrier = w27[0][1] if w27 else Segment("W27", ())
    when = _dates(ts).get("11") or parse_date(w06.get(3))
    return [_model(ctx, Shipment, {
        "shipment_id": w06.get(4) or w06.get(2), "order_id": w06.get(2),
        "warehouse_id": _party(ts, "SF", "WH") or ctx.group.header.get(2), "lines": lines,
        "carrier": carrier.get(2), "service": carrier.get(3), "shipped_at": _at(when),
    })]  # fmt: skip


@dataclass(frozen=True, slots=True)
class MovementSpec:
    """Where a movement set keeps what a `Movement` needs (element positions)."""

    kind: MovementKind
    header: str
    date: int
    reference: int
    detail: str
    quantity: int
    unit: int
    products: tuple[tuple[int, int], ...]
    upc: int
    lot: int
    parties: tuple[str, ...]
    total: tuple[str, int] | None = None
    reason: int = 0


MOVEMENTS: Mapping[str, MovementSpec] = MappingProxyType({
    "943": MovementSpec(MovementKind.TRANSFER_OUT, "W06", 3, 2, "W04", 1, 2, ((4, 5), (6, 7)),
                        3, 10, ("SF",), ("W03", 1)),
    "944": MovementSpec(MovementKind.TRANSFER_IN, "W17", 2, 3, "W07", 1, 2, ((4, 5), (6, 7)),
                        3, 8, ("WH",), ("W14", 1)),
    "947": MovementSpec(MovementKind.ADJUSTMENT, "W15", 1, 2, "W19", 2, 3, ((5, 6), (7, 8)),
                        4, 9, ("WH",), None, reason=1),
})  # fmt: skip


def _movements(ts: TransactionSet, ctx: Context) -> list[Message]:
    spec = MOVEMENTS[ts.code]
    head = _first(ts, spec.header)
    when = _at(_dates(ts).get("11") or parse_date(head.get(spec.date)))
    location = _party(ts, *spec.parties) or ctx.group.header.get(2)
    ref = _ident(head.get(spec.reference))
    out: list[Message] = []
    total = Decimal(0)
    for at, seg in enumerate(ts.segments, 1):
        if seg.tag != spec.detail:
            continue
        q = _qty(seg.get(spec.quantity), seg.tag, at)
        total += q
        sku, unit = _product(seg, spec.products, spec.upc), seg.get(spec.unit)
        base = _base(ctx, sku, abs(q), unit, seg.tag, at)
        sign = MOVEMENT_SIGN[spec.kind] or (1 if q > 0 else -1)  # adjustments carry their own
        out.append(_model(ctx, Movement, {
            "movement_id": _ident(ctx.sender, ctx.interchange, ts.control, str(len(out) + 1)),
            "kind": spec.kind, "sku": sku, "location": location, "quantity": q,
            "unit": unit or None, "quantity_base": sign * base,
            "lot": seg.get(spec.lot) or None, "occurred_at": when,
            "reason_code": seg.get(spec.reason) or None if spec.reason else None,
            "references": (ref,) if ref else (),
        }))  # fmt: skip
    if spec.total is not None:
        _check_total(ts, *spec.total, total)
    return out


def _snapshot(ts: TransactionSet, ctx: Context) -> list[Message]:
    location = _party(ts, "WH", "ST", "SF") or ctx.group.header.get(2)
    items: list[tuple[str, dict[str, Decimal], int]] = []
    hashed = Decimal(0)
    for at, seg in enumerate(ts.segments, 1):
        if seg.tag == "LIN":
            pairs = tuple((i, i + 1) for i in range(2, 31, 2))
            items.append((_product(seg, pairs), {}, at))
        elif seg.tag == "QTY" and items:
            q = _qty(seg.get(2), "QTY", at)
            hashed += q
            items[-1][1].setdefault(seg.get(1), q)
    ctt = _find(ts, "CTT")
    if ctt:
        at, seg = ctt[0]
        if seg.get(1) != str(len(items)):
            raise _fail(
                AppCode.TOTAL_MISMATCH,
                f"CTT01 says {seg.get(1)} items, the set has {len(items)}",
                "CTT",
                at,
            )
        if seg.get(2):
            _check_total(ts, "CTT", 2, hashed)
    out: list[Message] = []
    for sku, qty, at in items:
        on_hand = qty["17"] if "17" in qty else qty.get("33")  # on hand, else available
        if on_hand is None:
            raise _fail(AppCode.INVALID_CONTENT, f"LIN {sku} has no QTY 17 or 33", "LIN", at)
        out.append(
            _model(
                ctx,
                InventoryBalance,
                {
                    "sku": sku,
                    "location": location,
                    "on_hand": _base(ctx, sku, on_hand, "", "QTY", at),
                },
            )
        )
    return out


def _asn(ts: TransactionSet, ctx: Context) -> list[Message]:
    bsn = _first(ts, "BSN")
    levels: dict[str, tuple[str, str]] = {}  # HL01 -> (parent HL01, level code)
    facts: dict[str, dict[str, str]] = {}
    items: list[tuple[str, int]] = []
    current = ""
    for at, seg in enumerate(ts.segments, 1):
        if seg.tag == "HL":
            current, parent = seg.get(1), seg.get(2)
            if parent and parent not in levels:
                raise _fail(
                    AppCode.INVALID_CONTENT,
                    f"HL {current} names parent {parent}, which is not before it",
                    "HL",
                    at,
                )
            levels[current] = (parent, seg.get(3))
            facts[current] = {}
            if seg.get(3) == "I":
                items.append((current, at))
        elif current:
            f = facts[current]
            if seg.tag == "PRF":
                f["order"] = seg.get(1)
            elif seg.tag == "MAN":
                f.setdefault("package", seg.get(2))
            elif seg.tag == "LIN":
                f["sku"] = _product(seg, tuple((i, i + 1) for i in range(2, 31, 2)))
            elif seg.tag == "SN1":
                f["quantity"], f["unit"] = seg.get(2), seg.get(3)
            elif seg.tag == "N1" and seg.get(1) in ("SF", "ST"):
                f[seg.get(1)] = seg.get(4) or seg.get(2)
    ctt = _find(ts, "CTT")
    if ctt and ctt[0][1].get(1) != str(len(levels)):
        raise _fail(
            AppCode.TOTAL_MISMATCH,
            f"CTT01 says {ctt[0][1].get(1)}, the set has {len(levels)} HL levels",
            "CTT",
            ctt[0][0],
        )

    def up(hl: str, key: str) -> str:
        while hl:
            if key in facts[hl]:
                return facts[hl][key]
            hl = levels[hl][0]
        return ""

    shipped = parse_date(bsn.get(3))
    for _, dtm in _find(ts, "DTM"):
        if dtm.get(1) == "011":
            shipped = parse_date(dtm.get(2)) or shipped
    out: list[Message] = []
    for hl, at in items:
        f = facts[hl]
        if not f.get("sku") or not f.get("quantity"):
            raise _fail(AppCode.INVALID_CONTENT, f"item level HL {hl} has no LIN or SN1", "HL", at)
        out.append(AsnLine(bsn.get(2), shipped, up(hl, "SF"), up(hl, "ST"), up(hl, "order"),
                           up(hl, "package"), f["sku"], _qty(f["quantity"], "SN1", at),
                           f.get("unit", "")))  # fmt: skip
    return out


def _acks(ts: TransactionSet, ctx: Context) -> list[Message]:
    out: list[Message] = []
    group, ak2 = "", Segment("AK2", ())
    for seg in ts.segments:
        if seg.tag == "AK1":
            group = seg.get(2)
        elif seg.tag == "AK2":
            ak2 = seg
        elif seg.tag == "AK5":
            out.append(AckRecord("997", group, seg.get(1), ak2.get(2), ak2.get(1)))
        elif seg.tag == "AK9":
            out.append(AckRecord("997", group, seg.get(1)))
    return out


Mapper = Callable[[TransactionSet, Context], list[Message]]
MAPPERS: Mapping[str, Mapper] = MappingProxyType({
    "940": _order_release, "945": _shipment, "943": _movements, "944": _movements,
    "947": _movements, "846": _snapshot, "856": _asn, "997": _acks,
})  # fmt: skip


def map_set(ts: TransactionSet, ctx: Context) -> tuple[list[Message], list[EdiError]]:
    """The set's messages, or the errors why it has none."""
    mapper = MAPPERS.get(ts.code)
    if mapper is None:
        return [], [EdiError(AppCode.INVALID_CONTENT, f"no mapping for a {ts.code}", "ST", 1)]
    try:
        return mapper(ts, ctx), []
    except _Unmappable as exc:
        return [], exc.errors
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return [], [
            EdiError(
                AppCode.INVALID_CONTENT,
                f"{ts.code} does not make a valid canonical record: {where}: {first['msg']}",
            )
        ]
    except (ValueError, LookupError) as exc:  # the item master refused a unit or quantity
        return [], [EdiError(AppCode.INVALID_CONTENT, f"{ts.code}: {exc}")]


def release_to_940(release: OrderRelease, control: str) -> TransactionSet:
    """The 940 asking a 3PL to ship (or change, or cancel) the order."""
    order = release.order
    body = [
        Segment("W05", (W05_CODE[release.action], order.order_id, release.purchase_order)),
        Segment("N1", ("ST", "", "91", order.customer_id)),
    ]
    if order.ship_from:
        body.append(Segment("N1", ("WH", "", "91", order.ship_from)))
    if order.requested_date:
        body.append(Segment("G62", ("02", order.requested_date.strftime("%Y%m%d"))))
    total = Decimal(0)
    for line in order.lines:
        body.append(Segment("LX", (str(line.line_no),)))
        body.append(Segment("W01", (str(line.quantity), line.unit or "EA", "", "VN", line.sku)))
        total += line.quantity
    body.append(Segment("W76", (str(total),)))
    return make_set("940", control, body)


def shipment_to_945(shipment: Shipment, control: str, units: Mapping[str, str] | None = None
                    ) -> TransactionSet:
    """The 945 a 3PL sends when it shipped the order (what `_shipment` reads back): W06 with
    the order and shipment ids, the warehouse as ship-from, one LX/W12 per line in base units
    (`units`: SKU -> base unit code; EA when absent), W03 the total."""
    when = shipment.shipped_at.strftime("%Y%m%d")
    body = [Segment("W06", ("N", shipment.order_id, when, shipment.shipment_id)),
            Segment("N1", ("SF", "", "91", shipment.warehouse_id))]
    if shipment.carrier or shipment.service:  # W27-02 the carrier (SCAC), -03 the service
        body.append(Segment("W27", ("M", shipment.carrier, shipment.service)))
    for line in shipment.lines:
        unit = (units or {}).get(line.sku, "EA")
        q = str(line.quantity_base)
        body.append(Segment("LX", (str(line.order_line_no),)))
        body.append(Segment("W12", ("CC", q, q, "", unit, "", "VN", line.sku, line.lot or "")))
    body.append(Segment("W03", (str(sum(ln.quantity_base for ln in shipment.lines)),)))
    return make_set("945", control, body)
