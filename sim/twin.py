"""The digital twin: builds the systems, links, core and faults of a scenario and runs them.

`Twin(scenario).run()` returns a `RunResult` of flat records (numpy columns and counters);
`sim.metrics` turns it into KPIs and DataFrames, `sim.report` into files.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from integration_core.engine import MOVEMENT
from integration_core.engine.redrive import When, awaiting_us
from sim.columns import Column
from sim.faults import FaultPlan
from sim.inventory import InventoryFlow
from sim.kernel import at
from sim.landscape import Landscape
from sim.master_data import MasterDataFlow
from sim.orders import OrderFlow
from sim.partners import POST
from sim.reconcile import SimReconciler
from sim.scenario import Pattern, Scenario, spans
from sim.systems.endpoint import Status
from sim.systems.wms import movement_stream

SERIES = ("t", "divergence_units", "in_flight_units", "unexplained_units", "skus_out_of_sync",
          "items_out_of_sync",
          "bus_backlog", "bus_lag_s", "erp_queue", "wms_queue")


@dataclass
class RunResult:
    scenario: Scenario
    series: dict[str, np.ndarray]
    latency: dict[str, np.ndarray]
    """Flow -> samples in seconds, each with the time it completed in `latency_at`."""
    latency_at: dict[str, np.ndarray]
    latency_site: dict[str, np.ndarray]
    """Per sample, the index of its warehouse in `scenario.warehouses` (-1: not of one site)."""
    counts: dict[str, int]
    check: dict[str, Any]
    bus: dict[str, int]
    api_calls: dict[str, int]
    api_cost: float
    warehouse_blocked_s: float
    fault_windows: list[tuple[str, float, float]]
    wall_s: float
    events: int
    extras: dict[str, Any] = field(default_factory=dict)


class Twin:
    def __init__(self, scenario: Scenario,
                 progress: Callable[[float, float, int], None] | None = None) -> None:
        """`progress(now, duration, events)` is called at every sample."""
        self.scenario = sc = scenario
        self.progress = progress
        desk = (OrderFlow.desk_config()
                if sc.patterns.resolved("order_release") is not Pattern.DIRECT else None)
        self.land = land = Landscape(sc, desk)
        self.env = land.env
        self.core = land.core
        self.faults = FaultPlan(sc, land.streams)
        self.inventory = InventoryFlow(land)
        land.partners.serve(POST, land.links["core_erp"], lambda _p: land.erp_api,
                            self.inventory.post)
        self.orders = OrderFlow(land, self.inventory.on_movement)
        self.master = MasterDataFlow(land)
        self.reconciler = (
            SimReconciler(land)
            if sc.patterns.resolved("inventory") is Pattern.EVENT_DRIVEN else None
        )
        self._series: dict[str, Column] = {k: Column(np.float64) for k in SERIES}
        for consumer in self.core.backlog():  # one backlog column per consumer of the bus
            self._series[f"backlog_{consumer}"] = Column(np.float64)
        self._sites = [w.id for w in sc.warehouses]
        for name in site_series(self._sites):
            self._series[name] = Column(np.float64)

    # -- processes ---------------------------------------------------------------------------

    def _sampler(self) -> Generator[Any, Any, None]:
        every = self.scenario.sample_interval_s
        cols = self._series
        while True:
            diff = self.land.wms.on_hand - self.land.erp.on_hand
            pending = self.land.truth.pending
            by_site = np.abs(diff).reshape(len(self._sites), -1).sum(axis=1)
            unexplained = np.abs(diff - pending).reshape(len(self._sites), -1).sum(axis=1)
            backlog = self.core.backlog()
            lag = self.core.lag() if self.core.up else {}
            for name, value in (
                ("t", self.env.now),
                ("divergence_units", np.abs(diff).sum()),
                ("in_flight_units", np.abs(pending).sum()),
                ("unexplained_units", np.abs(diff - pending).sum()),
                ("skus_out_of_sync", np.count_nonzero(diff)),
                ("items_out_of_sync", self.master.out_of_sync),
                ("bus_backlog", sum(backlog.values())),
                ("bus_lag_s", max(lag.values(), default=0.0)),
                ("erp_queue", self.land.erp_api.pool.queue_length),
                ("wms_queue", sum(p.queue_length for p in self.land.wms_pools)),
                *((f"backlog_{c}", n) for c, n in backlog.items()),
                *zip(site_series(self._sites), [*by_site, *unexplained], strict=True),
            ):
                cols[name].append(float(value))
            if self.progress is not None:
                self.progress(self.env.now, self.scenario.duration_s, next(self.env._eid))
            # Objects alive now (the log, the truth) rarely die in cycles: move them out of
            # the cyclic collector's sight, or each full collection rescans millions of them.
            # Refcounting still frees them.
            gc.freeze()
            yield self.env.timeout(every)

    def _erp_batches(self, every_s: float) -> Generator[Any, Any, None]:
        while True:
            yield self.env.timeout(every_s)
            self._erp_batch_run()

    def _erp_batch_run(self) -> None:
        if self.land.erp_api.available():
            self.land.erp.post_batch()

    # -- run ---------------------------------------------------------------------------------

    def run(self) -> RunResult:
        sc, env = self.scenario, self.env
        wall0 = time.perf_counter()
        for w, draws in enumerate(self.land.draws):
            movement_stream(
                env, self.land.wms, w, draws, partial(self.inventory.on_movement, w), sc.duration_s,
                self.land.offered.movement,
            )
        if sc.erp.batch_posting_min:
            env.process(self._erp_batches(sc.erp.batch_posting_min * 60))
        # The job goes on through the drain: what the workload's last run left is booked.
        for _, end in spans(sc.erp.batch_posting_runs, sc.duration_s + sc.drain_h * 3600):
            at(env, end, self._erp_batch_run)
        self.orders.start()
        self.master.start()
        if self.reconciler is not None:
            env.process(self.reconciler.process())
        redrive = sc.redrive()
        if redrive.when is When.EVERY:
            env.process(self.core.redrive(redrive.every_s))
        recovered = (partial(at, env, redrive.after_s, self.core.redrive_now)
                     if redrive.when is When.AFTER_RECOVERY else None)
        self.faults.install(self.land, self.inventory.set_wms_up, recovered)
        env.process(self._sampler())
        env.run(until=sc.duration_s)
        end = sc.duration_s + sc.drain_h * 3600
        while env.now < end and not self.settled():
            env.run(until=min(end, env.now + sc.sample_interval_s))
        self.drained_s = env.now - sc.duration_s
        gc.unfreeze()
        self.land.truth.settle_acks(env.now)
        self._lost_in_crash()
        return self._result(time.perf_counter() - wall0)

    def settled(self) -> bool:
        """Nothing left on its way: every movement applied or given up, queues empty."""
        return (
            not self.land.truth.outstanding
            and not any(self.core.backlog().values())
            and not self.land.erp.queued
            and not self.inventory.held
            and not any(self.inventory.batches)
            and self.inventory.edi_settled()
            and self.orders.settled()
        )

    def _site_counts(self) -> dict[str, dict[str, int]]:
        """Per warehouse, what its flows started and finished (per-site unfinished work)."""
        truth, skus = self.land.truth, self.scenario.catalog.skus
        site = truth.row.values // skus
        n = len(self._sites)
        made = np.bincount(site, minlength=n)
        applied = np.bincount(site[truth.applied.values > 0], minlength=n)
        return {w: {"movements_generated": int(made[i]),
                    "movements_applied_in_erp": int(applied[i]),
                    **self.orders.site_counts(i)}
                for i, w in enumerate(self._sites)}

    def _lost_in_crash(self) -> None:
        """Movements the core held only in memory when it crashed will never arrive."""
        for e in self.core.lost_in_crash:
            if e.type == MOVEMENT:
                idx = self.inventory.index_of(e)
                if not self.land.truth.applied[idx]:
                    self.land.truth.abandon(idx)

    def _api_cost(self) -> float:
        """Partner calls priced per 1,000 (`cost_per_1000_calls`); the WMS calls of all sites
        at the highest site price (calls are not counted per site yet)."""
        sc, calls = self.scenario, self.land.api_calls
        wms_price = max((w.api.cost_per_1000_calls for w in sc.warehouses), default=0.0)
        return (calls.get("erp", 0) * sc.erp.api.cost_per_1000_calls
                + calls.get("wms", 0) * wms_price) / 1000

    def _result(self, wall_s: float) -> RunResult:
        truth = self.land.truth
        check = truth.check()
        md_lat, md_at = self.master.latency()
        latency = {"inventory_sync": self.land.erp.sync_lag.values.copy(), **self.orders.latency(),
                   "master_data_sync": md_lat}
        latency_at = {"inventory_sync": self.land.erp.sync_at.values.copy(),
                      **self.orders.latency_at(), "master_data_sync": md_at}
        rows = truth.row.values[self.land.erp.sync_idx.values]
        latency_site = {"inventory_sync": (rows // self.scenario.catalog.skus).astype(np.int32),
                        **self.orders.latency_site(),
                        # Items are one master for every site (the first WMS's).
                        "master_data_sync": np.full(len(md_lat), -1, dtype=np.int32)}
        counts = {
            "movements_generated": len(truth),
            "movements_acknowledged": int(truth.acknowledged.values.sum()),
            "movements_applied_in_erp": int(np.count_nonzero(truth.applied.values)),
            "movements_given_up": self.inventory.gave_up,
            "outbox_resends": self.inventory.outbox_resends,
            **self.inventory.edi_counts(),
            "erp_replays_ignored": self.land.erp.replays_ignored,
            "reconciliation_adjustments": self.land.erp.adjustments,
            "reconciliation_adjusted_units": self.land.erp.adjusted_units,
            "core_crashes": self.core.crashes,
            "dead_letters_redriven": self.core.redriven,
            "items_arrived_at_sites": self.master.arrived,
            "movements_replayed_for_items": self.core.items_replayed,
            # Not the EDI sets refused back to the 3PL: it was told (997 R) and resends.
            "dead_letters_left": len(awaiting_us(self.core.engine.dead_letters())),
            # Refused by the partner's rate limit (HTTP 429 in the live world).
            "erp_rate_limited": self.land.erp_api.refused[Status.RATE_LIMITED],
            "wms_rate_limited": sum(a.refused[Status.RATE_LIMITED] for a in self.land.wms_apis),
            **self.orders.counts(),
            "item_changes": self.master.changes,
            "item_syncs_given_up": self.master.gave_up,
            "items_out_of_sync_final": self.master.out_of_sync,
        }
        links = {f"link_{n}_{k}": getattr(lnk, k) for n, lnk in self.land.links.items()
                 for k in ("sent", "lost", "duplicated")}
        return RunResult(
            scenario=self.scenario,
            series={k: c.values.copy() for k, c in self._series.items()},
            latency=latency,
            latency_at=latency_at,
            latency_site=latency_site,
            counts=counts,
            check=check.summary(),
            bus=self.core.counters(),
            api_calls=dict(self.land.api_calls),
            api_cost=round(self._api_cost(), 4),
            warehouse_blocked_s=self.inventory.blocked_s + self.orders.blocked_s,
            fault_windows=self.faults.windows,
            wall_s=wall_s,
            events=next(self.env._eid),  # SimPy numbers every scheduled event
            extras={"links": links, "drained_s": self.drained_s,
                    "sites": self._site_counts(),
                    "offered": self.land.offered.summary(),
                    "reconciler": self.reconciler.summary() if self.reconciler else None},
        )


def site_series(sites: list[str]) -> list[str]:
    """The per-warehouse columns of the sampled series: divergence, then unexplained units."""
    return ([f"divergence_units_{w}" for w in sites]
            + [f"unexplained_units_{w}" for w in sites])


def run(scenario: Scenario,
        progress: Callable[[float, float, int], None] | None = None) -> RunResult:
    return Twin(scenario, progress).run()
