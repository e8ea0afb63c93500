"""The open-model load generator of `loadtests.bench.service`: schedules, bodies, counting,
error counting and HTTP framing, against the bare app on a loopback port and against tiny
asyncio servers in the test's own event loop. No performance numbers are asserted: only that
the generator counts what it sent and what came back. About 5 s."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

from integration_core.models import Catalog, Item, Movement, UnitConversion
from loadtests.bench.httpload import (
    LoadProcess,
    Payload,
    Step,
    StepResult,
    Target,
    arrival_offsets,
    run_step_async,
)
from loadtests.bench.service import HOST, free_port, start_bare, stop_process, wait_http

Reply = Callable[[int], Awaitable[bytes]]


def test_arrivals_are_seeded_and_keep_the_rate() -> None:
    assert arrival_offsets(50, 2.0, "constant", 0) == [i / 50 for i in range(100)]
    a = arrival_offsets(1000, 10.0, "poisson", 7)
    assert a == arrival_offsets(1000, 10.0, "poisson", 7)
    assert a != arrival_offsets(1000, 10.0, "poisson", 8)
    assert all(0 <= x < 10.0 for x in a) and a == sorted(a)
    assert 9_400 < len(a) < 10_600  # 10,000 expected, sd 100


def test_bodies_are_valid_movements_with_unique_ids() -> None:
    catalog = Catalog(Item(sku=f"SKU-{i:05d}", conversions=(UnitConversion(unit="CS", factor=12),),
                           unit_value=1) for i in range(1000))
    single = Payload(kind="single", id_prefix="t")
    batch = Payload(kind="batch", batch_size=7, id_prefix="b")
    ids = []
    for i in range(30):
        ids.append(catalog.parse(Movement, json.loads(single.body(i))).movement_id)
        items = json.loads(batch.body(i))["movements"]
        assert len(items) == 7
        ids += [catalog.parse(Movement, m).movement_id for m in items]
    assert len(set(ids)) == len(ids) == 30 * 8
    pooled = Payload(kind="single", unique=False, pool=4)
    assert pooled.body(1) == pooled.body(5) != pooled.body(2)


def test_counts_requests_and_movements_against_the_bare_app(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "bare.log").open("wb") as log:
        proc = start_bare(port, log)
        try:
            wait_http(f"http://{HOST}:{port}", proc, "/", None, timeout_s=30)
            with LoadProcess() as gen:
                step = Step(rate=40, duration_s=1.0, warmup_s=0.25, connections=4,
                            arrivals="constant", slo_s=1.0)
                single = gen.step(Target(HOST, port, "/movements"), Payload(), step)
                batch = gen.step(Target(HOST, port, "/movements:batch"),
                                 Payload(kind="batch", batch_size=10), step)
                sat = gen.saturate(Target(HOST, port, "/movements"), Payload(unique=False),
                                   2, 0.3)
        finally:
            stop_process(proc)
    for res, per in ((single, 1), (batch, 10)):
        assert (res.scheduled, res.ok, res.errors, res.unfinished) == (40, 40, 0, 0)
        assert res.statuses == {"202": 40} and res.stopped is None and res.passed
        assert res.requests_sent_total == 50  # warm-up included
        assert res.movements_per_s == 40 * per and res.ok_movements_total == 50 * per
        lat = res.latency_ms
        assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 1000
        assert res.client["cpu_fraction"] >= 0 and res.connections == 4
    assert sat["errors"] == 0 and sat["requests_per_s"] > 0


async def _serve(reply: Reply, step: Step, payload: Payload | None = None) -> StepResult:
    """Run a step against an asyncio server in this loop; `reply(n)` makes the n-th answer."""
    count = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                answer = await reply(count)
                count += 1
                writer.write(answer)
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await run_step_async(Target(HOST, port, "/x"), payload or Payload(), step)
    finally:
        server.close()
        await server.wait_closed()


def _fixed(head: bytes, body: bytes = b"{}") -> bytes:
    return head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_counts_errors_from_an_endpoint_answering_500() -> None:
    async def fail(n: int) -> bytes:
        return _fixed(b"HTTP/1.1 500 Internal Server Error")

    step = Step(rate=50, duration_s=0.4, warmup_s=0.1, connections=2, arrivals="constant")
    res = asyncio.run(_serve(fail, step))
    assert (res.scheduled, res.ok, res.errors, res.unfinished) == (20, 0, 20, 0)
    assert res.statuses == {"500": 20} and res.movements_per_s == 0 and not res.passed
    assert res.latency_ms["p50"] >= 0

    stopping = Step(rate=50, duration_s=0.4, warmup_s=0.0, connections=2, arrivals="constant",
                    stop_on_error=True)
    res = asyncio.run(_serve(fail, stopping))
    assert res.stopped == "error: 500" and not res.passed
    assert res.requests_sent_total < 20


def test_reads_chunked_bodies_and_reconnects_after_connection_close() -> None:
    async def chunked(n: int) -> bytes:
        close = b"Connection: close\r\n" if n % 3 == 2 else b""
        return (b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n" + close
                + b"\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n")

    step = Step(rate=60, duration_s=0.5, warmup_s=0.0, connections=2, arrivals="constant")
    res = asyncio.run(_serve(chunked, step))
    assert (res.scheduled, res.ok, res.errors) == (30, 30, 0) and res.passed


def test_a_slow_endpoint_stops_the_step_early_and_counts_from_the_intended_time() -> None:
    async def slow(n: int) -> bytes:
        await asyncio.sleep(0.05)
        return _fixed(b"HTTP/1.1 202 Accepted")

    # One connection, 40 requests/s offered, 50 ms each: the queue grows by 20 requests/s,
    # so latency from the intended send time passes 100 ms and keeps growing.
    step = Step(rate=40, duration_s=2.0, warmup_s=0.0, connections=1, arrivals="constant",
                slo_s=0.1)
    res = asyncio.run(_serve(slow, step))
    assert res.stopped == "p99 >= 100 ms" and not res.passed and res.errors == 0
    assert res.unfinished > 0 and res.latency_ms["max"] >= 100
    assert not math.isnan(res.latency_ms["p50"])
