"""A fault proxy: a small asyncio TCP proxy that puts network faults on the link between a
client and its upstream, switchable while connections are open.

    python -m loadtests.proxy --listen 127.0.0.1:9001 --upstream 127.0.0.1:8090 \\
        [--admin 127.0.0.1:9002] [--seed 0] [--toxic '{"kind": "latency", "latency_ms": 50}']

It knows nothing about what flows through it: bytes in from the client are forwarded
*upstream*, bytes back from the upstream are forwarded *downstream* (Toxiproxy's words). The
faults are **toxics**, as Toxiproxy defines them (semantics only; no code of it is used), plus
two of our own; each is a pydantic model (`Toxic`, discriminated by ``kind``):

- ``latency`` (`Latency`): every chunk is held ``latency_ms`` +- ``jitter_ms`` (uniform) after
  it arrived, then forwarded; chunks keep their order, throughput is not capped.
- ``bandwidth`` (`Bandwidth`): at most ``rate_bytes_per_s``, in slices of a twentieth of a
  second's worth.
- ``timeout`` (`Timeout`): the connection stalls. Data stops flowing (read and dropped, so the
  sender is not blocked, exactly like Toxiproxy) and the connection is held open; with
  ``timeout_ms`` > 0 it is closed (FIN) that long after the toxic took the link. Removing the
  toxic lets data flow again, but what was dropped is gone.
- ``reset_peer`` (`ResetPeer`): on the first chunk the toxic sees (after ``timeout_ms``) both
  sides are reset (SO_LINGER 0: an RST, the client's read raises ``ConnectionResetError``);
  the chunk is not forwarded. On ``stream = "upstream"`` the request never reaches the
  upstream; on ``"downstream"`` it did and the answer is lost.
- ``close_after_forward`` (`CloseAfterForward`): the client's data is forwarded, the first
  chunk of the answer is dropped and both sides are closed (the client reads EOF): the
  ambiguous timeout, where the upstream did the work and the caller never hears.
- ``limit_data`` (`LimitData`): after ``bytes`` bytes (counted from when the toxic took the
  link, on its stream) the connection is closed; the bytes up to the limit are forwarded.
- ``down`` (`Down`): new connections are reset as soon as they are accepted, the upstream is
  never contacted; open ones are reset when it is switched on. The listening socket stays
  bound (so the port is never lost to another process), hence a reset and not a refusal.

**Toxicity.** Every toxic has a ``toxicity``, the probability that it takes a *link*: a
connection (``scope = "connection"``, Toxiproxy's rule: drawn when the connection opens, and
for the open ones when the toxic is switched on) or one exchange (``scope = "exchange"``:
drawn again each time the client speaks after the upstream did, i.e. per request of a
request/response protocol like HTTP/1.1, so a keep-alive pool keeps meeting the fault). The
draws come from an injected ``numpy.random.Generator`` in the order connections and exchanges
arrive: the same seed and the same sequence of connections give the same faults. (Jitter has
its own child stream, so how much data flows does not change which links are hit.)

**Control.** In process: `Proxy` (``set`` / ``remove`` / ``clear`` / ``stats``, on the
proxy's event loop). Over HTTP (loopback only), with `ProxyControl` as the client:
``PUT /toxics/{name}`` (body: a toxic), ``DELETE /toxics/{name}``, ``DELETE /toxics``,
``GET /toxics``, ``GET /stats``, ``GET /healthz``. `ProxyStats` counts per toxic name how
often it was drawn, taken, *fired* (acted on data or a connection) and the bytes it forwarded
and dropped, plus the connections and the bytes forwarded each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

Stream = Literal["upstream", "downstream", "both"]
Direction = Literal["upstream", "downstream"]
Scope = Literal["connection", "exchange"]
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
CHUNK = 64 * 1024  # the most read from one side at a time
QUEUE_CHUNKS = 16  # chunks buffered per direction before the reader waits (backpressure)
CONNECT_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 1024  # past this many open connections, new ones are reset
ADMIN_TIMEOUT_S = 5.0
ADMIN_MAX_BODY = 64 * 1024
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
READY = re.compile(r"^proxy (?P<host>[^\s]+):(?P<port>\d+) -> [^\s;]+(?:; control "
                   r"(?P<control>http://[^\s]+))?$")
"""The line the command prints once it listens (a process that started it learns the ports
it bound, so ``--listen 127.0.0.1:0`` never races another process for a port)."""


# -- the toxics ----------------------------------------------------------------------------


class _Toxic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    toxicity: float = Field(
        1.0, ge=0, le=1, description="Probability that the toxic takes a link (a connection, "
        "or one exchange with scope `exchange`), drawn from the proxy's seeded generator.")
    scope: Scope = Field(
        "connection", description="`connection`: drawn once per connection (Toxiproxy); "
        "`exchange`: drawn again whenever the client speaks after the upstream did (each "
        "request of HTTP/1.1), so a keep-alive connection keeps meeting the fault.")


class _Streamed(_Toxic):
    stream: Stream = Field(
        "both", description="Which way it acts: `upstream` (client -> upstream), "
        "`downstream` (upstream -> client) or `both`.")


class Latency(_Streamed):
    """Each chunk is forwarded `latency_ms` +- `jitter_ms` after it arrived."""

    kind: Literal["latency"] = "latency"
    latency_ms: float = Field(ge=0, le=60_000, description="Delay added to each chunk, ms.")
    jitter_ms: float = Field(
        0.0, ge=0, le=60_000, description="Uniform +- spread of the delay, ms (never below 0).")


class Bandwidth(_Streamed):
    """At most `rate_bytes_per_s` bytes a second."""

    kind: Literal["bandwidth"] = "bandwidth"
    rate_bytes_per_s: int = Field(gt=0, description="Bytes per second, each way it acts.")


class Timeout(_Streamed):
    """The connection stalls: data is dropped, the connection held open (closed after
    `timeout_ms` if > 0)."""

    kind: Literal["timeout"] = "timeout"
    timeout_ms: float = Field(
        0.0, ge=0, le=3_600_000, description="Close the connection this long after the toxic "
        "took it, ms; 0: hold it open until the toxic is removed or the client gives up.")


class ResetPeer(_Streamed):
    """On the first chunk it sees (after `timeout_ms`), both sides get an RST."""

    kind: Literal["reset_peer"] = "reset_peer"
    timeout_ms: float = Field(
        0.0, ge=0, le=60_000, description="Wait this long after the chunk before the reset, ms.")


class CloseAfterForward(_Toxic):
    """The request is forwarded; the answer's first chunk is dropped and both sides closed."""

    kind: Literal["close_after_forward"] = "close_after_forward"


class LimitData(_Streamed):
    """The connection is closed once `bytes` bytes went through the toxic."""

    kind: Literal["limit_data"] = "limit_data"
    bytes: int = Field(gt=0, description="Bytes forwarded (on `stream`) before the close.")


class Down(_Toxic):
    """New connections are reset at once; open ones are reset when it is switched on."""

    kind: Literal["down"] = "down"
    scope: Literal["connection"] = Field(
        "connection", description="Always per connection.")


Toxic = Annotated[Latency | Bandwidth | Timeout | ResetPeer | CloseAfterForward | LimitData
                  | Down, Field(discriminator="kind")]
ToxicKind = Literal["latency", "bandwidth", "timeout", "reset_peer", "close_after_forward",
                    "limit_data", "down"]
KINDS: tuple[ToxicKind, ...] = ("latency", "bandwidth", "timeout", "reset_peer",
                                "close_after_forward", "limit_data", "down")
TOXIC: TypeAdapter[Toxic] = TypeAdapter(Toxic)


def parse_toxic(data: Any) -> Toxic:
    """A toxic from JSON-like data (``{"kind": "latency", "latency_ms": 50}``)."""
    return TOXIC.validate_python(data)


def describe_errors(error: ValidationError) -> str:
    """``latency_ms: Input should be greater than or equal to 0, got -1``, joined by '; '."""
    parts = []
    for err in error.errors():
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            kind = err["input"].get("kind") if isinstance(err["input"], dict) else None
            parts.append(f"kind: must be one of {', '.join(KINDS)}"
                         + (f", got {kind!r}" if kind is not None else ""))
            continue
        loc = ".".join(str(p) for p in err["loc"][1:])  # without the union's tag
        parts.append(f"{loc}: {err['msg']}" + (
            f", got {err['input']!r}" if err["type"] != "missing" else ""))
    return "; ".join(parts)


def _flows(toxic: Toxic, direction: Direction) -> bool:
    if isinstance(toxic, CloseAfterForward):
        return direction == "downstream"
    if isinstance(toxic, Down):
        return False
    return toxic.stream in ("both", direction)


# -- the counters --------------------------------------------------------------------------


class ToxicStats(BaseModel):
    """What one toxic name did, cumulated over every time it was switched on."""

    kind: str
    drawn: int = Field(0, description="Toxicity draws (links met).")
    taken: int = Field(0, description="Draws that put the toxic on the link.")
    fired: int = Field(0, description="Times it acted: chunks delayed or paced (latency, "
                       "bandwidth), links stalled, resets, closes, connections refused.")
    bytes_forwarded: int = Field(0, description="Bytes that went on through it.")
    bytes_dropped: int = Field(0, description="Bytes it swallowed.")


class ProxyStats(BaseModel):
    """The proxy's counters and the toxics switched on now."""

    listen: str
    upstream: str
    connections: int = Field(description="Connections accepted.")
    open_connections: int
    refused: int = Field(description="Reset at accept (a `down` toxic or too many open).")
    upstream_failures: int = Field(description="Connections the upstream did not take.")
    bytes_upstream: int = Field(description="Bytes forwarded client -> upstream.")
    bytes_downstream: int = Field(description="Bytes forwarded upstream -> client.")
    toxics: dict[str, ToxicStats]
    active: dict[str, Toxic]


# -- one proxied connection ----------------------------------------------------------------


class _Taken:
    """A toxic on one link: its own state there."""

    def __init__(self, toxic: Toxic) -> None:
        self.toxic = toxic
        self.count = 0  # limit_data: bytes through so far
        self.fired = False  # timeout: counted once per link
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer gets an RST, not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    def __init__(self, lid: int, client: asyncio.StreamWriter) -> None:
        self.id = lid
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.taken: dict[str, _Taken] = {}
        self.last: Direction | None = None  # which way the last chunk went
        self.closed = asyncio.Event()

    def close(self, reset: bool = False) -> None:
        """Close both sides (reset: with an RST); the connection's tasks then end."""
        if self.closed.is_set():
            return
        self.closed.set()
        for taken in self.taken.values():
            taken.cancel()
        for w in (self.client, self.upstream):
            if w is None or w.transport.is_closing():
                continue
            if reset:
                _reset(w)
            else:
                w.close()


# -- the proxy -----------------------------------------------------------------------------


def _loopback(host: str, what: str) -> None:
    if host not in LOOPBACK:
        raise ValueError(f"{what}: {host!r} is not a loopback address (127.0.0.1, ::1)")


class Proxy:
    """A TCP proxy from `listen` to `upstream` with switchable toxics.

    Use on one event loop: ``async with Proxy(("127.0.0.1", 8090), rng) as p: ...``, then
    `set`, `remove`, `clear` and `stats` from that loop. ``listen`` port 0 picks a free port
    (see `address`). ``admin`` (host, port) also serves the HTTP control endpoint."""

    def __init__(self, upstream: tuple[str, int], rng: np.random.Generator, *,
                 listen: tuple[str, int] = ("127.0.0.1", 0),
                 admin: tuple[str, int] | None = None) -> None:
        _loopback(listen[0], "listen")
        if admin is not None:
            _loopback(admin[0], "admin")
        self.upstream = upstream
        self._listen = listen
        self._admin_at = admin
        self._toxicity_rng, self._jitter_rng = rng.spawn(2)
        self._toxics: dict[str, Toxic] = {}  # switched on now, in the order they were set
        self._stats: dict[str, ToxicStats] = {}
        self._links: dict[int, _Link] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._admin: asyncio.Server | None = None
        self.connections = self.refused = self.upstream_failures = 0
        self.bytes = {"upstream": 0, "downstream": 0}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, *self._listen, limit=CHUNK)
        if self._admin_at is not None:
            self._admin = await asyncio.start_server(self._serve_admin, *self._admin_at)

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for their tasks (5 s at most)."""
        for server in (self._server, self._admin):
            if server is not None:
                server.close()
        for link in list(self._links.values()):
            link.close()
        for server in (self._server, self._admin):
            if server is not None:
                await server.wait_closed()
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def _bound(server: asyncio.Server | None) -> tuple[str, int]:
        if server is None:
            raise RuntimeError("the proxy is not started")
        host, port = server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def address(self) -> tuple[str, int]:
        """Where the proxy listens (host, port)."""
        return self._bound(self._server)

    @property
    def admin_address(self) -> tuple[str, int]:
        """Where the HTTP control endpoint listens (host, port)."""
        return self._bound(self._admin)

    # -- the toxics --------------------------------------------------------------------------

    def set(self, toxic: Toxic, name: str | None = None) -> str:
        """Switch `toxic` on under `name` (default: its kind), replacing one of that name.
        Every open connection draws its toxicity now, in the order they were opened."""
        name = toxic.kind if name is None else name
        if not NAME.match(name):
            raise ValueError(f"name: {name!r} is not 1-64 of A-Z a-z 0-9 _ . -")
        self.remove(name)
        self._toxics[name] = toxic
        stats = self._stats.setdefault(name, ToxicStats(kind=toxic.kind))
        stats.kind = toxic.kind
        for lid in sorted(self._links):
            link = self._links[lid]
            if self._draw(link, name, toxic) and isinstance(toxic, Down):
                stats.fired += 1
                link.close(reset=True)
        return name

    def remove(self, name: str) -> bool:
        """Switch the toxic `name` off (its counters stay); False if it was not on."""
        if self._toxics.pop(name, None) is None:
            return False
        for link in self._links.values():
            taken = link.taken.pop(name, None)
            if taken is not None:
                taken.cancel()
        return True

    def clear(self) -> None:
        """Switch every toxic off."""
        for name in list(self._toxics):
            self.remove(name)

    def toxics(self) -> dict[str, Toxic]:
        return dict(self._toxics)

    def stats(self) -> ProxyStats:
        host, port = self._listen
        with contextlib.suppress(RuntimeError):
            host, port = self.address
        return ProxyStats(
            listen=f"{host}:{port}", upstream=f"{self.upstream[0]}:{self.upstream[1]}",
            connections=self.connections, open_connections=len(self._links),
            refused=self.refused, upstream_failures=self.upstream_failures,
            bytes_upstream=self.bytes["upstream"], bytes_downstream=self.bytes["downstream"],
            toxics={k: v.model_copy() for k, v in self._stats.items()},
            active=dict(self._toxics))

    def _draw(self, link: _Link, name: str, toxic: Toxic) -> bool:
        """Draw whether `toxic` takes `link` (one draw from the toxicity stream, always)."""
        old = link.taken.pop(name, None)
        if old is not None:
            old.cancel()
        stats = self._stats[name]
        stats.drawn += 1
        if not self._toxicity_rng.random() < toxic.toxicity:
            return False
        stats.taken += 1
        taken = link.taken[name] = _Taken(toxic)
        if isinstance(toxic, Timeout) and toxic.timeout_ms > 0:
            taken.timer = asyncio.get_running_loop().call_later(
                toxic.timeout_ms / 1000, self._stall_ends, link, name, taken)
        return True

    def _stall_ends(self, link: _Link, name: str, taken: _Taken) -> None:
        if link.taken.get(name) is not taken:
            return
        if not taken.fired:
            taken.fired = True
            self._stats[name].fired += 1
        link.close()

    def _new_exchange(self, link: _Link) -> None:
        for name, toxic in self._toxics.items():
            if toxic.scope == "exchange":
                self._draw(link, name, toxic)

    # -- the connections ---------------------------------------------------------------------

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        self.connections += 1
        link = _Link(next(self._ids), writer)
        self._links[link.id] = link
        tasks: list[asyncio.Task[None]] = []
        try:
            for name, toxic in self._toxics.items():
                if toxic.scope == "connection":
                    self._draw(link, name, toxic)
            downs = [n for n, t in link.taken.items() if isinstance(t.toxic, Down)]
            if downs or len(self._links) > MAX_CONNECTIONS:
                for n in downs:
                    self._stats[n].fired += 1
                self.refused += 1
                link.close(reset=True)
                return
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    up_reader, up_writer = await asyncio.open_connection(
                        *self.upstream, limit=CHUNK)
            except (OSError, TimeoutError):
                self.upstream_failures += 1
                link.close(reset=True)
                return
            link.upstream = up_writer
            if link.closed.is_set():  # switched down while connecting
                _reset(up_writer)
                return
            to_up: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
            to_down: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._read(link, "upstream", reader, to_up)),
                     loop.create_task(self._write(link, "upstream", to_up, up_writer)),
                     loop.create_task(self._read(link, "downstream", up_reader, to_down)),
                     loop.create_task(self._write(link, "downstream", to_down, writer))]
            closed = loop.create_task(link.closed.wait())
            writers = {tasks[1], tasks[3]}
            while writers and not closed.done():  # both ways at EOF, or the link closed
                done, _ = await asyncio.wait({*writers, closed},
                                             return_when=asyncio.FIRST_COMPLETED)
                writers -= done
            closed.cancel()
            await asyncio.gather(closed, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            link.close()
            self._links.pop(link.id, None)

    async def _read(self, link: _Link, direction: Direction, reader: asyncio.StreamReader,
                    queue: asyncio.Queue[tuple[float, bytes] | None]) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    await queue.put(None)
                    return
                if direction == "upstream" and link.last != "upstream":
                    self._new_exchange(link)
                link.last = direction
                await queue.put((time.monotonic(), data))
        except OSError:  # reset by that side: reset the other too
            link.close(reset=True)

    async def _write(self, link: _Link, direction: Direction,
                     queue: asyncio.Queue[tuple[float, bytes] | None],
                     writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                item = await queue.get()
                if item is None:
                    if writer.can_write_eof() and not writer.transport.is_closing():
                        writer.write_eof()  # half-close: the other way may still flow
                    return
                arrived, data = item
                passed = await self._through(link, direction, arrived, data)
                if link.closed.is_set():
                    return
                if passed is None:
                    continue
                data, rate, close_after = passed
                await self._send(writer, data, rate)
                self.bytes[direction] += len(data)
                if close_after:
                    link.close()
                    return
        except OSError:
            link.close(reset=True)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, rate: int | None) -> None:
        if rate is None:
            writer.write(data)
            await writer.drain()
            return
        step = max(1, rate // 20)
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(len(piece) / rate)

    async def _through(self, link: _Link, direction: Direction, arrived: float, data: bytes
                       ) -> tuple[bytes, int | None, bool] | None:
        """Apply the toxics on `link` that act on `direction`, in the order they were set.
        None: the chunk is dropped (or the link closed); else (data, pace, close after)."""
        rate: int | None = None
        close_after = False
        for name, toxic in list(self._toxics.items()):
            taken = link.taken.get(name)
            if taken is None or not _flows(toxic, direction):
                continue
            stats = self._stats[name]
            if isinstance(toxic, Latency):
                spread = toxic.jitter_ms * (2 * self._jitter_rng.random() - 1)
                delay = max(0.0, toxic.latency_ms + spread) / 1000
                wait = arrived + delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                stats.fired += 1
            elif isinstance(toxic, Bandwidth):
                rate = toxic.rate_bytes_per_s if rate is None else min(rate,
                                                                        toxic.rate_bytes_per_s)
                stats.fired += 1
            elif isinstance(toxic, Timeout):
                stats.bytes_dropped += len(data)
                if not taken.fired:
                    taken.fired = True
                    stats.fired += 1
                return None
            elif isinstance(toxic, ResetPeer):
                if toxic.timeout_ms > 0:
                    await asyncio.sleep(toxic.timeout_ms / 1000)
                    if link.taken.get(name) is not taken:  # switched off meanwhile
                        continue
                stats.fired += 1
                stats.bytes_dropped += len(data)
                link.close(reset=True)
                return None
            elif isinstance(toxic, CloseAfterForward):
                stats.fired += 1
                stats.bytes_dropped += len(data)
                link.close()
                return None
            elif isinstance(toxic, LimitData):
                room = toxic.bytes - taken.count
                if len(data) >= room:
                    stats.bytes_dropped += len(data) - room
                    data = data[:room]
                    stats.fired += 1
                    close_after = True
                taken.count += len(data)
            if link.closed.is_set():
                return None
            stats.bytes_forwarded += len(data)
            if close_after and not data:
                link.close()
                return None
        return data, rate, close_after

    # -- the HTTP control endpoint -----------------------------------------------------------

    def control(self, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
        """Answer one control request: (status, JSON document). The HTTP endpoint's logic."""
        parts = [p for p in path.split("?", 1)[0].split("/") if p]
        if parts == ["healthz"] and method == "GET":
            return 200, {"ok": True}
        if parts == ["stats"] and method == "GET":
            return 200, self.stats().model_dump(mode="json")
        if parts == ["toxics"]:
            if method == "GET":
                return 200, {k: t.model_dump(mode="json") for k, t in self._toxics.items()}
            if method == "DELETE":
                self.clear()
                return 200, {"cleared": True}
            return 405, {"error": f"{method} /toxics: use GET or DELETE"}
        if len(parts) == 2 and parts[0] == "toxics":
            name = parts[1]
            if method == "PUT":
                try:
                    toxic = TOXIC.validate_json(body)
                except ValidationError as e:
                    return 400, {"error": describe_errors(e)}
                try:
                    self.set(toxic, name)
                except ValueError as e:
                    return 400, {"error": str(e)}
                return 200, {name: toxic.model_dump(mode="json")}
            if method == "DELETE":
                if self.remove(name):
                    return 200, {"removed": name}
                return 404, {"error": f"no toxic named {name!r} is on"}
            if method == "GET":
                if name in self._toxics:
                    return 200, {name: self._toxics[name].model_dump(mode="json")}
                return 404, {"error": f"no toxic named {name!r} is on"}
            return 405, {"error": f"{method} /toxics/{name}: use GET, PUT or DELETE"}
        return 404, {"error": f"no route {method} {path}"}

    async def _serve_admin(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        self._track()
        try:
            try:
                async with asyncio.timeout(ADMIN_TIMEOUT_S):
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                    lines = head.split("\r\n")
                    method, path, _ = lines[0].split(" ", 2)
                    headers = {k.strip().lower(): v.strip()
                               for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                    length = int(headers.get("content-length", "0"))
                    if not 0 <= length <= ADMIN_MAX_BODY:
                        raise ValueError(f"a body of {length} bytes")
                    body = await reader.readexactly(length)
                status, doc = self.control(method, path, body)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as e:
                status, doc = 400, {"error": f"bad request: {e}"}
            payload = json.dumps(doc).encode()
            writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                         "Connection: close\r\n\r\n".encode() + payload)
            with contextlib.suppress(OSError):
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


# -- the HTTP client of the control endpoint -----------------------------------------------


class ProxyError(RuntimeError):
    """The control endpoint refused a request or did not answer."""


class ProxyControl:
    """Client of a proxy's HTTP control endpoint (``http://127.0.0.1:<admin port>``).
    Blocking (urllib), so it works in plain threads and under gevent (locust) alike."""

    def __init__(self, base: str, timeout_s: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise ProxyError(f"{method} {self.base}{path}: {e.code} {detail}") from e
        except (urllib.error.URLError, OSError) as e:
            raise ProxyError(f"{method} {self.base}{path}: no answer: {e}") from e

    def set(self, toxic: Toxic, name: str | None = None) -> None:
        self._call("PUT", f"/toxics/{toxic.kind if name is None else name}",
                   toxic.model_dump(mode="json"))

    def remove(self, name: str) -> bool:
        try:
            self._call("DELETE", f"/toxics/{name}")
        except ProxyError as e:
            if ": 404 " in str(e):
                return False
            raise
        return True

    def clear(self) -> None:
        self._call("DELETE", "/toxics")

    def stats(self) -> ProxyStats:
        return ProxyStats.model_validate(self._call("GET", "/stats"))

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._call("GET", "/healthz")
                return
            except ProxyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


# -- the command line ----------------------------------------------------------------------


def parse_ready(line: str) -> tuple[int, str | None]:
    """(port, control URL or None) from the command's ready line (`READY`)."""
    m = READY.match(line.strip())
    if m is None:
        raise ValueError(f"not the proxy's ready line: {line!r}")
    return int(m["port"]), m["control"]


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _toxic_arg(text: str) -> Toxic:
    try:
        return TOXIC.validate_json(text)
    except ValidationError as e:
        raise argparse.ArgumentTypeError(f"{text}: {describe_errors(e)}") from e


async def _run(args: argparse.Namespace) -> ProxyStats:
    rng = np.random.default_rng(args.seed)
    proxy = Proxy(args.upstream, rng, listen=args.listen, admin=args.admin)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with proxy:
        for toxic in args.toxic:
            proxy.set(toxic)
        host, port = proxy.address
        admin = (f"; control http://{proxy.admin_address[0]}:{proxy.admin_address[1]}"
                 if args.admin else "")
        print(f"proxy {host}:{port} -> {args.upstream[0]}:{args.upstream[1]}{admin}",
              flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.max_s if args.max_s > 0 else None):
                await stopping.wait()
        stats = proxy.stats()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m loadtests.proxy",
        description="A TCP proxy with switchable network faults (toxics), loopback only.")
    ap.add_argument("--listen", type=_address, required=True, help="HOST:PORT to listen on "
                    "(loopback; port 0: a free one)")
    ap.add_argument("--upstream", type=_address, required=True, help="HOST:PORT to forward to")
    ap.add_argument("--admin", type=_address, help="HOST:PORT of the HTTP control endpoint "
                    "(loopback)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the toxicity draws")
    ap.add_argument("--toxic", type=_toxic_arg, action="append", default=[],
                    help='a toxic on from the start, as JSON: \'{"kind": "latency", '
                         '"latency_ms": 50}\' (repeatable; named by its kind)')
    ap.add_argument("--max-s", type=float, default=0.0, help="stop by itself after this many "
                    "seconds (0: on SIGINT/SIGTERM only)")
    args = ap.parse_args(argv)
    try:
        stats = asyncio.run(_run(args))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({**stats.model_dump(mode="json"), "cpu_s": round(time.process_time(), 2)}),
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
