"""Background tasks that give the engine time: the bus's delivery loop, the saga's timers, the
reconciler and the pruning of old idempotency records.

The delivery loop does what the simulator's bridge does in virtual time: handle what is due,
then sleep until `next_due_at()` or until a publish wakes it. After a wake-up it waits
`coalesce_s` so one store transaction carries several messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from integration_core.service.engine import Engine

log = logging.getLogger("interop_twin.service")
IDEMPOTENCY_TTL_S = 24 * 3600.0


class Runner:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.failures = 0
        """Background steps that raised (the step is retried; the count is in /metrics)."""
        self.healthy = True
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self.engine.on_publish = self.wake
        self._spawn(self._deliver(), "deliver")
        self._spawn(self._timers(), "timers")
        self._spawn(self._reconcile(), "reconcile")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def stop(self) -> None:
        self._stopping = True  # a loop that missed its cancellation still ends
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()

    def _failed(self, what: str) -> None:
        self.failures += 1
        log.exception("background %s failed; retrying", what)

    async def _deliver(self) -> None:
        engine, clock = self.engine, self.engine.clock
        idle, coalesce = self.settings.idle_poll_s, self.settings.coalesce_s
        while not self._stopping:
            self._wake.clear()  # before the pump: a publish during it sets the event again
            try:
                engine.pump(clock.now())
            except Exception:  # e.g. disk full: keep the loop alive, report, retry
                # Deliveries taken by the failed transaction stay marked in flight in the
                # bus's memory: /readyz reports not ready until a restart recovers them.
                self.healthy = False
                self._failed("delivery")
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

    async def _timers(self) -> None:
        while not self._stopping:
            await asyncio.sleep(min(1.0, self.settings.idle_poll_s))
            try:
                self.engine.fire_timers(self.engine.clock.now())
            except Exception:
                self._failed("timers")

    async def _reconcile(self) -> None:
        every = self.settings.reconcile_interval_s
        while not self._stopping:
            await asyncio.sleep(every)
            try:
                now = self.engine.clock.now()
                self.engine.reconcile(now)
                self.engine.idempotency.prune(now - IDEMPOTENCY_TTL_S)
            except Exception:
                self._failed("reconcile")
