"""The dashboard's numbers: one snapshot a tick, computed once and shared by every viewer.

`Hub` runs one ticker while anybody watches (and `LINGER_S` after the last one left, so a
page reload does not restart the windows). Each tick `Aggregator.snapshot` reads what the
engine and the runner already expose (consumer backlog and lag, dead letters, the last
reconciliation, loop lag, ERP posting counts), asks each partner twin for its fault switch,
and reads the bus log's new rows for the two aggregates nothing else keeps:

- **order latency**: order placed (the core accepted it) -> released (the WMS accepted the
  release), for the orders placed in the last `WINDOW_S`. Orders of that cohort not released
  yet count at their current age, censored (DESIGN principle 10): a WMS outage shows as a
  rising p95 at once, not after the backlog clears.
- **movements/s in**: movements the bus logged, per second of the tick.

The log is read over a read-only SQLite connection of the dashboard's own (WAL: a reader
never blocks the writer), filtered by type in SQL, so the thousands of movements a second a
load test posts are counted, not parsed. The page only draws what the snapshot says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from integration_core.envelope import MOVEMENT
from integration_core.errors import PayloadError
from integration_core.service.live import LiveEngine
from integration_core.service.partners import PartnerName
from integration_core.service.runner import Runner

log = logging.getLogger("interop_twin.service.dashboard")

TICK_S = 1.0
WINDOW_S = 300.0
"""The order-latency window: orders placed in the last five minutes."""
HISTORY = 300
"""Chart points kept (five minutes at one a second); sent whole to a page that connects."""
LINGER_S = 30.0
PROBE_TIMEOUT_S = 0.8
"""A fault switch that does not answer within this counts as the partner being down; below
the tick, so a dead partner never stretches a tick."""
MAX_OPEN_ORDERS = 20_000
"""Orders waiting for release tracked at most (the oldest are forgotten beyond, and
counted in `forgotten`): bounded memory under any load."""
LIST_LIMIT = 50
PARTNERS: tuple[PartnerName, ...] = ("erp", "wms")
_PLACED, _REPLY = "order.placed", "partner.reply"


# -- order latency ------------------------------------------------------------------------------


class OrderLatency:
    """Placed -> released per order, over a sliding window of placement times."""

    def __init__(self, window_s: float = WINDOW_S, max_open: int = MAX_OPEN_ORDERS) -> None:
        self.window_s = window_s
        self.max_open = max_open
        self.open: dict[str, float] = {}
        """Order id -> placed at, for orders not released yet (insertion = placement order)."""
        self.done: deque[tuple[float, float]] = deque()
        """(placed at, latency s) of released orders, oldest placement first."""
        self.refused = 0
        self.forgotten = 0

    def placed(self, order_id: str, at: float) -> None:
        if order_id in self.open:
            return
        self.open[order_id] = at
        while len(self.open) > self.max_open:
            del self.open[next(iter(self.open))]
            self.forgotten += 1

    def release_answered(self, order_id: str, at: float, accepted: bool) -> None:
        placed = self.open.pop(order_id, None)
        if placed is None:  # placed before the dashboard watched, or a second release
            return
        if accepted:
            self.done.append((placed, max(0.0, at - placed)))
        else:
            self.refused += 1

    def summary(self, now: float) -> dict[str, Any]:
        since = now - self.window_s
        while self.done and self.done[0][0] < since:
            self.done.popleft()
        released = [lat for _, lat in self.done]
        waiting = [now - at for at in self.open.values() if at >= since]
        sample = np.asarray(released + waiting, dtype=float)
        p50 = p95 = None
        if sample.size:
            p50, p95 = (float(v) for v in np.percentile(sample, [50, 95]))
        oldest = next(iter(self.open.values()), None)
        return {
            "window_s": self.window_s,
            "p50_s": p50,
            "p95_s": p95,
            "released": len(released),
            "waiting": len(self.open),
            "waiting_in_window": len(waiting),
            "oldest_waiting_s": None if oldest is None else max(0.0, now - oldest),
            "refused": self.refused,
            "forgotten": self.forgotten,
        }


# -- the bus log, tailed ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRows:
    movements: int
    orders: list[tuple[str, float, str | None, str | None, Any]]
    """(type, published_at, correlation id, source, payload.answer.accepted)."""


class LogTail:
    """New rows of the bus's `messages` table since the last read."""

    def __init__(self, db: Path, since: float) -> None:
        # Read-only, own connection: never the engine's, never a write lock.
        self.conn = sqlite3.connect(
            f"{db.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
        first = self.conn.execute(
            "SELECT MIN(position) FROM messages WHERE published_at >= ?", (since,)
        ).fetchone()[0]
        last = self.conn.execute("SELECT MAX(position) FROM messages").fetchone()[0]
        self.position = (first - 1) if first is not None else (last or 0)

    def read(self) -> LogRows:
        hi = self.conn.execute("SELECT MAX(position) FROM messages").fetchone()[0] or 0
        lo, self.position = self.position, max(self.position, hi)
        if hi <= lo:
            return LogRows(0, [])
        (movements,) = self.conn.execute(
            "SELECT COUNT(*) FROM messages WHERE position > ? AND position <= ? AND type = ?",
            (lo, hi, MOVEMENT),
        ).fetchone()
        orders = self.conn.execute(
            "SELECT type, published_at, json_extract(envelope, '$.correlation_id'), "
            "json_extract(envelope, '$.source'), "
            "json_extract(envelope, '$.payload.answer.accepted') FROM messages "
            "WHERE position > ? AND position <= ? AND type IN (?, ?) ORDER BY position",
            (lo, hi, _PLACED, _REPLY),
        ).fetchall()
        return LogRows(int(movements), orders)

    def close(self) -> None:
        self.conn.close()


# -- one snapshot -------------------------------------------------------------------------------


Source = Callable[[], tuple[LiveEngine, Runner] | None]
"""The engine and runner while the service runs; None while it starts or stops."""


class Aggregator:
    """Turns the engine's and runner's state into the dashboard's snapshot, keeping what
    needs memory across ticks: the latency window, the log position, previous counters."""

    def __init__(self, db: Path | None, window_s: float = WINDOW_S) -> None:
        self.db = db
        """The SQLite file whose log is tailed; None (the PostgreSQL store): no tail, so
        order latency and movements/s stay empty (docs/postgres.md)."""
        self.latency = OrderLatency(window_s)
        self.tail: LogTail | None = None
        self.prev: tuple[float, int, int, int, int] | None = None
        """(at, ERP backlog, ERP dead letters, ERP posting calls ok, failed) at the last
        tick."""
        self.booked = 0
        """Movements booked in the ERP since this aggregator started watching."""
        self.reconcile_runs = -1
        self.reconciled_at: float | None = None

    def close(self) -> None:
        if self.tail is not None:
            self.tail.close()
            self.tail = None

    async def snapshot(self, engine: LiveEngine, runner: Runner) -> dict[str, Any]:
        now = engine.clock.now()
        partners = await self._partners(runner)
        movements_in = self._read_log(now)
        status = engine.status()
        consumers = status["consumers"]
        backlog, dead = consumers["erp"]["backlog"], consumers["erp"]["dead_letters"]
        dt, in_rate, out_rate, posts_ok, posts_failed = 0.0, 0.0, 0.0, 0, 0
        if self.prev is not None:
            at, prev_backlog, prev_dead, prev_ok, prev_failed = self.prev
            dt = max(1e-6, now - at)
            posts_ok, posts_failed = (
                runner.erp_posts - prev_ok,
                runner.erp_post_failures - prev_failed,
            )
            if movements_in is not None:
                # What left the ERP's queue booked: what came in, less what the queue and its
                # dead letters grew by (a requeue moves one from the second to the first).
                booked = max(0, movements_in - (backlog - prev_backlog) - (dead - prev_dead))
                self.booked += booked
                in_rate, out_rate = movements_in / dt, booked / dt
        self.prev = (now, backlog, dead, runner.erp_posts, runner.erp_post_failures)
        erp = partners["erp"]
        erp["postings_ok"], erp["postings_failed"] = posts_ok, posts_failed
        if erp["state"] == "unknown" and (posts_ok or posts_failed):  # no switch to ask
            erp["state"] = "down" if not posts_ok else "flaky" if posts_failed else "up"
        orders = self.latency.summary(now)
        sync_lag = consumers["erp"]["lag_s"]
        return {
            "at": now,
            "ready": True,
            "storage_error": runner.storage_error,
            "orders": orders,
            "inventory": {
                "sync_lag_s": sync_lag,
                "erp_backlog": consumers["erp"]["backlog"],
                "movements_in_per_s": in_rate,
                "movements_out_per_s": out_rate,
                "booked_while_watched": self.booked,
            },
            "consumers": {
                c: {"backlog": v["backlog"], "lag_s": v["lag_s"], "dead_letters": v["dead_letters"]}
                for c, v in consumers.items()
            },
            "dead_letters": self._dead_letters(engine, now),
            "reconcile": self._reconcile(engine, runner, now),
            "partners": partners,
            "event_loop_lag_s": runner.loop_lag_s,
            "background_failures": runner.failures,
            "point": [
                now,
                orders["p50_s"],
                orders["p95_s"],
                sync_lag,
                in_rate,
                out_rate,
                consumers["erp"]["backlog"],
            ],
        }

    def _read_log(self, now: float) -> int | None:
        """Movements logged since the last tick (None on the first read: that one covers the
        window's backlog, not one tick), feeding the order-latency window on the way."""
        if self.db is None:
            return None
        first = self.tail is None
        try:
            if self.tail is None:
                self.tail = LogTail(self.db, now - self.latency.window_s)
            rows = self.tail.read()
        except sqlite3.Error:  # the store is failing: storage_error says so; retry next tick
            log.warning("dashboard: reading the bus log failed", exc_info=True)
            self.close()
            return None
        for typ, at, oid, source, accepted in rows.orders:
            if oid is None:
                continue
            if typ == _PLACED:
                self.latency.placed(oid, at)
            elif source == "release":
                self.latency.release_answered(oid, at, accepted in (1, True))
        return None if first else rows.movements

    @staticmethod
    def _dead_letters(engine: LiveEngine, now: float) -> dict[str, Any]:
        dls = engine.dead_letters()
        newest = sorted(dls, key=lambda d: (-d.last_failure_at, d.id))[:LIST_LIMIT]
        return {
            "total": len(dls),
            "items": [
                {
                    "id": d.id,
                    "consumer": d.consumer,
                    "message_id": d.message_id,
                    "type": None if d.envelope is None else d.envelope.type,
                    "correlation_id": None if d.envelope is None else d.envelope.correlation_id,
                    "cause_type": d.cause_type,
                    "cause_message": d.cause_message[:300],
                    "attempts": d.attempts,
                    "transient": d.transient,
                    "age_s": max(0.0, now - d.first_failure_at),
                    # An ingress dead letter never parsed: it needs a corrected envelope (the API's
                    # requeue with a body), not a button.
                    "requeueable": d.envelope is not None,
                }
                for d in newest
            ],
        }

    def _reconcile(self, engine: LiveEngine, runner: Runner, now: float) -> dict[str, Any]:
        if engine.reconcile_runs != self.reconcile_runs:  # a run since the last tick
            if self.reconcile_runs >= 0 or engine.reconcile_runs > 0:
                self.reconciled_at = now
            self.reconcile_runs = engine.reconcile_runs
        last = engine.last_reconcile
        doc: dict[str, Any] = {
            "runs": engine.reconcile_runs,
            "skipped": runner.reconcile_skipped,
            "interval_s": engine.settings.reconcile_interval_s,
            "seen_s_ago": None if self.reconciled_at is None else now - self.reconciled_at,
            "divergence": None,
            "breaks_total": 0,
            "by_severity": {"low": 0, "medium": 0, "high": 0},
            "breaks": [],
        }
        if last is None:
            return doc
        since = 0.0 if self.reconciled_at is None else now - self.reconciled_at
        d = last.divergence
        doc["divergence"] = {
            "units": d.divergence_units,
            "in_flight_units": d.in_flight_units,
            "unexplained_units": d.unexplained_units,
            "skus_out_of_sync": d.skus_out_of_sync,
        }
        doc["breaks_total"] = len(last.breaks)
        for b in last.breaks:
            doc["by_severity"][b.severity.value] += 1
        rank = {"high": 0, "medium": 1, "low": 2}
        ordered = sorted(
            last.breaks,
            key=lambda b: (rank[b.severity.value], b.explained, -abs(b.residual), b.key),
        )
        doc["breaks"] = [
            {
                "key": b.key,
                "kind": b.kind.value,
                "severity": b.severity.value,
                "erp_qty": b.erp_qty,
                "wms_qty": b.wms_qty,
                "in_flight_units": b.in_flight_units,
                "residual": b.residual,
                "explained": b.explained,
                "age_s": b.age_s + since,
            }
            for b in ordered[:LIST_LIMIT]
        ]
        return doc

    async def _partners(self, runner: Runner) -> dict[str, dict[str, Any]]:
        async def probe(system: PartnerName) -> dict[str, Any]:
            start = time.perf_counter()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    state = await runner.partners.fault(system)
            except PayloadError:  # a real partner has no fault switch: judged by its calls
                return {"state": "unknown", "detail": "no fault switch"}
            except Exception as exc:  # refused, timed out, reset: it is not answering
                return {"state": "down", "detail": f"no answer: {type(exc).__name__}"}
            doc: dict[str, Any] = {
                "state": state.mode,
                "calls": state.calls,
                "refused": state.refused,
                "lost_answers": state.lost_answers,
                "probe_ms": round((time.perf_counter() - start) * 1e3, 1),
                "detail": {
                    "down": "refusing every call",
                    "slow": f"each call waits {state.latency_s:g} s",
                    "flaky": f"{state.failure_rate:.0%} of calls fail",
                }.get(state.mode, "answering"),
            }
            return doc

        found = await asyncio.gather(*(probe(s) for s in PARTNERS))
        return dict(zip(PARTNERS, found, strict=True))


# -- the broadcast ------------------------------------------------------------------------------


class Hub:
    """One ticker, many subscribers: each tick's snapshot is serialized once and every open
    stream sends the same text."""

    def __init__(
        self,
        db: Path | None,
        source: Source,
        tick_s: float = TICK_S,
        linger_s: float = LINGER_S,
        window_s: float = WINDOW_S,
    ) -> None:
        self.db, self.source = db, source
        self.tick_s, self.linger_s, self.window_s = tick_s, linger_s, window_s
        self.latest: str | None = None
        self.snapshot: dict[str, Any] | None = None
        self.history: deque[list[Any]] = deque(maxlen=HISTORY)
        self.subscribers = 0
        self.ticks = 0
        self._tick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard")

    async def _run(self) -> None:
        aggregator = Aggregator(self.db, self.window_s)
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                started = loop.time()
                await self._publish(aggregator)
                if self.subscribers:
                    idle_since = None
                elif idle_since is None:
                    idle_since = started
                elif started - idle_since >= self.linger_s:
                    return  # nobody watching: the service pays nothing for the dashboard
                await asyncio.sleep(max(0.0, self.tick_s - (loop.time() - started)))
        finally:
            aggregator.close()

    async def _publish(self, aggregator: Aggregator) -> None:
        running = self.source()
        try:
            if running is None:
                snap: dict[str, Any] = {"at": time.time(), "ready": False}
            else:
                snap = await aggregator.snapshot(*running)
        except Exception:  # one bad tick must not end the dashboard: say so, go on
            log.exception("dashboard snapshot failed")
            snap = {"at": time.time(), "ready": False, "error": "snapshot failed; see the log"}
        if snap.get("point") is not None:
            self.history.append(snap["point"])
        self.ticks += 1
        snap["seq"] = self.ticks
        self.snapshot = snap
        self.latest = json.dumps(snap, separators=(",", ":"), allow_nan=False)
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def events(self, max_s: float) -> AsyncIterator[str]:
        """Server-sent events for one subscriber: the chart history once, then each tick's
        snapshot, for at most `max_s` (the browser's EventSource reconnects by itself, and a
        server shutting down is not held up by streams that never end)."""
        self.subscribers += 1
        self._ensure_running()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_s
        try:
            yield "retry: 1000\n\n"
            yield f"event: history\ndata: {json.dumps(list(self.history))}\n\n"
            if self.latest is not None:
                yield f"event: snapshot\ndata: {self.latest}\n\n"
            while not self._closed:
                tick = self._tick
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await tick.wait()
                if tick.is_set() and self.latest is not None:
                    yield f"event: snapshot\ndata: {self.latest}\n\n"
        finally:
            self.subscribers -= 1

    async def current(self) -> str:
        """The latest snapshot's JSON, waiting for the first tick if none was taken yet."""
        if self._closed:
            return json.dumps({"at": time.time(), "ready": False})
        self._ensure_running()
        if self.latest is None:
            await self._tick.wait()
        assert self.latest is not None  # set before the tick's event
        return self.latest

    async def close(self) -> None:
        self._closed = True
        self._tick.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
