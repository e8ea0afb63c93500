"""An open-model HTTP/1.1 load generator on raw asyncio streams, for `loadtests.bench.service`.

Locust is too heavy for a 2-core machine whose other core runs the server under test, so this
is the smallest client that measures honestly:

- **Open model.** Every request has an intended send time, fixed before the step starts:
  constant spacing or a Poisson process drawn from a seeded RNG. A scheduler releases each
  request at its time into a FIFO queue that `connections` keep-alive connections drain. When
  every connection is busy the request waits in the queue, and that wait counts: latency is
  measured from the *intended* send time to the last byte of the response, so a slow server
  cannot slow the offered load down and hide its own queue (coordinated omission).
- **Cheap per request.** Request bytes (request line, headers, body) are built before the clock
  starts; the response is parsed just enough to be framed: status line, ``Content-Length`` (or
  chunked encoding), ``Connection: close``.
- **Its own process.** `LoadProcess` runs the generator in a spawned child, so it never shares
  an event loop (or a GIL) with the server or with the script that orchestrates the steps.
- **Early stop.** With ``slo_s`` set, a monitor stops the step as soon as more than 1% of the
  measured requests are already later than ``slo_s`` (answered late, or still waiting): the p99
  cannot pass any more, so a search does not wait out hopeless steps. ``stop_on_error`` does the
  same on the first error.

- **Several instances.** A `Target` may name several ports of one service (its instances):
  connection i of a step or of the saturation probe goes to port ``i % n``, and reconnects
  where it was, so the load is spread round-robin over the instances.

A step's result says how busy the generator itself was (CPU fraction, scheduler lag), so a
saturated client can be told apart from a saturated server.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import math
import multiprocessing
import random
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

#: Status codes recorded for requests that got no HTTP status.
NOT_DONE, TRANSPORT_ERROR, TIMED_OUT = 0, -1, -2
_READ_LIMIT = 1 << 20
_BIG_WRITE = 1 << 16
IDLE_S = 3.0
"""A connection idle this long is reopened before its next request: the server may be closing
it at that very moment (uvicorn's keep-alive timeout is 5 s), and the request would fail as a
transport error that says nothing about the server. At rates below about one request per
second per connection, Poisson gaps that long are common."""

_KINDS = ("receipt", "pick")
_MOVEMENT = ('{"movement_id":"%s","kind":"%s","sku":"SKU-%05d","location":"L-%02d",'
             '"quantity":"%d","occurred_at":"2026-01-05T08:00:00Z"}')


def movement_json(movement_id: str, n: int, skus: int = 1000) -> str:
    """A valid canonical movement (receipt or pick) of the default catalog, varied by `n`."""
    return _MOVEMENT % (movement_id, _KINDS[n % 2], (n * 7919) % skus, n % 20 + 1, n % 9 + 1)


@dataclass(frozen=True)
class Payload:
    """What the i-th request carries.

    ``single``: one movement object; ``batch``: ``{"movements": [...]}`` of `batch_size`;
    ``raw``: `raw` as is. Movement ids are ``<id_prefix>-<n>``, unique within the payload. With
    ``unique=False`` the bodies cycle through a pool of `pool` distinct ones (enough for an
    endpoint that does not dedupe: parsing the same bytes costs the same)."""

    kind: Literal["single", "batch", "raw"] = "single"
    batch_size: int = 1
    id_prefix: str = "mv"
    unique: bool = True
    pool: int = 256
    skus: int = 1000
    raw: bytes = b"{}"

    @property
    def movements(self) -> int:
        """Movements per request."""
        return self.batch_size if self.kind == "batch" else 1

    def body(self, i: int) -> bytes:
        if not self.unique:
            i %= self.pool
        if self.kind == "raw":
            return self.raw
        if self.kind == "single":
            return movement_json(f"{self.id_prefix}-{i}", i, self.skus).encode()
        base = i * self.batch_size
        items = ",".join(movement_json(f"{self.id_prefix}-{n}", n, self.skus)
                         for n in range(base, base + self.batch_size))
        return ('{"movements":[' + items + "]}").encode()


@dataclass(frozen=True)
class Target:
    """Where requests go: loopback host, port, path and extra headers (e.g. an API key).

    `ports`: every instance's port when the service runs several (the first is `port`);
    empty: `port` alone. Connection i goes to ``instances[i % len(instances)]``."""

    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    ok_statuses: tuple[int, ...] = (200, 202)
    ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.ports and self.ports[0] != self.port:
            raise ValueError(f"Target.ports must start with port {self.port}, got {self.ports}")

    @classmethod
    def spread(cls, host: str, ports: Sequence[int], path: str,
               headers: tuple[tuple[str, str], ...] = ()) -> Target:
        """One target over the instances listening on `ports`."""
        if not ports:
            raise ValueError("Target.spread: no port")
        return cls(host, ports[0], path, headers, ports=tuple(ports) if len(ports) > 1 else ())

    @property
    def instances(self) -> tuple[int, ...]:
        """The ports the connections are spread over, round-robin."""
        return self.ports or (self.port,)

    def request(self, body: bytes, port: int | None = None) -> bytes:
        """The whole request for `body`, its Host header naming `port` (default `port`)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{port or self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n")
        return head.encode() + body


@dataclass(frozen=True)
class Step:
    """One open-model step: `rate` requests/s for `warmup_s` (not measured) + `duration_s`."""

    rate: float
    duration_s: float = 3.0
    warmup_s: float = 1.0
    connections: int = 16
    arrivals: Literal["poisson", "constant"] = "poisson"
    seed: int = 0
    timeout_s: float = 10.0
    slo_s: float | None = None
    stop_on_error: bool = False


@dataclass
class StepResult:
    rate: float
    duration_s: float
    connections: int
    scheduled: int
    """Requests whose intended send time falls in the measured window."""
    ok: int
    errors: int
    """Measured requests answered with a status outside `ok_statuses`, or failed, or timed out."""
    unfinished: int
    """Measured requests never completed because the step stopped early."""
    statuses: dict[str, int]
    latency_ms: dict[str, float]
    """Percentiles of the completed measured requests, from their intended send time."""
    requests_per_s: float
    movements_per_s: float
    ok_movements_total: int
    """Movements in every request answered OK, warm-up and stopped tail included."""
    requests_sent_total: int
    stopped: str | None
    client: dict[str, float]
    slo_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Zero errors, nothing unfinished, no early stop and p99 below the SLO (if any)."""
        if self.stopped or self.errors or self.unfinished or self.scheduled == 0:
            return False
        return self.slo_s is None or self.latency_ms["p99"] < self.slo_s * 1000.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def arrival_offsets(rate: float, horizon_s: float, arrivals: str, seed: int) -> list[float]:
    """Intended send times in [0, horizon_s): constant spacing or a seeded Poisson process."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if arrivals == "constant":
        return [i / rate for i in range(math.ceil(horizon_s * rate - 1e-9))]
    if arrivals != "poisson":
        raise ValueError(f"arrivals: 'poisson' or 'constant', got {arrivals!r}")
    rng = random.Random(seed)
    out, t = [], rng.expovariate(rate)
    while t < horizon_s:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99/max of `values` (seconds), in ms; NaN when empty."""
    if not values:
        return {k: math.nan for k in ("p50", "p90", "p99", "max")}
    s = sorted(values)

    def rank(p: float) -> float:
        return s[max(0, math.ceil(p * len(s)) - 1)] * 1000.0

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": s[-1] * 1000.0}


# -- HTTP/1.1 framing ---------------------------------------------------------------------------


async def _connect(target: Target, port: int
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(target.host, port, limit=_READ_LIMIT)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    status = int(parts[1])
    length, chunked, close = -1, False, parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            await reader.readexactly(size + 2)
    elif length > 0:
        await reader.readexactly(length)
    elif length < 0 and status >= 200 and status not in (204, 304):
        raise ValueError("a response without Content-Length or chunked framing")
    return status, close


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


# -- the open-model step ------------------------------------------------------------------------


async def run_step_async(target: Target, payload: Payload, step: Step) -> StepResult:
    """Run one step in the running event loop (`LoadProcess` runs it in its own process)."""
    t_prep = time.perf_counter()
    horizon = step.warmup_s + step.duration_s
    offsets = arrival_offsets(step.rate, horizon, step.arrivals, step.seed)
    n = len(offsets)
    first = bisect.bisect_left(offsets, step.warmup_s)  # measured: [first, n)
    n_measured = n - first
    ports = target.instances
    # The Host header names the instance: the requests are built once per port, before the
    # clock starts, so a request costs the same whatever the number of instances.
    if payload.unique:
        bodies = [payload.body(i) for i in range(n)]
        reqs = [[target.request(b, p) for b in bodies] for p in ports]
        del bodies
    else:
        pools = [[target.request(payload.body(i), p) for i in range(min(n, payload.pool))]
                 for p in ports]
        reqs = [[pool[i % len(pool)] for i in range(n)] for pool in pools]
    prepare_s = time.perf_counter() - t_prep
    # The bodies are the producer's: keep the cyclic GC from rescanning them during the step.
    gc.collect()
    gc.freeze()

    # No more connections than about one request per second each (fewer idle keep-alive
    # connections to reopen, see IDLE_S), but one per instance at least.
    n_conn = max(1, min(step.connections, max(len(ports), math.ceil(step.rate))))
    conns: list[tuple[asyncio.StreamReader | None, asyncio.StreamWriter | None]] = []
    for w in range(n_conn):  # connection w talks to instance w % n, reconnects included
        conns.append(await _connect(target, ports[w % len(ports)]))

    status = [NOT_DONE] * n
    latency = [math.nan] * n
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    stop = asyncio.Event()
    why: list[str] = []
    inflight = [-1] * n_conn
    st = {"taken": 0, "released": 0, "late_done": 0, "sent": 0}
    sched_lag: list[float] = []
    ok_set = frozenset(target.ok_statuses)
    slo = step.slo_s
    # p99 (nearest rank) >= slo once this many measured requests are at or over the slo.
    late_limit = n_measured - math.ceil(0.99 * n_measured) + 1
    t0 = time.perf_counter() + 0.02
    intended = [t0 + o for o in offsets]
    cpu0 = time.process_time()

    def halt(reason: str) -> None:
        if not stop.is_set():
            why.append(reason)
            stop.set()

    async def worker(w: int) -> None:
        reader, writer = conns[w]
        try:
            await serve(w, reader, writer)
        finally:
            _close(conns[w][1])

    async def serve(w: int, reader: asyncio.StreamReader | None,
                    writer: asyncio.StreamWriter | None) -> None:
        port, mine = ports[w % len(ports)], reqs[w % len(ports)]
        last = time.perf_counter()
        while True:
            i = await queue.get()
            if i is None:
                break
            st["taken"] = i + 1
            inflight[w] = i
            code = TRANSPORT_ERROR
            if writer is not None and time.perf_counter() - last > IDLE_S:
                _close(writer)  # the server may be closing it right now: a fresh one
                reader = writer = None
            try:
                async with asyncio.timeout(step.timeout_s):
                    if writer is None or reader is None:
                        reader, writer = await _connect(target, port)
                    writer.write(mine[i])
                    st["sent"] += 1
                    if writer.transport.get_write_buffer_size() > _BIG_WRITE:
                        await writer.drain()
                    code, close = await read_response(reader)
                if close:
                    _close(writer)
                    reader = writer = None
            except TimeoutError:
                code = TIMED_OUT
                _close(writer)
                reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                code = TRANSPORT_ERROR
                _close(writer)
                reader = writer = None
            finally:
                conns[w] = (reader, writer)  # whatever is open now gets closed at the end
            done = last = time.perf_counter()
            inflight[w] = -1
            status[i] = code
            lat = done - intended[i]
            latency[i] = lat
            if i >= first and slo is not None and lat >= slo:
                st["late_done"] += 1
            if code not in ok_set and step.stop_on_error:
                halt(f"error: {code}")

    async def scheduler() -> None:
        i = 0
        while i < n and not stop.is_set():
            now = time.perf_counter()
            while i < n and intended[i] <= now:
                queue.put_nowait(i)
                if i >= first:
                    sched_lag.append(now - intended[i])
                i += 1
            st["released"] = i
            if i < n:
                delay = intended[i] - time.perf_counter()
                await asyncio.sleep(delay if delay > 0 else 0)

    async def monitor() -> None:
        assert slo is not None
        while not stop.is_set():
            await asyncio.sleep(0.05)
            cutoff = time.perf_counter() - slo
            lo = max(st["taken"], first)
            waiting = max(0, bisect.bisect_left(intended, cutoff, lo, max(lo, st["released"])) - lo)
            running = sum(1 for i in inflight if i >= first and intended[i] < cutoff)
            if st["late_done"] + waiting + running >= late_limit:
                halt(f"p99 >= {slo * 1000:.0f} ms")

    workers = [asyncio.create_task(worker(w)) for w in range(n_conn)]
    mon = asyncio.create_task(monitor()) if slo is not None and n_measured else None
    sched = asyncio.create_task(scheduler())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([sched, stopper], return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():  # drop what still waits; let the requests on the wire finish
        sched.cancel()
        while not queue.empty():
            queue.get_nowait()
    for _ in workers:
        queue.put_nowait(None)
    grace = min(step.timeout_s, 2.0) if stop.is_set() else step.timeout_s + 1.0
    _, pending = await asyncio.wait(workers, timeout=grace)
    for t in (*pending, stopper, *([mon] if mon else [])):
        t.cancel()
    await asyncio.gather(sched, stopper, *pending, *([mon] if mon else []),
                         return_exceptions=True)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    gc.unfreeze()

    measured = range(first, n)
    counts: dict[str, int] = {}
    done_lat: list[float] = []
    ok = errors = unfinished = 0
    for i in measured:
        code = status[i]
        if code == NOT_DONE:
            unfinished += 1
            continue
        counts[str(code)] = counts.get(str(code), 0) + 1
        if code in ok_set:
            ok += 1
        else:
            errors += 1
        if code > 0:
            done_lat.append(latency[i])
    ok_total = sum(1 for c in status if c in ok_set)
    return StepResult(
        rate=step.rate, duration_s=step.duration_s, connections=n_conn, scheduled=n_measured,
        ok=ok, errors=errors, unfinished=unfinished, statuses=counts,
        latency_ms=percentiles(done_lat), requests_per_s=ok / step.duration_s,
        movements_per_s=ok * payload.movements / step.duration_s,
        ok_movements_total=ok_total * payload.movements, requests_sent_total=st["sent"],
        stopped=why[0] if why else None, slo_s=slo,
        client={"cpu_fraction": round(cpu / wall, 3) if wall > 0 else math.nan,
                "sched_lag_p99_ms": percentiles(sched_lag)["p99"],
                "prepare_s": round(prepare_s, 3)},
    )


async def saturate_async(target: Target, payload: Payload, connections: int,
                         duration_s: float, warmup_s: float = 0.3,
                         timeout_s: float = 10.0) -> dict[str, Any]:
    """Closed loop: each connection sends its next request as soon as the last one is answered.

    The throughput it reaches is the server's saturation rate: an upper bound of any rate an
    open-model step can sustain, used to aim the search. Unique bodies are built on the fly
    (a cost the client pays, not the server); a pool is built before the clock starts."""
    ids = itertools.count()
    ports = target.instances
    pools = [[target.request(payload.body(i), p) for i in range(payload.pool)]
             if not payload.unique else [] for p in ports]
    t0 = time.perf_counter()
    start, end = t0 + warmup_s, t0 + warmup_s + duration_s
    res = {"ok": 0, "errors": 0, "ok_total": 0}

    async def loop(c: int) -> None:
        port = ports[c % len(ports)]  # connection c talks to instance c % n, reconnects too
        pool = pools[c % len(ports)]
        reader, writer = await _connect(target, port)
        try:
            while time.perf_counter() < end:
                i = next(ids)
                req = pool[i % len(pool)] if pool else target.request(payload.body(i), port)
                async with asyncio.timeout(timeout_s):
                    writer.write(req)
                    await writer.drain()
                    code, close = await read_response(reader)
                good = code in target.ok_statuses
                res["ok_total"] += good
                if start <= time.perf_counter() < end:
                    res["ok" if good else "errors"] += 1
                if close:
                    writer.close()
                    reader, writer = await _connect(target, port)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            res["errors"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(loop(c) for c in range(connections)))
    return {"connections": connections, "duration_s": duration_s, "errors": res["errors"],
            "requests_per_s": res["ok"] / duration_s,
            "movements_per_s": res["ok"] * payload.movements / duration_s,
            "ok_movements_total": res["ok_total"] * payload.movements}


def run_step(target: Target, payload: Payload, step: Step) -> StepResult:
    """`run_step_async` in a fresh event loop of this process."""
    return asyncio.run(run_step_async(target, payload, step))


# -- the generator's own process ----------------------------------------------------------------


def _child(conn: Connection) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        what, args = msg
        try:
            if what == "step":
                out: Any = run_step(*args)
            else:
                out = asyncio.run(saturate_async(*args))
            conn.send(("ok", out))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class LoadProcess:
    """The load generator in a spawned child process, reused across steps."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child,), name="httpload", daemon=True)
        self._proc.start()
        child.close()

    def _call(self, what: str, args: tuple[Any, ...], deadline_s: float) -> Any:
        self._conn.send((what, args))
        if not self._conn.poll(deadline_s):
            raise TimeoutError(f"the load generator did not answer within {deadline_s:.0f} s")
        tag, out = self._conn.recv()
        if tag != "ok":
            raise RuntimeError(f"the load generator failed:\n{out}")
        return out

    def step(self, target: Target, payload: Payload, step: Step) -> StepResult:
        bound = 60.0 + step.warmup_s + step.duration_s + step.timeout_s
        result: StepResult = self._call("step", (target, payload, step), bound)
        return result

    def saturate(self, target: Target, payload: Payload, connections: int,
                 duration_s: float) -> dict[str, Any]:
        out: dict[str, Any] = self._call("saturate", (target, payload, connections, duration_s),
                                         60.0 + duration_s)
        return out

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=5)
        self._conn.close()
        self._proc.close()

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
