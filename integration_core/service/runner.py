"""Background tasks that give the engine time: the bus's delivery loop, the ERP posting
workers, the outbox caller, the saga's timers, the reconciler and the pruning of old
idempotency records.

The delivery loop does what the simulator's bridge does in virtual time: handle what is due,
then sleep until `next_due_at()` or until a publish wakes it. After a wake-up it waits
`coalesce_s` so one store transaction carries several messages.

The ERP workers post due movements to the ERP in batches over HTTP and settle them. A reading
of the ERP (reconciliation, an inventory view) *fences* them: no posting is on the wire while
the WMS view, the unacknowledged movements and the ERP's stock are taken, so the three describe
one instant and a movement is never counted both booked and in flight, or neither.

With several instances sharing a PostgreSQL schema (`LiveEngine.shared`), a lease task
heartbeats every third of the lease's time to live (at once after a `Fenced` write), the
delivery loop reads the log's tail before each round and polls it at least every
`TAIL_POLL_S` (another instance's publish does not wake it), the reconciler and the pruning
run on the instance holding the singletons' lease only, and the start positions are saved per
partition (one instance's queues say nothing of another's partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from integration_core.bus.postgres import Fenced, WriteConflict
from integration_core.engine.calls import Call
from integration_core.engine.ledger import RowKey
from integration_core.engine.partners import Stock
from integration_core.envelope import Envelope
from integration_core.errors import InteropError, PayloadError, TransientError
from integration_core.reconcile import ReconcileResult
from integration_core.service.live import LiveEngine
from integration_core.service.partners import Partners
from integration_core.service.sync_lag import SyncLag

log = logging.getLogger("interop_twin.service")
IDEMPOTENCY_TTL_S = 24 * 3600.0
ADVANCE_EVERY_S = 10.0
"""How often the consumers' start positions are saved, so a restart scans only the log written
since (and whatever was still unfinished then) instead of all of it."""
TAIL_POLL_S = 0.02
"""Shared: longest the delivery loop waits before reading the log's tail again."""


class Runner:
    def __init__(self, engine: LiveEngine, partners: Partners) -> None:
        self.engine = engine
        self.partners = partners
        self.settings = engine.settings
        self._wake = asyncio.Event()
        self._erp_wake = asyncio.Event()
        self._calls_wake = asyncio.Event()
        self._open = asyncio.Event()  # cleared while a reading of the ERP fences postings
        self._open.set()
        self._fences = 0
        self._posting = 0  # ERP posting calls on the wire
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._call_slots = asyncio.Semaphore(engine.settings.call_concurrency)
        self._call_tasks: set[asyncio.Task[None]] = set()
        self.erp_posts = self.erp_post_failures = self.call_failures = 0
        self.sync_lag = SyncLag()
        """Occurred -> booked in the ERP, per movement this process posted."""
        self.reconcile_skipped = 0
        self.loop_lag_s = 0.0
        """Worst event-loop lag over the last few seconds: how long a ready request may wait
        for the loop (saturation shows here first)."""
        self._tasks: list[asyncio.Task[None]] = []
        self.failures = 0
        """Background steps that raised (the step is retried; the count is in /metrics)."""
        self.storage_error: str | None = None
        """The last store failure while it lasts: cleared by the next background write that
        commits (an outage the service rides out; /readyz reports it meanwhile)."""
        self._stopping = False
        self._lease_wake = asyncio.Event()
        self.lease_failures = 0
        self.write_conflicts = 0

    def wake(self) -> None:
        self._wake.set()
        self._erp_wake.set()

    def start(self) -> None:
        self.engine.on_publish = self.wake
        self._spawn(self._deliver(), "deliver")
        for i in range(self.settings.erp_concurrency):
            self._spawn(self._erp_worker(), f"erp-{i}")
        self._spawn(self._calls(), "calls")
        self._spawn(self._watch_loop(), "loop-lag")
        self._spawn(self._timers(), "timers")
        self._spawn(self._reconcile(), "reconcile")
        if self.engine.shared:
            self._spawn(self._leases(), "leases")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def stop(self) -> None:
        self._stopping = True  # a loop that missed its cancellation still ends
        tasks = [*self._tasks, *self._call_tasks]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        if self.engine.shared:
            try:  # the others take over at their next heartbeat, not after the lease
                self.engine.advance_starts()
                self.engine.leave()
            except Exception:
                self._failed("giving up the leases")
            return
        try:  # a clean stop leaves nothing for the next start to scan
            self.engine.bus.advance_starts()
        except Exception:
            self._failed("advancing the consumers' starts")

    def _failed(self, what: str) -> None:
        self.failures += 1
        log.exception("background %s failed; retrying", what)

    def _store_failed(self, what: str, exc: Exception) -> None:
        if isinstance(exc, Fenced):  # not an outage: a lease was lost; re-read them now
            self._lease_wake.set()
            log.warning("%s fenced: %s", what, exc)
            return
        if isinstance(exc, WriteConflict):  # not an outage: another instance wrote first
            self.write_conflicts += 1
            log.info("%s: %s; retrying", what, exc)
            return
        self.storage_error = f"{what}: {type(exc).__name__}: {exc}"
        self._failed(what)

    async def _leases(self) -> None:
        engine, every = self.engine, self.settings.lease_ttl_s / 3
        while not self._stopping:
            await self._sleep(self._lease_wake, every)
            self._lease_wake.clear()
            try:
                change = engine.heartbeat(engine.clock.now())
            except Exception:
                self.lease_failures += 1
                self._failed("lease heartbeat")
                continue
            if change.claimed or change.lost or change.released:
                log.info("leases: +%s -%s released %s (%d live)", sorted(change.claimed),
                         sorted(change.lost), sorted(change.released), change.live)
                self.wake()
                self._calls_wake.set()

    async def _deliver(self) -> None:
        engine, clock = self.engine, self.engine.clock
        idle, coalesce = self.settings.idle_poll_s, self.settings.coalesce_s
        if engine.shared:
            idle = min(idle, TAIL_POLL_S)
        while not self._stopping:
            self._wake.clear()  # before the pump: a publish during it sets the event again
            try:
                if engine.shared and engine.tail(clock.now()):
                    self._erp_wake.set()
                engine.pump(clock.now())
                self.storage_error = None
                if engine.has_new_calls:
                    self._calls_wake.set()
            except Exception as exc:  # e.g. disk full: keep the loop alive, report, retry
                # The bus settles deliveries only after their transaction committed: those of
                # the failed one are due again, and the next pump that commits recovers.
                self._store_failed("delivery", exc)
                await asyncio.sleep(idle)
                continue
            nxt = engine.next_due_at()
            now = clock.now()
            if nxt is not None and nxt <= now:
                await asyncio.sleep(0)  # more is due: let requests in between transactions
                continue
            timeout = idle if nxt is None else min(idle, nxt - now)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that races with the wake-up, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            if coalesce:
                await asyncio.sleep(coalesce)

    async def _watch_loop(self, every: float = 0.05, window: int = 100) -> None:
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        while not self._stopping:
            t = loop.time()
            await asyncio.sleep(every)
            lags.append(max(0.0, loop.time() - t - every))
            del lags[:-window]
            self.loop_lag_s = max(lags)

    async def _sleep(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()

    # -- the ERP -----------------------------------------------------------------------------

    async def _erp_worker(self) -> None:
        engine, clock, batch = self.engine, self.engine.clock, self.settings.erp_batch
        while not self._stopping:
            while not self._open.is_set():
                await self._open.wait()
            self._erp_wake.clear()
            deliveries = engine.erp_due(clock.now(), batch)
            if not deliveries:
                nxt, now = engine.next_due_at(), clock.now()
                idle = self.settings.idle_poll_s
                await self._sleep(self._erp_wake, idle if nxt is None else min(idle, nxt - now))
                continue
            self._posting += 1
            self._quiet.clear()
            try:
                error: Exception | None = None
                try:
                    await self.partners.post_movements([engine.posting(d) for d in deliveries])
                    self.erp_posts += 1
                except InteropError as exc:
                    error = exc
                except Exception as exc:  # a bug in an answer: retry, and say so in the log
                    log.exception("posting to the ERP failed unexpectedly")
                    error = TransientError(f"erp: {type(exc).__name__}: {exc}")
                if error is not None:
                    self.erp_post_failures += 1
                try:
                    now = clock.now()
                    engine.settle(deliveries, error, now)
                    if error is None:
                        self.sync_lag.observe([now - d.envelope.occurred_at.timestamp()
                                               for d in deliveries])
                except Exception as exc:  # the store failed: these are due again (the ERP
                    # books a message id once, so posting them again is harmless)
                    self._store_failed("ERP settlement", exc)
                    await asyncio.sleep(self.settings.idle_poll_s)
            finally:
                self._posting -= 1
                if self._posting == 0:
                    self._quiet.set()

    async def erp_view(self, sku: str | None = None
                       ) -> tuple[dict[RowKey, int], list[Envelope], Stock]:
        """The WMS view, the unacknowledged movements and the ERP's stock at one instant.
        Raises `TransientError` when the ERP does not answer."""
        self._fences += 1
        self._open.clear()
        try:
            while self._posting:
                await self._quiet.wait()
            wms, pending = self.engine.snapshot(sku)
            stock = await self.partners.stock(sku, [e.payload["movement_id"] for e in pending])
        finally:
            self._fences -= 1
            if self._fences == 0:
                self._open.set()
        return wms, pending, stock

    async def reconcile(self) -> ReconcileResult:
        """A run; its ripe ERP adjustments are posted (a failure to post leaves them ripe for
        the next run: the break is still there)."""
        wms, pending, stock = await self.erp_view()
        result = self.engine.reconcile(wms, pending, stock)
        postings = self.engine.repair_postings()
        if postings:
            await self.partners.post_movements(postings)
            self.engine.repairs_posted += len(postings)
        return result

    async def inventory(self, sku: str) -> dict[str, Any]:
        self.engine.check_sku(sku)
        wms, pending, stock = await self.erp_view(sku)
        return self.engine.inventory(sku, wms, pending, stock)

    # -- the outbox --------------------------------------------------------------------------

    async def _calls(self) -> None:
        """Make the order desk's outbox calls the engine says are due (it keeps their retry
        schedule), a bounded number at a time."""
        engine, clock = self.engine, self.engine.clock
        while not self._stopping:
            self._calls_wake.clear()
            try:
                due = engine.calls_due(clock.now())
            except Exception as exc:  # the store (an outage): the calls are due again later
                self._store_failed("outbox", exc)
                await asyncio.sleep(self.settings.idle_poll_s)
                continue
            for call in due:
                await self._call_slots.acquire()
                task = asyncio.get_running_loop().create_task(self._call(call))
                self._call_tasks.add(task)
                task.add_done_callback(self._call_tasks.discard)
            nxt, idle = engine.calls.next_at(), self.settings.idle_poll_s
            wait = idle if nxt is None else min(idle, nxt - clock.now())
            await self._sleep(self._calls_wake, wait)

    async def _call(self, call: Call) -> None:
        engine = self.engine
        try:
            try:
                answer = await self.partners.perform(call.op, call.body)
            except PayloadError as exc:  # refused for good: the saga hears a refusal
                engine.answer(call, None, str(exc))
                return
            except Exception as exc:  # down, slow, flaky or a bug: try again later
                self.call_failures += 1
                if not isinstance(exc, InteropError):
                    log.exception("outbox call %s failed unexpectedly", call.call_id)
                engine.call_failed(call, engine.clock.now())
                return
            engine.answer(call, answer, None)
        except Exception:  # publishing the answer failed (the store): make the call again
            self._failed("outbox reply")
            engine.call_failed(call, engine.clock.now(), self.settings.idle_poll_s)
        finally:
            self._call_slots.release()
            self._calls_wake.set()

    # -- timers and reconciliation -----------------------------------------------------------

    async def _timers(self) -> None:
        clock = self.engine.clock
        advanced = clock.now()
        while not self._stopping:
            await asyncio.sleep(min(1.0, self.settings.idle_poll_s))
            try:
                self.engine.fire_timers(clock.now())
                if clock.now() - advanced >= ADVANCE_EVERY_S:
                    advanced = clock.now()
                    self.engine.advance_starts()
            except Exception:
                self._failed("timers")

    async def _reconcile(self) -> None:
        every = self.settings.reconcile_interval_s
        while not self._stopping:
            await asyncio.sleep(every)
            if not self.engine.singleton:
                continue
            try:
                self.engine.idempotency.prune(self.engine.clock.now() - IDEMPOTENCY_TTL_S)
                await self.reconcile()
            except TransientError as exc:  # the ERP is away: the next interval tries again
                self.reconcile_skipped += 1
                log.warning("reconciliation skipped: %s", exc)
            except Exception:
                self._failed("reconcile")
