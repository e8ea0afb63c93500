"""Master data domain: the ERP (system of record) changes items; the WMS must follow.

Each change bumps an item's version in the ERP; the WMS holds the version it last received.
By pattern:
- direct: the ERP calls the WMS for every change, with a timeout and a few retries, then
  gives up (the WMS keeps the stale item until the item changes again);
- orchestrated: the change is queued on the core's bus and delivered with its retry policy;
- event_driven: the same, and dead letters are redriven;
- hybrid: event-triggered as event_driven, plus a scheduled full sync that pushes every stale
  item in one batch call (the reference article's "scheduled plus event-triggered").
Measured: `items_out_of_sync` over time and the `master_data_sync` latency (change in the ERP
-> the WMS has it).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import numpy as np

from integration_core.bus import Delivery
from integration_core.envelope import MESSAGE_TYPES, trusted_envelope
from integration_core.errors import TransientError
from sim.calls import call, direct_call
from sim.columns import Column
from sim.core import when
from sim.landscape import Landscape
from sim.scenario import Pattern
from sim.systems.endpoint import Status

CONSUMER = "wms-items"
ITEM = "item.upserted"


class MasterDataFlow:
    def __init__(self, twin: Landscape) -> None:
        self.t = twin
        sc = twin.scenario
        self.cfg = sc.master_data
        declared = sc.patterns.master_data
        self.pattern = sc.patterns.resolved("master_data")
        self.scheduled = declared is Pattern.HYBRID
        n = sc.catalog.skus
        self.erp_version = np.zeros(n, dtype=np.int64)
        self.wms_version = np.zeros(n, dtype=np.int64)
        self.changed_at = np.zeros(n, dtype=np.float64)
        self.lat = Column(np.float64)
        self.lat_at = Column(np.float64)
        self.changes = 0
        self.gave_up = 0
        self.arrived = 0
        """Items that reached a site with an item master of its own for the first time."""
        self._rng = twin.streams.get("master-data")
        self.site_version = {w: np.where(known, 0, -1).astype(np.int64)
                             for w, known in twin.own_items.items()}
        """Per site with its own item master: the version it holds (-1: it has not the item)."""
        if self.pattern is not Pattern.DIRECT:
            twin.core.subscribe(CONSUMER, [ITEM], self._deliver)
            for w in self.site_version:
                twin.core.subscribe(f"{CONSUMER}@{twin.warehouse_ids[w]}", [ITEM],
                                    partial(self._deliver_site, w))

    def start(self) -> None:
        env = self.t.env
        if self.cfg.changes_per_hour > 0:
            env.process(self._changes())
        if self.scheduled:
            env.process(self._full_sync())

    @property
    def out_of_sync(self) -> int:
        """Item records out of sync: the shared master's, and each own master's."""
        return int(np.count_nonzero(self.wms_version < self.erp_version)) + sum(
            int(np.count_nonzero(v < self.erp_version)) for v in self.site_version.values())

    # -- ERP side ----------------------------------------------------------------------------

    def _changes(self) -> Generator[Any, Any, None]:
        env, rng, end = self.t.env, self._rng, self.t.scenario.duration_s
        gap = 3600.0 / self.cfg.changes_per_hour
        while True:
            yield env.timeout(float(rng.exponential(gap)))
            if env.now >= end:
                return
            sku = int(rng.integers(len(self.erp_version)))
            self.erp_version[sku] += 1
            self.changed_at[sku] = env.now
            self.changes += 1
            self._propagate(sku, int(self.erp_version[sku]))

    def _propagate(self, sku: int, version: int) -> None:
        t = self.t
        if self.pattern is Pattern.DIRECT:
            self._direct(sku, version)
            return
        mid = f"item:{sku}:{version}"
        t.core.publish(trusted_envelope(
            message_id=mid, type=ITEM, schema_version=MESSAGE_TYPES[ITEM].version, source="erp",
            occurred_at=when(t.env.now), correlation_id=mid,
            causation_id=None, key=f"SKU-{sku:05d}",
            payload={"sku": f"SKU-{sku:05d}", "version": version},
        ))

    def _direct(self, sku: int, version: int) -> None:
        t = self.t

        def final(status: Status, _v: object) -> None:
            if status is not Status.OK:
                self.gave_up += 1

        direct_call(t.env, t.links["wms_erp"], t.wms_apis[0],
                    lambda: self._wms_apply(sku, version), t.scenario.direct, final,
                    t.count_call("wms"))
        for w in self.site_version:  # the ERP calls each site with a master of its own
            direct_call(t.env, t.links["wms_erp"], t.wms_apis[w],
                        partial(self._site_apply, w, sku, version), t.scenario.direct, final,
                        t.count_call("wms"))

    def _deliver_site(self, w: int, d: Delivery, ack: Callable[[], None],
                      nack: Callable[[BaseException], None]) -> None:
        """The core's delivery of an item to a site with its own item master."""
        p, t = d.envelope.payload, self.t

        def result(status: Status, _v: object) -> None:
            ack() if status is Status.OK else nack(TransientError(f"WMS {status.value}"))

        t.api_calls["wms"] += 1
        link = t.links["wms_core"]
        call(t.env, link, t.wms_apis[w], link,
             partial(self._site_apply, w, int(p["sku"][4:]), int(p["version"])),
             t.scenario.bus.call_timeout_s, result)

    def _site_apply(self, w: int, sku: int, version: int) -> bool:
        """A site's own item API: keeps the newest version; the first one to arrive tells the
        core the site has the item, which replays the movements that waited for it."""
        held = self.site_version[w]
        if version > held[sku]:
            new = held[sku] < 0
            held[sku] = version
            if new:
                self.arrived += 1
                self.t.core.item_arrived(f"SKU-{sku:05d}", self.t.warehouse_ids[w])
        return True

    def _deliver(self, d: Delivery, ack: Callable[[], None],
                 nack: Callable[[BaseException], None]) -> None:
        p = d.envelope.payload

        def result(status: Status, _v: object) -> None:
            ack() if status is Status.OK else nack(TransientError(f"WMS {status.value}"))

        self._call(int(p["sku"][4:]), int(p["version"]), self.t.scenario.bus.call_timeout_s,
                   result)

    def _call(self, sku: int, version: int, timeout_s: float,
              result: Callable[[Status, Any], None]) -> None:
        t = self.t
        t.api_calls["wms"] += 1
        link = t.links["wms_core"]
        # Items are global: every warehouse's WMS shares one item master here (the first's).
        call(t.env, link, t.wms_apis[0], link, lambda: self._wms_apply(sku, version),
             timeout_s, result)

    def _wms_apply(self, sku: int, version: int) -> bool:
        """The WMS's item API: keeps the newest version (an old one arriving late is ignored)."""
        if version > self.wms_version[sku]:
            self.wms_version[sku] = version
            if version == self.erp_version[sku]:
                now = self.t.env.now
                self.lat.append(now - float(self.changed_at[sku]))
                self.lat_at.append(now)
        return True

    def _full_sync(self) -> Generator[Any, Any, None]:
        """Scheduled: every `full_sync_h`, push every stale item in one batch call."""
        t = self.t
        while True:
            yield t.env.timeout(self.cfg.full_sync_h * 3600)
            for w, held in self.site_version.items():
                self._full_sync_site(w, held)
            stale = np.flatnonzero(self.wms_version < self.erp_version)
            if not len(stale):
                continue
            versions = self.erp_version[stale].copy()

            def push(stale: np.ndarray = stale, versions: np.ndarray = versions) -> bool:
                for sku, v in zip(stale.tolist(), versions.tolist(), strict=True):
                    self._wms_apply(sku, v)
                return True

            t.api_calls["wms"] += 1
            link = t.links["wms_core"]
            call(t.env, link, t.wms_apis[0], link, push, t.scenario.bus.call_timeout_s,
                 lambda status, value: None)  # a failed batch waits for the next schedule

    def _full_sync_site(self, w: int, held: np.ndarray) -> None:
        """The scheduled full sync to a site with its own master: every item it lacks or holds
        stale, in one batch call."""
        t = self.t
        stale = np.flatnonzero(held < self.erp_version)
        if not len(stale):
            return
        versions = self.erp_version[stale].copy()

        def push() -> bool:
            for sku, v in zip(stale.tolist(), versions.tolist(), strict=True):
                self._site_apply(w, sku, v)
            return True

        t.api_calls["wms"] += 1
        link = t.links["wms_core"]
        call(t.env, link, t.wms_apis[w], link, push, t.scenario.bus.call_timeout_s,
             lambda status, value: None)

    def latency(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lat.values.copy(), self.lat_at.values.copy()
