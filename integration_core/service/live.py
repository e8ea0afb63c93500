"""The engine as the live service runs it: on one SQLite file (or a PostgreSQL database),
with a real clock.

The service's part is storage and time only: it opens the bus's `SQLiteStore`, the
idempotency table (a second connection to the same file) and the background WAL checkpointer,
and hands the store and the clock to the core's `Engine`, which does the rest. With
`settings.store` (a PostgreSQL URL) it opens a `PostgresStore` and a `PgIdempotencyStore` in
`settings.store_schema` instead, and no checkpointer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from integration_core.bus import PostgresStore, SQLiteStore
from integration_core.bus.wal import Checkpointer
from integration_core.clock import Clock, SystemClock
from integration_core.engine import Engine
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
            # One instance per schema: the state cache's advisory lock refuses a second one.
            store = PostgresStore(url, settings.store_schema, cache_state=True)
            try:
                self.idempotency = PgIdempotencyStore(url, settings.store_schema)
            except BaseException:
                store.close()
                raise
        else:
            store = SQLiteStore(settings.db, settings.synchronous, autocheckpoint=auto)
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
        if self.checkpointer is not None:  # last: a failed start leaves no thread behind
            self.checkpointer.start()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.close()
        self.idempotency.close()
        self.store.close()  # the last connection: SQLite checkpoints and removes the log

    def status(self) -> dict[str, Any]:
        doc = super().status()
        doc["wal_checkpoints"] = (None if self.checkpointer is None
                                  else asdict(self.checkpointer.stats))
        return doc
