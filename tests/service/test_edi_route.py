"""POST /v1/edi/x12: X12 in, the 997 / TA1 out, canonical messages through the engine."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from integration_core.edi import ReleaseAction, parse
from tests.edi.documents import x846, x940, x944, x945
from tests.service.helpers import KEYS, SKU, Api, make_settings, running

pytestmark = pytest.mark.anyio
X12 = "application/edi-x12"


async def post_x12(api: Api, body: bytes, as_: str = "wms", content_type: str = X12
                   ) -> httpx.Response:
    return await api.http.post("/v1/edi/x12", content=body,
                               headers={"X-API-Key": KEYS[as_], "Content-Type": content_type})


def ak(reply: bytes) -> list[str]:
    """The reply's TA1 and AK segments, as text."""
    ic = parse(reply).interchange
    assert ic is not None
    segs = [*ic.notes, *(s for g in ic.groups for t in g.sets for s in t.segments)]
    return ["*".join((s.tag, *s.elements)).rstrip("*") for s in segs
            if s.tag == "TA1" or s.tag.startswith("AK")]


async def dead_letters(api: Api) -> list[dict[str, object]]:
    r = await api.get("/v1/dead-letters", consumer="ingress")
    assert r.status_code == 200, r.text
    items: list[dict[str, object]] = r.json()["items"]
    return items


async def test_a_940_is_acknowledged_and_becomes_an_order_a_945_invoices_it(
        tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await api.stock()
        r = await post_x12(api, x940("O-E1", SKU))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == X12
        assert r.headers["EDI-Outcome"] == "accepted" and r.headers["EDI-Published"] == "1"
        assert ak(r.content) == ["AK1*OW*940", "AK2*940*0001", "AK5*A", "AK9*A*1*1*1"]
        await api.drain()
        view = (await api.get("/v1/orders/O-E1", as_="shop")).json()
        assert view["status"] == "in_fulfilment" and view["waiting_on"] == "wms"
        assert view["trace"][0]["name"] == "order.placed"
        assert view["trace"][0]["detail"] == "from wms"

        r = await post_x12(api, x945("O-E1", "S-E1", SKU))
        assert r.status_code == 200 and ak(r.content)[2] == "AK5*A"
        await api.drain()
        view = (await api.get("/v1/orders/O-E1", as_="shop")).json()
        assert view["status"] == "shipped"
        assert view["shipments"] == [{"shipment_id": "S-E1", "tracking": None,
                                      "invoice_id": "INV-S-E1", "delivered": False}]
        assert await dead_letters(api) == []


async def test_movements_are_applied_and_a_duplicate_is_recognised_after_a_restart(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    raw = x944("R-1", [(SKU, 5), ("SKU-00002", 2)])
    async with running(settings) as api:
        first = await post_x12(api, raw)
        assert first.status_code == 200 and first.headers["EDI-Published"] == "2"
        await api.drain()
    async with running(settings) as api:  # a restart: only the SQLite file remembers
        again = await post_x12(api, raw)
        assert again.status_code == 200
        assert again.headers["EDI-Outcome"] == "duplicate"
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["EDI-Published"] == "0"
        assert again.content == first.content  # the original acknowledgement
        await api.drain()
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()
        assert inv["wms_on_hand"] == inv["erp_on_hand"] == 5
        ids = ["THREEPL-000000944-0001-1", "THREEPL-000000944-0001-2"]
        assert await api.applied(ids) == dict.fromkeys(ids, 1)


async def test_a_set_whose_totals_disagree_gets_a_997_rejection_and_a_dead_letter(
        tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        raw = x945("O-X", "S-X", SKU, quantity=3, total=4)
        r = await post_x12(api, raw)
        assert r.status_code == 400 and r.headers["content-type"] == X12
        assert r.headers["EDI-Outcome"] == "rejected" and r.headers["EDI-Dead-Letters"] == "1"
        assert ak(r.content) == ["AK1*SW*945", "AK2*945*0001", "AK5*R", "AK9*R*1*1*0"]
        (dl,) = await dead_letters(api)
        assert dl["raw"] == raw.decode() and dl["cause_type"] == "EdiRejected"
        assert "W0301 says 4, the lines add up to 3" in str(dl["cause_message"])
        assert (await api.status())["counters"]["published"] == 0
        # The envelope was fine, so ISA13 945 is taken: the same control number again is a
        # duplicate, answered with the first reply; the corrected resend needs a new one.
        again = await post_x12(api, x945("O-X", "S-X", SKU, quantity=3, total=3))
        assert again.status_code == 400 and again.headers["EDI-Outcome"] == "duplicate"
        assert again.content == r.content
        r = await post_x12(api, x945("O-X", "S-X", SKU, quantity=3, total=3, control=946))
        assert r.status_code == 200 and r.headers["EDI-Outcome"] == "accepted"


async def test_a_broken_envelope_gets_a_ta1_and_an_unreadable_body_a_problem(
        tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        raw = x944("R-2", [(SKU, 1)]).replace(b"IEA*1*000000944", b"IEA*1*000000945")
        r = await post_x12(api, raw)
        assert r.status_code == 400
        assert ak(r.content) == ["TA1*000000944*260301*1015*R*001"]
        r = await post_x12(api, b"hello, this is not X12")
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "ISA"
        letters = await dead_letters(api)
        assert [d["raw"] for d in letters] == [raw.decode(), "hello, this is not X12"]
        assert "001" in str(letters[0]["cause_message"])
        assert (await api.status())["counters"]["published"] == 0


async def test_limits_and_media_type_come_before_parsing(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", max_edi_bytes=1024)) as api:
        r = await post_x12(api, x944("R-3", [(SKU, 1)] * 40))
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "body"
        r = await post_x12(api, x944("R-3", [(SKU, 1)]), content_type="application/json")
        assert r.status_code == 415 and r.json()["errors"][0]["field"] == "Content-Type"
        r = await api.http.post("/v1/edi/x12", content=b"ISA*", headers={"X-API-Key":
                                                                        KEYS["wms"]})
        assert r.status_code == 415
        r = await post_x12(api, x944("R-3", [(SKU, 1)]), as_="shop")
        assert r.status_code == 403
        assert await dead_letters(api) == []  # nothing was parsed, nothing to bury
        # JSON routes keep their own checks.
        r = await api.post("/v1/movements", None, headers={"Content-Type": X12})
        assert r.status_code in (415, 422)


async def test_a_snapshot_is_recorded_beside_the_core_view_and_changes_are_dead_lettered(
        tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await api.stock(100)
        r = await post_x12(api, x846([(SKU, 90), ("SKU-00002", 0)]))
        assert r.status_code == 200 and r.headers["EDI-Recorded"] == "2"
        assert r.headers["EDI-Snapshot-Differences"] == "1"
        assert r.headers["EDI-Published"] == "0"
        r = await post_x12(api, x940("O-C", SKU, action=ReleaseAction.CANCEL, control=941))
        assert r.status_code == 200 and ak(r.content)[2] == "AK5*A"
        assert r.headers["EDI-Dead-Letters"] == "1" and r.headers["EDI-Published"] == "0"
        (dl,) = await dead_letters(api)
        assert dl["cause_type"] == "EdiNotCarriedOut" and "cancel" in str(dl["cause_message"])
        assert (await api.get("/v1/orders/O-C", as_="shop")).status_code == 404
