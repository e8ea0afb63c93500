"""The drop folder watched by the live service: .part then rename, processed/ and failed/
with the error report, the X12 reply beside the file, limits before reading."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from integration_core.feed import digest
from integration_core.service import Settings
from tests.edi.documents import x940, x944
from tests.service.helpers import SKU, Api, make_settings, running

pytestmark = pytest.mark.anyio
HEADER = "movement_id,kind,sku,location,quantity,occurred_at\n"


def drop(folder: Path, name: str, data: bytes) -> None:
    """The producer's side of the convention: write name.part, then rename it."""
    part = folder / (name + ".part")
    part.write_bytes(data)
    part.rename(folder / name)


async def settled(path: Path, timeout_s: float = 5.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s} s"
        await asyncio.sleep(0.02)
    return path


async def on_hand(api: Api, sku: str = SKU) -> int:
    await api.drain()
    r = await api.get(f"/v1/inventory/{sku}", as_="wms")
    assert r.status_code == 200, r.text
    value: int = r.json()["wms_on_hand"]
    return value


async def test_csv_and_x12_files_are_carried_out_and_moved(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    settings = make_settings(tmp_path / "t.db", feed_dir=feed, feed_poll_s=0.02)
    async with running(settings) as api:
        (feed / "late.csv.part").write_text(HEADER + f"p1,receipt,{SKU},A-01,50,"
                                            "2026-01-05T08:00:00Z\n")
        drop(feed, "001-stock.x12", x944("R-1", [(SKU, 10)]))
        drop(feed, "002-moves.csv", (HEADER + f"m1,receipt,{SKU},A-01,5,2026-01-05T08:00:00Z\n"
                                     f"m2,pick,{SKU},A-01,2,2026-01-05T09:00:00Z\n").encode())
        await settled(feed / "processed" / "002-moves.csv")
        assert (feed / "processed" / "001-stock.x12").read_bytes() == x944("R-1", [(SKU, 10)])
        ack = (feed / "processed" / "001-stock.x12.ack.x12").read_bytes()
        assert b"AK5*A" in ack
        assert await on_hand(api) == 13
        assert (feed / "late.csv.part").exists()  # still being written: left alone
        drop(feed, "003-order.x12", x940("O-FEED", SKU))
        await settled(feed / "processed" / "003-order.x12")
        await api.drain()
        view = (await api.get("/v1/orders/O-FEED", as_="shop")).json()
        assert view["trace"][0]["name"] == "order.placed"
        assert view["trace"][0]["detail"] == "from wms"
        assert list((feed / "failed").iterdir()) == []


async def test_bad_rows_fail_the_file_with_a_report_and_the_rest_is_applied(
        tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    settings = make_settings(tmp_path / "t.db", feed_dir=feed, feed_poll_s=0.02)
    bad = "m2,receipt,SKU-99999,A-01,1,2026-01-05T08:00:00Z"
    data = (HEADER + f"m1,receipt,{SKU},A-01,4,2026-01-05T08:00:00Z\n{bad}\n").encode()
    async with running(settings) as api:
        drop(feed, "moves.csv", data)
        report = json.loads((await settled(feed / "failed" / "moves.csv.error.json")
                             ).read_text())
        await settled(feed / "failed" / "moves.csv")
        assert (feed / "failed" / "moves.csv").read_bytes() == data  # kept as it came
        assert report["carried_out"] == 1 and report["verdict"] == "failed"
        (problem,) = report["problems"]
        assert problem["line"] == 3 and problem["field"] == "sku" and problem["raw"] == bad
        assert await on_hand(api) == 4
        r = await api.get("/v1/dead-letters", consumer="ingress")
        (dl,) = r.json()["items"]
        assert dl["raw"] == bad and "moves.csv line 3" in dl["cause_message"]
        # the same content again: nothing applied twice; the first verdict, under a new name
        drop(feed, "moves.csv", data)
        again = json.loads((await settled(feed / "failed" / (
            "moves." + digest(data)[:12] + ".csv.error.json"))).read_text())
        assert again["repeat_of"] == "moves.csv"
        assert await on_hand(api) == 4


async def test_oversize_and_unknown_files_are_refused_without_being_read(
        tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    settings = make_settings(tmp_path / "t.db", feed_dir=feed, feed_poll_s=0.02,
                             feed_max_bytes=2048)
    big = (HEADER + f"m1,receipt,{SKU},A-01,1,2026-01-05T08:00:00Z\n" * 100).encode()
    async with running(settings) as api:
        drop(feed, "big.csv", big)
        drop(feed, "notes.txt", b"hello")
        report = json.loads((await settled(feed / "failed" / "big.csv.error.json")
                             ).read_text())
        assert "over the limit of 2048" in report["problems"][0]["cause"]
        assert report["sha256"] == ""  # refused from its size: never read
        other = json.loads((await settled(feed / "failed" / "notes.txt.error.json")
                            ).read_text())
        assert ".csv" in other["problems"][0]["cause"]
        assert await on_hand(api) == 0


async def test_a_file_left_in_the_folder_after_its_effects_committed_is_only_moved(
        tmp_path: Path) -> None:
    """A crash after the commit and before the move: on restart the ledger knows the file."""
    feed = tmp_path / "feed"
    settings = make_settings(tmp_path / "t.db", feed_dir=feed, feed_poll_s=0.02)
    data = (HEADER + f"m1,receipt,{SKU},A-01,6,2026-01-05T08:00:00Z\n").encode()
    async with running(settings) as api:
        drop(feed, "a.csv", data)
        moved = await settled(feed / "processed" / "a.csv")
        assert await on_hand(api) == 6
    moved.rename(feed / "a.csv")  # as if the move had not happened
    async with running(settings) as api:
        await settled(feed / "processed" / "a.csv")
        assert await on_hand(api) == 6


def test_the_feed_and_the_edi_3pl_come_from_the_environment(tmp_path: Path) -> None:
    env = {"TWIN_API_KEY_WMS": "k" * 20, "TWIN_FEED_DIR": str(tmp_path / "in"),
           "TWIN_FEED_POLL_S": "0.5", "TWIN_EDI_3PL_URL": "http://3pl.example/x"}
    s = Settings.from_env(env)
    assert s.feed_dir == tmp_path / "in" and s.feed_poll_s == 0.5
    assert s.edi_3pl_url == "http://3pl.example/x"
    assert Settings.from_env({"TWIN_API_KEY_WMS": "k" * 20}).feed_dir is None



async def test_two_files_of_one_name_refused_unread_are_both_kept(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    settings = make_settings(tmp_path / "t.db", feed_dir=feed, feed_poll_s=0.02,
                             feed_max_bytes=1024)
    async with running(settings):
        drop(feed, "big.csv", b"x" * 2000)
        await settled(feed / "failed" / "big.csv")
        drop(feed, "big.csv", b"y" * 3000)
        second = await settled(feed / "failed" / "big.unread.csv")
        await settled(feed / "failed" / "big.unread.csv.error.json")
        assert (feed / "failed" / "big.csv").read_bytes() == b"x" * 2000
        assert second.read_bytes() == b"y" * 3000
