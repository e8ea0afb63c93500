"""The live WMS twin: accepts order releases, once per order id, and their cancellations,
over a SQLite store of its own. (The WMS's movement stream is the load test's job: locust
posts it to the core; a return's restock is a ``return`` movement in that stream.)

This twin has no picking: a released order can always be cancelled. A release that comes
after its order's cancellation (the two calls crossed) is refused, so the shelf never gets
an order the customer took back.
"""

from __future__ import annotations

from pathlib import Path

from integration_core.bus import SQLiteStore, Tx
from integration_core.engine.partners import CancelAnswer, CancelRelease, Release, ReleaseAnswer
from sim.live.call_log import served

RELEASES = "wms_releases"
CANCELLED = "wms_cancelled"


class LiveWms:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.store = SQLiteStore(path, synchronous)

    def close(self) -> None:
        self.store.close()

    @served("wms", "release")
    def release(self, body: Release) -> ReleaseAnswer:
        if self.cancelled(body.order_id):
            return ReleaseAnswer(accepted=False, reason="cancelled before the release came")

        def record(tx: Tx) -> None:
            tx.put(RELEASES, body.order_id, body.model_dump(mode="json"))
        self.store.apply("wms-releases", body.order_id, record)  # a repeat is a no-op
        return ReleaseAnswer(accepted=True)

    @served("wms", "cancel_release")
    def cancel_release(self, body: CancelRelease) -> CancelAnswer:
        def record(tx: Tx) -> None:
            tx.put(CANCELLED, body.order_id, body.model_dump(mode="json"))
        self.store.apply("wms-cancels", body.order_id, record)  # a repeat is a no-op
        return CancelAnswer(cancelled=True)

    def released(self, order_id: str) -> bool:
        return self.store.get_state(RELEASES, order_id) is not None

    def cancelled(self, order_id: str) -> bool:
        return self.store.get_state(CANCELLED, order_id) is not None
