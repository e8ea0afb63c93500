"""Reading movement batches, in the loop and in the intake worker process."""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest

from integration_core.engine import MovementRecord
from integration_core.service.intake import BatchRead, Intake, read_batch
from integration_core.service.problems import Problem
from tests.service.helpers import make_settings, movement, running

pytestmark = pytest.mark.anyio

MIXED = [movement("m0", quantity=5), movement("m1", sku="NOPE"), "not an object",
         movement("m3", kind="pick", quantity="0.5"), movement("m4", quantity=3, unit="CS")]


def body(items: list[Any]) -> bytes:
    return json.dumps({"movements": items}).encode()


async def test_the_worker_reads_a_batch_as_the_loop_does(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", intake_workers=1)
    catalog = settings.catalog()
    here = read_batch(catalog, body(MIXED), settings.batch_max, settings.json_limits())
    assert [i for i, _ in here.valid] == [0, 4]
    assert here.valid[1][1].payload["quantity_base"] == 36  # 3 CS of 12 EA
    assert [r["problem"]["field"] for r in here.rejected] == [
        "movements[1].sku", "movements[2]", "movements[3].quantity_base"]
    intake = Intake(settings, catalog)
    await intake.start()
    try:
        assert await intake.read_batch(body(MIXED)) == here
        assert intake.replaced == 0 and intake.pids[0] != os.getpid()
    finally:
        intake.close()


@pytest.mark.parametrize(("raw", "title", "field"), [
    (b"{not json", "Request body is not JSON", "body"),
    (b'{"items": []}', "Request body is invalid", "movements"),
    (body([]), "Request body is invalid", "movements"),
    (body([movement(f"m{i}") for i in range(3)]), "Request body is invalid", "movements"),
    (body([movement("m0", sku="NOPE")]), "No movement in the batch is valid", "movements[0].sku"),
])
def test_a_body_at_fault_is_a_422_naming_the_field(tmp_path: Path, raw: bytes, title: str,
                                                   field: str) -> None:
    settings = make_settings(tmp_path / "t.db", batch_max=2)
    read = read_batch(settings.catalog(), raw, settings.batch_max, settings.json_limits())
    with pytest.raises(Problem) as caught:
        read.raise_problem()
    assert (caught.value.status, caught.value.title) == (422, title)
    assert caught.value.errors[0].field == field


async def test_a_killed_worker_is_replaced_and_loses_no_batch(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", intake_workers=1)
    intake = Intake(settings, settings.catalog())
    await intake.start()
    try:
        (pid,) = intake.pids
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        read = await intake.read_batch(body(MIXED))  # read in the loop meanwhile
        assert [i for i, _ in read.valid] == [0, 4] and intake.replaced == 1
        assert intake.pids != [pid]
        assert [i for i, _ in (await intake.read_batch(body(MIXED))).valid] == [0, 4]
    finally:
        intake.close()


async def test_the_service_reads_batches_in_its_worker(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", intake_workers=1)) as api:
        r = await api.post("/v1/movements:batch", {"movements": MIXED})
        assert r.status_code == 202, r.text
        doc = r.json()
        assert [i["status"] for i in doc["items"]] == [
            "accepted", "rejected", "rejected", "rejected", "accepted"]
        assert (await api.post("/v1/movements:batch", {"movements": ["x"]})).status_code == 422
        await api.drain()
        assert await api.applied(["m0", "m4"]) == {"m0": 1, "m4": 1}


@pytest.mark.parametrize("items", [MIXED, MIXED[1:3], [movement(f"m{i}", quantity=i + 1)
                                                       for i in range(40)]])
def test_a_batch_read_crosses_the_pipe_unchanged(tmp_path: Path, items: list[Any]) -> None:
    settings = make_settings(tmp_path / "t.db")
    read = read_batch(settings.catalog(), body(items), settings.batch_max, settings.json_limits())
    again = pickle.loads(pickle.dumps(read, protocol=5))
    assert again == read and type(again) is BatchRead
    assert all(type(r) is MovementRecord for _, r in again.valid)  # == takes a plain tuple too
    for odd in [BatchRead(problem=("Request body is invalid", [{"field": "movements",
                                                                 "message": "too many"}])),
                BatchRead(failure="KeyError: 'x'")]:
        assert pickle.loads(pickle.dumps(odd, protocol=5)) == odd
