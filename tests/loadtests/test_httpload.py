"""The open-model load generator of `loadtests.bench.service`: schedules, bodies, counting,
error counting and HTTP framing, against the bare app on a loopback port and against tiny
asyncio servers in the test's own event loop. No performance numbers are asserted: only that
the generator counts what it sent and what came back, and spreads its connections over the
instances of a service. About 6 s."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from integration_core.models import Catalog, Item, Movement, UnitConversion
from loadtests.bench.httpload import (
    LoadProcess,
    Payload,
    Step,
    StepResult,
    Target,
    arrival_offsets,
    run_step_async,
    saturate_async,
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


async def _counting_servers(n: int, close_every: int = 0, keep_alive_s: float | None = None
                            ) -> tuple[list[asyncio.Server], list[int], list[dict[str, int]]]:
    """`n` loopback servers answering 202, each counting its connections and requests and
    checking that every request's Host header names its own port; with `close_every` k,
    every k-th answer of a connection closes it (the client must reconnect); with
    `keep_alive_s`, a connection idle that long is closed, as uvicorn does after 5 s."""
    servers: list[asyncio.Server] = []
    counts: list[dict[str, int]] = [{"connections": 0, "requests": 0, "wrong_host": 0}
                                    for _ in range(n)]
    ports: list[int] = []

    def handler(k: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                    Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            counts[k]["connections"] += 1
            served = 0
            try:
                while True:
                    async with asyncio.timeout(keep_alive_s):
                        head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    length = next(int(line.split(b":")[1]) for line in lines
                                  if line.lower().startswith(b"content-length:"))
                    host = next(line for line in lines if line.lower().startswith(b"host:"))
                    if not host.endswith(b":%d" % ports[k]):
                        counts[k]["wrong_host"] += 1
                    await reader.readexactly(length)
                    counts[k]["requests"] += 1
                    served += 1
                    close = close_every and served % close_every == 0
                    writer.write(_fixed(b"HTTP/1.1 202 Accepted"
                                        + (b"\r\nConnection: close" if close else b"")))
                    if close:
                        break
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                pass
            finally:
                writer.close()
        return handle

    for k in range(n):
        server = await asyncio.start_server(handler(k), HOST, 0)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    return servers, ports, counts


async def _close_all(servers: list[asyncio.Server]) -> None:
    for s in servers:
        s.close()
        await s.wait_closed()


def _step_on_counting_servers(n: int, step: Step, **server: Any
                              ) -> tuple[StepResult, list[dict[str, int]]]:
    """A step spread over `n` counting servers (`_counting_servers` options in `server`), and
    what each server counted."""
    async def go() -> tuple[StepResult, list[dict[str, int]]]:
        servers, ports, counts = await _counting_servers(n, **server)
        try:
            res = await asyncio.wait_for(
                run_step_async(Target.spread(HOST, ports, "/x"), Payload(), step), 20)
            return res, counts
        finally:
            await _close_all(servers)

    return asyncio.run(go())


def test_a_step_spreads_its_connections_round_robin_over_the_instances() -> None:
    res, counts = _step_on_counting_servers(
        2, Step(rate=100, duration_s=0.5, warmup_s=0.1, connections=5,
                arrivals="constant"))
    assert res.passed and res.connections == 5 and res.requests_sent_total == 60
    # Connections 0, 2, 4 to the first instance, 1, 3 to the second; each request names its
    # instance in the Host header.
    assert [c["connections"] for c in counts] == [3, 2]
    assert sum(c["requests"] for c in counts) == 60
    assert all(c["wrong_host"] == 0 and c["requests"] > 0 for c in counts)


def test_reconnects_stay_on_their_instance() -> None:
    # Every answer closes its connection: each request is a fresh connection from its worker.
    # Were reconnects sent to the first port, the second would see only its 2 first requests.
    res, counts = _step_on_counting_servers(
        2, Step(rate=80, duration_s=0.5, warmup_s=0.0, connections=4,
                arrivals="constant"), close_every=1)
    assert res.passed and res.ok == 40
    assert [c["connections"] for c in counts] == [c["requests"] for c in counts]
    assert sum(c["requests"] for c in counts) == 40
    assert all(c["requests"] >= 8 and c["wrong_host"] == 0 for c in counts)


def test_the_saturation_probe_spreads_its_connections_too() -> None:
    async def go() -> tuple[dict[str, object], list[dict[str, int]]]:
        servers, ports, counts = await _counting_servers(3)
        try:
            out = await asyncio.wait_for(saturate_async(
                Target.spread(HOST, ports, "/x"), Payload(unique=False, pool=4), 7, 0.2,
                warmup_s=0.05), 20)
            return out, counts
        finally:
            await _close_all(servers)

    out, counts = asyncio.run(go())
    assert out["errors"] == 0 and out["requests_per_s"] > 0  # type: ignore[operator]
    assert [c["connections"] for c in counts] == [3, 2, 2]
    assert all(c["requests"] > 0 and c["wrong_host"] == 0 for c in counts)


def test_a_target_of_one_port_is_the_old_target() -> None:
    one = Target.spread(HOST, [8080], "/x")
    assert one == Target(HOST, 8080, "/x") and one.instances == (8080,)
    two = Target.spread(HOST, [8080, 8081], "/x")
    assert two.instances == (8080, 8081) and two.port == 8080
    assert b"Host: 127.0.0.1:8081\r\n" in two.request(b"{}", 8081)
    with pytest.raises(ValueError, match="must start with port 8080"):
        Target(HOST, 8080, "/x", ports=(8081, 8080))


def test_an_idle_connection_is_reopened_before_the_server_closes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The server closes a connection idle for 0.15 s; requests come every 0.25 s on one
    # connection. Sent on the old connection, each would fail (-1); reopened, all pass.
    monkeypatch.setattr("loadtests.bench.httpload.IDLE_S", 0.1)

    res, counts = _step_on_counting_servers(
        1, Step(rate=4, duration_s=1.0, warmup_s=0.0, connections=1,
                arrivals="constant"), keep_alive_s=0.15)
    assert res.passed and (res.ok, res.errors) == (4, 0), res.statuses
    # The first request goes on the connection opened at the start; each later one on a new.
    assert counts[0]["connections"] == counts[0]["requests"] == 4


def test_every_instance_gets_a_connection_even_at_a_low_rate() -> None:
    res, counts = _step_on_counting_servers(
        3, Step(rate=2, duration_s=1.5, warmup_s=0.0, connections=8,
                arrivals="constant"))
    # About one connection per request/s, but one per instance at least: 3, not 2.
    assert res.passed and res.connections == 3
    assert [c["connections"] for c in counts] == [1, 1, 1]
    assert all(c["requests"] == 1 for c in counts)
