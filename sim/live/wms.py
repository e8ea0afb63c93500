"""The live WMS twin: accepts order releases, once per order id, over a SQLite store of its
own. (The WMS's movement stream is the load test's job: locust posts it to the core.)"""

from __future__ import annotations

from pathlib import Path

from integration_core.bus import SQLiteStore, Tx
from integration_core.engine.partners import Release, ReleaseAnswer

RELEASES = "wms_releases"


class LiveWms:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.store = SQLiteStore(path, synchronous)

    def close(self) -> None:
        self.store.close()

    def release(self, body: Release) -> ReleaseAnswer:
        def record(tx: Tx) -> None:
            tx.put(RELEASES, body.order_id, body.model_dump(mode="json"))
        self.store.apply("wms-releases", body.order_id, record)  # a repeat is a no-op
        return ReleaseAnswer(accepted=True)

    def released(self, order_id: str) -> bool:
        return self.store.get_state(RELEASES, order_id) is not None
