"""The fault proxy (loadtests/proxy.py) on its own: each toxic as a client on loopback sees it,
against tiny echo and HTTP upstreams in the test's own event loop; toxics switched while a
connection is open; toxicity draws fixed by the seed; the HTTP control endpoint and the
command line. Time is asserted as lower bounds with generous upper bounds only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from loadtests.proxy import (
    Bandwidth,
    CloseAfterForward,
    Down,
    LimitData,
    Proxy,
    ProxyControl,
    ProxyError,
    ResetPeer,
    Timeout,
    Toxic,
    parse_ready,
    parse_toxic,
)
from loadtests.proxy import Latency as LatencyToxic

REPO = Path(__file__).parents[2]
HOST = "127.0.0.1"
REQUEST = b"POST /postings HTTP/1.1\r\nHost: erp\r\nContent-Length: 11\r\n\r\nhello world"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Upstream:
    """A loopback server: `echo` sends every chunk back; `http` reads whole requests
    (Content-Length bodies), records them and answers `ANSWER`, keeping the connection."""

    def __init__(self, mode: Literal["echo", "http"] = "echo") -> None:
        self.mode = mode
        self.connections = 0
        self.received = bytearray()
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for t in set(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.connections += 1
        try:
            while True:
                if self.mode == "echo":
                    data = await reader.read(65536)
                    if not data:
                        return
                    self.received += data
                    writer.write(data)
                else:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    request = head + await reader.readexactly(length)
                    self.received += request
                    self.requests.append(request)
                    writer.write(ANSWER)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


def run(test: Callable[[], Awaitable[None]], timeout_s: float = 10.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout_s):
            await test()
    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def proxied(mode: Literal["echo", "http"] = "echo", seed: int = 0,
                  admin: bool = False) -> AsyncIterator[tuple[Upstream, Proxy]]:
    async with Upstream(mode) as up, Proxy(up.address, np.random.default_rng(seed),
                                           admin=(HOST, 0) if admin else None) as proxy:
        yield up, proxy


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_exactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def outcome(self, timeout_s: float = 2.0) -> bytes | str:
        """The rest of the stream until EOF, or 'reset'."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self.reader.read()
        except ConnectionResetError:
            return "reset"

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def client(proxy: Proxy) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection(*proxy.address)
    c = Client(reader, writer)
    try:
        yield c
    finally:
        c.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def round_trip(c: Client, data: bytes = b"ping") -> float:
    t0 = time.monotonic()
    await c.send(data)
    assert await c.read_exactly(len(data)) == data
    return time.monotonic() - t0


async def http_exchange(c: Client) -> bytes:
    await c.send(REQUEST)
    return await c.read_exactly(len(ANSWER))


# -- no toxic ------------------------------------------------------------------------------


def test_forwards_both_ways_and_counts_the_bytes() -> None:
    async def test() -> None:
        async with proxied() as (up, proxy), client(proxy) as c:
            payload = bytes(range(256)) * 40
            await c.send(payload)
            assert await c.read_exactly(len(payload)) == payload
            s = proxy.stats()
            assert (s.connections, s.open_connections) == (1, 1)
            assert s.bytes_upstream == s.bytes_downstream == len(payload) == len(up.received)
            assert s.toxics == {} and s.active == {}
    run(test)


def test_a_half_close_is_passed_on_and_the_answer_still_arrives() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            await c.send(b"last words")
            c.writer.write_eof()
            assert await c.outcome() == b"last words"
    run(test)


# -- each toxic, as the client sees it -----------------------------------------------------


def test_latency_delays_each_way() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            proxy.set(LatencyToxic(latency_ms=100))  # both ways: the round trip pays twice
            rtt = await round_trip(c)
            assert 0.2 <= rtt < 2.0
            proxy.set(LatencyToxic(latency_ms=100, jitter_ms=50, stream="downstream"))
            rtts = [await round_trip(c) for _ in range(3)]
            assert all(0.05 <= r < 2.0 for r in rtts)
            stats = proxy.stats().toxics["latency"]
            assert stats.kind == "latency" and stats.fired == 2 + 3 and stats.taken == 2
            assert stats.bytes_forwarded == 4 * 5
    run(test)


def test_bandwidth_caps_the_rate() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            proxy.set(Bandwidth(rate_bytes_per_s=50_000, stream="downstream"))
            payload = b"x" * 25_000
            t0 = time.monotonic()
            await c.send(payload)
            assert await c.read_exactly(len(payload)) == payload
            elapsed = time.monotonic() - t0
            # 25 kB at 50 kB/s in slices of 2.5 kB: the last one may arrive without its pause
            assert (25_000 - 2_500) / 50_000 <= elapsed < 3.0
            assert proxy.stats().toxics["bandwidth"].bytes_forwarded == 25_000
    run(test)


def test_timeout_stalls_the_connection_and_holds_it_open() -> None:
    async def test() -> None:
        async with proxied() as (up, proxy):
            proxy.set(Timeout())
            async with client(proxy) as c:
                await c.send(b"anyone there?")
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await c.reader.read(1)
                assert proxy.stats().open_connections == 1  # held open, not closed
                assert up.received == b""  # the data was dropped
            proxy.set(Timeout(timeout_ms=200))  # and closed after 200 ms
            t0 = time.monotonic()
            async with client(proxy) as c:
                await c.send(b"anyone?")
                assert await c.outcome() == b""
                assert 0.2 <= time.monotonic() - t0 < 2.0
            stats = proxy.stats().toxics["timeout"]
            assert stats.fired == 2 and stats.bytes_dropped == len(b"anyone there?anyone?")
    run(test)


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_reset_peer_resets_the_client(stream: Literal["upstream", "downstream"]) -> None:
    async def test() -> None:
        async with proxied("http") as (up, proxy), client(proxy) as c:
            proxy.set(ResetPeer(stream=stream))
            await c.send(REQUEST)
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(2.0):
                    await c.reader.read()
            # upstream: the request never got there; downstream: it did, the answer is lost
            assert up.requests == ([] if stream == "upstream" else [REQUEST])
            assert proxy.stats().toxics["reset_peer"].fired == 1
    run(test)


def test_reset_peer_waits_its_timeout_first() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            proxy.set(ResetPeer(timeout_ms=150))
            t0 = time.monotonic()
            await c.send(b"x")
            assert await c.outcome() == "reset"
            assert 0.15 <= time.monotonic() - t0 < 2.0
    run(test)


def test_close_after_forward_loses_the_answer_of_work_done() -> None:
    async def test() -> None:
        async with proxied("http") as (up, proxy), client(proxy) as c:
            assert await http_exchange(c) == ANSWER
            proxy.set(CloseAfterForward())
            await c.send(REQUEST)
            assert await c.outcome() == b""  # EOF, no answer
            assert up.requests == [REQUEST, REQUEST]  # but the upstream got all of it
            stats = proxy.stats().toxics["close_after_forward"]
            assert stats.fired == 1 and stats.bytes_dropped == len(ANSWER)
    run(test)


def test_limit_data_closes_after_that_many_bytes() -> None:
    async def test() -> None:
        async with proxied() as (up, proxy):
            proxy.set(LimitData(bytes=10, stream="downstream"))
            async with client(proxy) as c:
                await c.send(b"0123456789" * 10)
                assert await c.outcome() == b"0123456789"
            assert bytes(up.received).startswith(b"0123456789")  # upstream not limited
            before = len(up.received)
            proxy.set(LimitData(bytes=4, stream="upstream"))
            async with client(proxy) as c:
                await c.send(b"abcdefgh")
                assert await c.outcome() == b""  # closed before the echo could come back
            async with asyncio.timeout(2.0):
                while not up.received.endswith(b"abcd"):  # 4 bytes got through, no more
                    await asyncio.sleep(0.01)
            assert bytes(up.received[before:]) == b"abcd"
            assert proxy.stats().toxics["limit_data"].fired == 2
    run(test)


def test_down_resets_open_and_new_connections_without_calling_upstream() -> None:
    async def test() -> None:
        async with proxied() as (up, proxy):
            async with client(proxy) as open_one:
                await round_trip(open_one)
                proxy.set(Down())
                assert await open_one.outcome() == "reset"
            async with client(proxy) as c:
                with contextlib.suppress(OSError):
                    await c.send(b"hello")
                assert await c.outcome() in ("reset", b"")
            assert up.connections == 1  # only the one from before
            s = proxy.stats()
            assert s.refused == 1 and s.toxics["down"].fired == 2
            proxy.remove("down")
            async with client(proxy) as c:
                await round_trip(c)
            assert up.connections == 2
    run(test)


# -- switching -----------------------------------------------------------------------------


def test_toxics_switch_while_a_connection_is_open() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            await round_trip(c)
            proxy.set(LatencyToxic(latency_ms=150, stream="upstream"))
            assert await round_trip(c) >= 0.15
            assert proxy.remove("latency") and not proxy.remove("latency")
            proxy.set(Timeout(), name="stall")
            await c.send(b"lost")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await c.reader.read(1)
            proxy.clear()
            assert proxy.toxics() == {}
            assert await round_trip(c, b"flows again") < 2.0  # "lost" was dropped for good
            s = proxy.stats()
            assert s.open_connections == 1 and set(s.toxics) == {"latency", "stall"}
    run(test)


def test_toxics_on_one_link_apply_together() -> None:
    async def test() -> None:
        async with proxied("http") as (up, proxy), client(proxy) as c:
            proxy.set(LatencyToxic(latency_ms=100, stream="upstream"))
            proxy.set(CloseAfterForward())
            t0 = time.monotonic()
            await c.send(REQUEST)
            assert await c.outcome() == b""
            assert time.monotonic() - t0 >= 0.1 and up.requests == [REQUEST]
    run(test)


# -- toxicity ------------------------------------------------------------------------------


async def _down_pattern(seed: int, n: int = 24) -> tuple[list[bool], int]:
    """Which of n connections, made one after another, a `down` of toxicity 0.5 refused."""
    async with proxied(seed=seed) as (up, proxy):
        proxy.set(Down(toxicity=0.5))
        refused = []
        for _ in range(n):
            async with client(proxy) as c:
                with contextlib.suppress(OSError):
                    await c.send(b"x")
                got: bytes | None
                try:
                    async with asyncio.timeout(2.0):
                        got = await c.reader.readexactly(1)
                except (ConnectionResetError, asyncio.IncompleteReadError):
                    got = None
                refused.append(got is None)
        stats = proxy.stats().toxics["down"]
        assert stats.drawn == n and stats.taken == stats.fired == sum(refused)
        assert up.connections == n - sum(refused)
        return refused, stats.taken


def test_toxicity_draws_are_fixed_by_the_seed() -> None:
    async def test() -> None:
        first, taken = await _down_pattern(seed=7)
        assert 0 < taken < 24
        assert (await _down_pattern(seed=7))[0] == first
        assert (await _down_pattern(seed=8))[0] != first
    run(test)


def test_exchange_scope_draws_again_for_every_request() -> None:
    async def taken(scope: Literal["connection", "exchange"], seed: int) -> tuple[int, int]:
        async with proxied("http", seed=seed) as (_, proxy), client(proxy) as c:
            proxy.set(LatencyToxic(latency_ms=0, toxicity=0.5, scope=scope))
            for _ in range(20):
                assert await http_exchange(c) == ANSWER
            s = proxy.stats().toxics["latency"]
            return s.drawn, s.taken

    async def test() -> None:
        drawn, hit = await taken("exchange", 3)
        # drawn when switched on (the open connection), then at each of the 20 requests
        assert drawn == 21 and 0 < hit < 21
        assert await taken("exchange", 3) == (drawn, hit)
        assert (await taken("connection", 3))[0] == 1  # Toxiproxy's rule: once per connection
    run(test)


def test_toxicity_zero_never_takes_a_link() -> None:
    async def test() -> None:
        async with proxied() as (_, proxy), client(proxy) as c:
            proxy.set(ResetPeer(toxicity=0.0))
            await round_trip(c)
            assert proxy.stats().toxics["reset_peer"].taken == 0
    run(test)


# -- the toxics as data --------------------------------------------------------------------


def test_toxics_are_validated_data() -> None:
    assert parse_toxic({"kind": "latency", "latency_ms": 5}) == LatencyToxic(latency_ms=5)
    toxic: Toxic = parse_toxic({"kind": "limit_data", "bytes": 3, "toxicity": 0.25})
    assert toxic == LimitData(bytes=3, toxicity=0.25)
    for bad in ({"kind": "latency", "latency_ms": -1}, {"kind": "nope"},
                {"kind": "down", "scope": "exchange"}, {"kind": "latency", "latency_ms": 1,
                                                        "toxicity": 2}):
        with pytest.raises(ValueError):
            parse_toxic(bad)
    with pytest.raises(ValueError, match="loopback"):
        Proxy(("127.0.0.1", 1), np.random.default_rng(0), listen=("0.0.0.0", 0))


def test_the_ready_line_gives_the_ports() -> None:
    assert parse_ready("proxy 127.0.0.1:4100 -> 127.0.0.1:8090; control http://127.0.0.1:4101"
                       "\n") == (4100, "http://127.0.0.1:4101")
    assert parse_ready("proxy 127.0.0.1:4100 -> 127.0.0.1:8090") == (4100, None)
    with pytest.raises(ValueError, match="ready line"):
        parse_ready("Traceback (most recent call last):")


# -- control over HTTP ---------------------------------------------------------------------


def test_the_http_control_endpoint() -> None:
    async def test() -> None:
        async with proxied(admin=True) as (_, proxy), client(proxy) as c:
            control = ProxyControl(f"http://{HOST}:{proxy.admin_address[1]}")
            await asyncio.to_thread(control.wait_ready, 5.0)
            await asyncio.to_thread(control.set, LatencyToxic(latency_ms=120), "slow")
            assert proxy.toxics() == {"slow": LatencyToxic(latency_ms=120)}
            assert await round_trip(c) >= 0.24
            stats = await asyncio.to_thread(control.stats)
            assert stats.active == {"slow": LatencyToxic(latency_ms=120)}
            assert stats.toxics["slow"].fired == 2 and stats.connections == 1
            with pytest.raises(ProxyError, match=r"400 .*latency_ms: Input should be greater"):
                await asyncio.to_thread(control._call, "PUT", "/toxics/x",
                                        {"kind": "latency", "latency_ms": -5})
            with pytest.raises(ProxyError, match=r"400 .*kind: must be one of"):
                await asyncio.to_thread(control._call, "PUT", "/toxics/x", {"kind": "jam"})
            assert await asyncio.to_thread(control.remove, "slow")
            assert not await asyncio.to_thread(control.remove, "slow")
            await asyncio.to_thread(control.set, Down(toxicity=0.0))
            await asyncio.to_thread(control.clear)
            assert proxy.toxics() == {}
            assert proxy.control("POST", "/stats") == (404, {"error": "no route POST /stats"})
    run(test)


def test_runs_on_its_own_from_the_command_line() -> None:
    async def test() -> None:
        async with Upstream() as up:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "loadtests.proxy", "--listen", f"{HOST}:0",
                "--upstream", f"{HOST}:{up.address[1]}", "--admin", f"{HOST}:0",
                "--seed", "1", "--max-s", "20", "--toxic", '{"kind": "latency", "latency_ms": 1}',
                cwd=REPO, stdout=subprocess.PIPE)
            try:
                assert proc.stdout is not None
                port, url = parse_ready((await proc.stdout.readline()).decode())
                assert url is not None and url.startswith(f"http://{HOST}:")
                control = ProxyControl(url)
                reader, writer = await asyncio.open_connection(HOST, port)
                c = Client(reader, writer)
                await round_trip(c)
                c.close()
                await writer.wait_closed()
                stats = await asyncio.to_thread(control.stats)
                assert stats.toxics["latency"].fired >= 1
                proc.terminate()
                out = (await proc.stdout.read()).decode()
                assert await proc.wait() == 0
                assert json.loads(out)["connections"] == 1
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    run(test, timeout_s=30)
