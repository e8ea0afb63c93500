"""Runs the core's level-triggered `Reconciler` on an interval in simulated time.

It sees what the integration can see: both systems' balances, the movements in flight on the
bus, the bus's dead letters; not the simulator's ground truth. Which repairs are ripe is the
core's rule (`RepairGate`: the break persisted `repair_after_min` unchanged); this module only
carries them out through the simulated ERP.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from integration_core.models import Movement
from integration_core.reconcile import (
    AdjustmentRepair,
    BalanceTable,
    Keyspace,
    Reconciler,
    RepairGate,
)
from sim.calls import call
from sim.core import START
from sim.inventory import CONSUMER
from sim.landscape import Landscape
from sim.systems.endpoint import Status


class SimReconciler:
    def __init__(self, twin: Landscape) -> None:
        self.t = twin
        sc = twin.scenario
        self.every_s = sc.reconciler.interval_min * 60
        self.repair_after_s = sc.reconciler.repair_after_min * 60
        self.core = Reconciler(system_of_record=sc.system_of_record.inventory, epoch=START)
        self.keys = Keyspace()
        n = sc.catalog.skus
        sku_codes = self.keys.skus.encode([f"SKU-{i:05d}" for i in range(n)])
        loc_codes = self.keys.locations.encode(twin.warehouse_ids)
        self.sku = np.tile(sku_codes, len(twin.warehouse_ids))
        self.loc = np.repeat(loc_codes, n)
        self.lot = np.full(twin.n_rows, self.keys.lots.code(None), dtype=np.int64)
        self.gate = RepairGate(self.repair_after_s)
        self.pending: dict[str, Movement] = {}
        """Adjustments sent and not yet confirmed: in flight for the next runs."""
        self.runs = 0
        self.skipped = 0
        self.breaks_seen = 0
        self.adjustments_sent = 0

    def _table(self, on_hand: np.ndarray) -> BalanceTable:
        return BalanceTable(self.keys, self.sku, self.loc, self.lot, on_hand.astype(np.int64))

    def process(self) -> Generator[Any, Any, None]:
        env = self.t.env
        while True:
            yield env.timeout(self.every_s)
            t = self.t
            # It reads both systems through their APIs: if either is down, no run (a WMS that
            # cannot answer also cannot post what happened meanwhile).
            if t.core.up and t.erp_api.available() and all(a.available() for a in t.wms_apis):
                self.run_once()
            else:
                self.skipped += 1

    def run_once(self) -> None:
        t = self.t
        bus = t.core.bus
        now = t.env.now
        self.runs += 1
        in_flight = [_movement(e.payload) for e in bus.in_flight(CONSUMER)]
        in_flight += [m for m in self.pending.values() if m.quantity_base]
        result = self.core.run(
            self._table(t.erp.on_hand), self._table(t.wms.on_hand), now,
            in_flight=in_flight, run_id=str(self.runs),
        )
        self.breaks_seen += sum(not b.explained for b in result.breaks)
        for repair in self.gate.ripe(result, now):
            if isinstance(repair, AdjustmentRepair):
                self._adjust(repair)

    def _adjust(self, repair: AdjustmentRepair) -> None:
        t = self.t
        m = repair.movement
        row = t.row_of(m.sku, m.location)
        delta = m.delta
        self.pending[m.movement_id] = m
        self.adjustments_sent += 1

        def result(status: Status, _value: object) -> None:
            # Confirmed or not, the next run sees the balances as they are now.
            self.pending.pop(m.movement_id, None)

        if repair.target == "erp":
            t.api_calls["erp"] += 1
            link = t.links["core_erp"]
            call(t.env, link, t.erp_api, link, lambda: t.erp.adjust(row, delta),
                 t.scenario.bus.call_timeout_s, result)
        else:
            t.wms.on_hand[row] += delta
            result(Status.OK, None)

    def summary(self) -> dict[str, int]:
        return {"runs": self.runs, "skipped_partner_down": self.skipped,
                "unexplained_breaks_seen": self.breaks_seen,
                "adjustments_sent": self.adjustments_sent}


def _movement(payload: dict[str, Any]) -> Movement:
    # The payload was validated when the ERP consumer first handled it, or is the core's own.
    return Movement.model_construct(**{**payload, "quantity_base": int(payload["quantity_base"])})
