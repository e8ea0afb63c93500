"""The engine as the live service runs it: on one SQLite file (or a PostgreSQL database),
with a real clock.

The service's part is storage and time only: it opens the bus's `SQLiteStore`, the
idempotency table (a second connection to the same file) and the background WAL checkpointer,
and hands the store and the clock to the core's `Engine`, which does the rest. With
`settings.store` (a PostgreSQL URL) it opens a `PostgresStore` and a `PgIdempotencyStore` in
`settings.store_schema` instead, and no checkpointer.

With `settings.instance_id` as well, several processes share the schema (docs/postgres.md,
"Several instances"): the store opens in shared mode and a `Membership` gives this engine's
bus the partitions whose leases it holds. Any instance accepts what is posted; the owner of
a key's partition delivers it, makes its orders' outbox calls and fires their timers.
`heartbeat` (the runner calls it every third of the lease) renews, claims and gives up
leases and moves that work along; `tail` queues what was published in the owned partitions.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from integration_core.bus import Delivery, Outcome, PostgresStore, SQLiteStore
from integration_core.bus.membership import Membership
from integration_core.bus.partitions import partition_of
from integration_core.bus.postgres import LeaseChange
from integration_core.bus.wal import Checkpointer
from integration_core.clock import Clock, SystemClock
from integration_core.engine import Engine
from integration_core.engine.calls import Call
from integration_core.engine.desk import OUTBOX, TIMERS
from integration_core.engine.ledger import RowKey, add_deltas
from integration_core.envelope import MOVEMENT, Envelope
from integration_core.errors import NotFound, TransientError
from integration_core.service.config import Settings
from integration_core.service.idempotency import IdempotencyStore
from integration_core.service.idempotency_pg import PgIdempotencyStore


class LiveEngine(Engine):
    store: SQLiteStore | PostgresStore
    idempotency: IdempotencyStore | PgIdempotencyStore

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        # Checkpoints on their own thread (when configured): a commit on the loop never
        # copies the log into the database file.
        auto = settings.checkpoint_interval_s == 0
        self.checkpointer: Checkpointer | None = None
        url = settings.postgres_url
        store: SQLiteStore | PostgresStore
        if url is not None:
            # One instance per schema: the state cache's advisory lock refuses a second one;
            # with an instance id, any number share it (and none caches state).
            shared = settings.instance_id is not None
            store = PostgresStore(url, settings.store_schema, cache_state=not shared,
                                  instance=settings.instance_id,
                                  lease_ttl_s=settings.lease_ttl_s)
            try:
                self.idempotency = PgIdempotencyStore(url, settings.store_schema)
            except BaseException:
                store.close()
                raise
        else:
            # The service owns its file: the one writer, so the state cache is sound.
            store = SQLiteStore(settings.db, settings.synchronous, autocheckpoint=auto,
                                cache_state=True)
            self.idempotency = IdempotencyStore(settings.db, settings.synchronous,
                                                autocheckpoint=auto)
        if url is None and not auto:
            self.checkpointer = Checkpointer(settings.db, settings.checkpoint_interval_s,
                                             synchronous=settings.synchronous)
        super().__init__(store, clock if clock is not None else SystemClock(),
                         settings.catalog(), policy=settings.retry_policy(),
                         rng=np.random.default_rng(settings.seed),
                         call_rng=np.random.default_rng(settings.seed + 1),
                         repair_after_s=settings.repair_after_s,
                         deliver_batch=settings.deliver_batch)
        self.membership: Membership | None = None
        if isinstance(store, PostgresStore) and store.instance is not None:
            self.membership = Membership(self.bus, store)
            # The engine loaded every order's timers and open calls: only the owners' count.
            self._drop_orders(lambda oid: True)
            try:
                self.heartbeat(self.clock.now())  # alone, it owns every partition at once
            except BaseException:
                self.idempotency.close()
                store.close()
                raise
        if self.checkpointer is not None:  # last: a failed start leaves no thread behind
            self.checkpointer.start()

    # -- several instances -------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        return self.membership is not None

    def owns(self, key: str) -> bool:
        return self.membership is None or self.membership.store.owns(key)

    @property
    def singleton(self) -> bool:
        """Whether this instance runs the once-per-schema work (the reconciler, pruning)."""
        return self.membership is None or -1 in self.membership.store.owned

    def heartbeat(self, now: float) -> LeaseChange:
        """Renew, claim and give up leases; the orders' outbox calls and timers follow
        their partitions."""
        assert self.membership is not None
        change = self.membership.heartbeat(now)
        gone = change.lost | change.released
        if gone:
            self._drop_orders(self.membership.of(gone))
        claimed = {p for p in change.claimed if p >= 0}
        if claimed:
            self._load_orders(claimed, now)
        return change

    def tail(self, now: float) -> int:
        """Queue what was published in the owned partitions since the last call."""
        return 0 if self.membership is None else self.membership.tail(now)

    def leave(self) -> None:
        if self.membership is not None:
            self.membership.store.leave()

    def _drop_orders(self, orders: Any) -> None:
        desk = self.desk
        desk.open_calls = {c for c in desk.open_calls if not orders(c.rsplit("/", 1)[0])}
        desk.new_calls = [c for c in desk.new_calls if not orders(c.rsplit("/", 1)[0])]
        desk.timers = [t for t in desk.timers if not orders(t[1])]
        heapq.heapify(desk.timers)

    def _load_orders(self, partitions: set[int], now: float) -> None:
        """The open outbox calls and pending timers of orders in these partitions (newly
        owned): made and fired here from now on (a call made twice around a takeover is
        answered once: its reply's message id is the call's)."""
        assert self.membership is not None
        n = self.membership.store.partitions
        calls = sorted(k for k, v in self.store.state(OUTBOX).items()
                       if v and not v.get("done")
                       and partition_of(str(v["order_id"]), n) in partitions)
        self.desk.open_calls.update(calls)
        self.calls.add(calls, now)
        for oid, timer in self.store.state(TIMERS).items():
            if timer and partition_of(oid, n) in partitions:
                heapq.heappush(self.desk.timers, (timer[1], oid, timer[0]))

    def calls_due(self, now: float) -> list[Call]:
        """The engine's (a store failure half-way loses no call) and, shared, the calls of
        orders owned here only."""
        out = []
        for call in super().calls_due(now):
            if self.owns(str(call.record["order_id"])):
                out.append(call)
            else:  # its order's partition moved: the new owner makes it
                self.desk.open_calls.discard(call.call_id)
        return out

    def settle(self, deliveries: Sequence[Delivery], error: Exception | None,
               now: float) -> list[Outcome]:
        """As the engine's, leaving out deliveries of partitions given up meanwhile (their
        new owner delivers them again; the ERP books a message id once)."""
        if self.membership is not None:
            deliveries = [d for d in deliveries if self.bus.holds(d)]
            if not deliveries:
                return []
        return super().settle(deliveries, error, now)

    def snapshot(self, sku: str | None = None) -> tuple[dict[RowKey, int], list[Envelope]]:
        """Shared: the WMS view and the movements not yet applied to it or not acknowledged
        by the ERP come from the database, in one snapshot, whichever instance owns them."""
        if not isinstance(self.store, PostgresStore) or self.membership is None:
            return super().snapshot(sku)
        store, types = self.store, frozenset({MOVEMENT})
        with store.snapshot():
            wms = self.wms.table(store) if sku is None else self.wms.rows(store, sku)
            queued = [e.envelope for e in store.unfinished_in("wms", types, self._start("wms"))]
            pending = [e.envelope for e in store.unfinished_in("erp", types, self._start("erp"))]
        if sku is not None:
            pending = [e for e in pending if e.payload.get("sku") == sku]
            return add_deltas(wms, queued, sku), pending
        return add_deltas(wms, queued), pending

    def _start(self, consumer: str) -> int:
        if self.membership is not None:
            return self.membership.start(consumer)
        saved = self.store.subscription(consumer)
        return 1 if saved is None else saved[1]

    def advance_starts(self) -> None:
        """Save where a restart (one instance) or a takeover (several) would start scanning
        the log for what is not done yet."""
        if self.membership is None:
            self.bus.advance_starts()
        else:
            self.membership.advance()

    def requeue(self, dead_letter_id: str, fixed: Envelope | None = None) -> None:
        if self.membership is not None:
            dl = next((d for d in self.bus.dead_letters() if d.id == dead_letter_id), None)
            if dl is None:
                raise NotFound(f"no dead letter {dead_letter_id!r}")
            key = dl.envelope.key if dl.envelope is not None else None
            if key is not None and not self.owns(key):
                raise TransientError(
                    f"dead letter {dead_letter_id!r}: its partition "
                    f"{self.membership.partition(key)} is owned by another instance; "
                    "requeue it there (GET /v1/status says which partitions each owns)")
            super().requeue(dead_letter_id, fixed)
            if key is not None:  # no longer done: a takeover must scan from before it again
                self.membership.store.reset_partition_start(dl.consumer,
                                                            self.membership.partition(key))
            return
        super().requeue(dead_letter_id, fixed)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.idempotency.close()
        self.store.close()  # the last connection: SQLite checkpoints and removes the log

    def status(self) -> dict[str, Any]:
        doc = super().status()
        if self.membership is not None:
            store = self.membership.store
            unowned = store.unowned()
            behind = store.last_position() - store.tailed
            doc["instance"] = {
                "id": store.instance, "partitions": store.partitions,
                "owned": sorted(p for p in store.owned if p >= 0),
                "singleton": self.singleton, "unowned_partitions": unowned,
                "tail_behind": behind, "takeovers": self.membership.takeovers,
                "recovered": self.membership.recovered, "fenced": store.fenced}
            # Drained here means: this instance's partitions, and nothing unread or unowned.
            doc["drained"] = doc["drained"] and unowned == 0 and behind <= 0
        doc["wal_checkpoints"] = (None if self.checkpointer is None
                                  else asdict(self.checkpointer.stats))
        return doc
