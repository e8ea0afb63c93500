"""The partner port over X12: the order desk's releases to an EDI 3PL, as 940s.

`X12Partners` is the HTTP adapter (`Partners`) with one operation carried differently: a
``release`` is written as an X12 940 (`edi.release_to_940`: the allocated lines in base
units, the order's customer as ship-to, its warehouse when it named one), posted to
``<edi_3pl_url>/x12`` as ``application/edi-x12``, and the 3PL's 997 is read back as the
port's `ReleaseAnswer`: AK5/AK9 accepted (A or E) is accepted; rejected (R, or a TA1 R) is a
refusal with the 997's codes as the reason. The 3PL later confirms the shipment with a 945 on
the core's ``POST /v1/edi/x12``, which the order desk takes like any shipment confirmation.

Every call is a new interchange, ISA13 from the core's own control-number counter (the one
the gateway numbers its replies with, in the bus store); the 3PL releases an order id once, so
a call made again after a lost answer releases nothing twice. Errors are classified as in
`Partners`: no answer, 429, 5xx or an unreadable 997 are transient (retried); a 4xx without a
997 is a refusal.

``cancel_release`` is refused without a call (`CANCEL_REFUSED`): the JSON WMS at wms_url
never had the release, and a 997 to a 940 cancel would not say whether the 3PL stopped the
order. Every other operation goes as in `Partners`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import ValidationError

from integration_core.bus import Store, Tx
from integration_core.edi import OrderRelease, ReleaseAction, parse, release_to_940, serialize
from integration_core.edi.envelope import wrap
from integration_core.edi.gateway import CONTROL_NS
from integration_core.engine.desk import ORDERS
from integration_core.engine.partners import CancelAnswer, Release, ReleaseAnswer
from integration_core.errors import PayloadError, TransientError
from integration_core.models import Catalog, OrderLine, SalesOrder
from integration_core.service.config import Settings
from integration_core.service.edi import EDI_MEDIA_TYPE
from integration_core.service.partners import Partners

EDI_3PL_PATH = "/x12"
CANCEL_REFUSED = ("the warehouse is an EDI 3PL: X12 carries no answer to a cancellation (a 997 "
                  "acknowledges the 940 only); cancel with the 3PL directly")
_MAX_CONTROL = 999_999_999
_ACCEPTED = ("A", "E")


def next_control(store: Store) -> int:
    """Our next ISA13, from the counter the gateway's replies use (one sequence per sender:
    a partner sees every interchange of ours numbered apart)."""
    n = int(store.get_state(CONTROL_NS, "isa13") or 0) % _MAX_CONTROL + 1

    def write(tx: Tx) -> None:
        tx.put(CONTROL_NS, "isa13", n)

    store.apply("edi", f"edi.control.out:{n}:{datetime.now(UTC).isoformat()}", write)
    return n


def release_940(release: Release, order: Mapping[str, Any] | None, catalog: Catalog,
                control: int, sender: str, receiver: str, when: datetime) -> bytes:
    """The release as one interchange holding one 940 (quantities in each SKU's base unit).
    `order`: the order as placed (its customer and warehouse), if the core has it."""
    placed = order or {}
    lines = tuple(
        OrderLine(line_no=ln.line_no, sku=ln.sku, quantity=Decimal(ln.quantity_base),
                  unit=catalog.items[ln.sku].base_uom if ln.sku in catalog.items else None)
        for ln in release.lines)
    sales = SalesOrder(order_id=release.order_id,
                       customer_id=placed.get("customer_id") or receiver,
                       placed_at=placed.get("placed_at") or when,
                       requested_date=placed.get("requested_date"),
                       ship_from=placed.get("ship_from"), lines=lines)
    ts = release_to_940(OrderRelease(ReleaseAction.NEW, sales), "0001")
    return serialize(wrap([ts], functional_id="OW", sender=("ZZ", sender),
                          receiver=("ZZ", receiver), control=control, when=when))


def read_997(reply: bytes, control: int) -> ReleaseAnswer:
    """The 3PL's acknowledgement of our interchange `control` as the port's answer. Raises
    TransientError when the reply is not an acknowledgement of it."""
    parsed = parse(reply)
    ic = parsed.interchange
    if ic is None:
        why = parsed.errors[0].message if parsed.errors else "no interchange"
        raise TransientError(f"edi_3pl: the reply is not X12: {why}")
    for note in ic.notes:  # TA1: our envelope, judged
        if note.get(4) == "R":
            return ReleaseAnswer(accepted=False,
                                 reason=f"TA1 R {note.get(5)}: interchange rejected")
    codes: list[str] = []
    group_ok: str | None = None
    for group in ic.groups:
        for ts in group.sets:
            for seg in ts.segments:
                if seg.tag == "AK1" and seg.get(2).lstrip("0") != str(control):
                    raise TransientError(f"edi_3pl: the 997 acknowledges group {seg.get(2)}, "
                                         f"ours was {control}")
                if seg.tag in ("AK3", "AK4", "AK5"):
                    codes.append("*".join((seg.tag, *seg.elements)).rstrip("*"))
                if seg.tag == "AK9":
                    group_ok = seg.get(1)
    if group_ok is None:
        raise TransientError("edi_3pl: the reply holds no AK9 for our 940")
    if group_ok in _ACCEPTED:
        return ReleaseAnswer(accepted=True)
    return ReleaseAnswer(accepted=False, reason=f"997 AK9 {group_ok}: " + "; ".join(codes))


class X12Partners(Partners):
    """`Partners`, with releases carried to an EDI 3PL as X12 940s."""

    def __init__(self, settings: Settings, store: Store, catalog: Catalog,
                 transport: httpx.AsyncBaseTransport | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(settings.erp_url, settings.wms_url,
                         settings.partner_key.get_secret_value(), settings.partner_timeout_s,
                         transport)
        assert settings.edi_3pl_url is not None
        self.edi_url = settings.edi_3pl_url.rstrip("/")
        self.sender, self.receiver = settings.edi_sender_id, settings.edi_3pl_id
        self.store, self.catalog, self.now = store, catalog, now

    async def perform(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if op == "cancel_release":
            # Not sent to wms_url: that WMS never had the release and would say "cancelled"
            # while the 3PL ships. A 940 cancel (W05 F) would be acknowledged by a 997, which
            # says the document was read, not that the 3PL stopped the order: refused here,
            # so the order ships and every system agrees on it.
            return CancelAnswer(cancelled=False, reason=CANCEL_REFUSED).model_dump()
        if op != "release":
            return await super().perform(op, body)
        try:
            release = Release.model_validate(body)
        except ValidationError as exc:
            raise PayloadError("body", f"release: {exc}") from None
        return (await self.release(release)).model_dump()

    async def release(self, body: Release) -> ReleaseAnswer:
        control = next_control(self.store)
        record = self.store.get_state(ORDERS, body.order_id)
        raw = release_940(body, None if record is None else record.get("order"), self.catalog,
                          control, self.sender, self.receiver, self.now())
        url = self.edi_url + EDI_3PL_PATH
        try:
            r = await self.http.post(url, content=raw,
                                     headers={"Content-Type": EDI_MEDIA_TYPE})
        except (httpx.HTTPError, OSError) as exc:
            raise TransientError(f"edi_3pl: no answer from POST {EDI_3PL_PATH}: "
                                 f"{type(exc).__name__} {exc}") from exc
        if r.status_code == 429 or r.status_code >= 500:
            raise TransientError(f"edi_3pl: POST {EDI_3PL_PATH} answered {r.status_code}: "
                                 f"{r.text[:200]}")
        is_x12 = r.headers.get("content-type", "").split(";")[0].strip() == EDI_MEDIA_TYPE
        if r.status_code >= 400 and not is_x12:
            raise PayloadError("edi_3pl", f"POST {EDI_3PL_PATH} answered {r.status_code}: "
                                          f"{r.text[:500]}")
        return read_997(r.content, control)


def partners_for(settings: Settings, store: Store, catalog: Catalog,
                 transport: httpx.AsyncBaseTransport | None = None) -> Partners:
    """The adapter the settings ask for: X12 releases when an EDI 3PL is configured."""
    if settings.edi_3pl_url is None:
        return Partners(settings.erp_url, settings.wms_url,
                        settings.partner_key.get_secret_value(), settings.partner_timeout_s,
                        transport)
    return X12Partners(settings, store, catalog, transport)
