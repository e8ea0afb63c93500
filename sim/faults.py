"""Faults: scheduled outages, random outages (MTBF / MTTR), degraded latency, core crashes,
and swarm mode, which draws extra faults from the seed (as FoundationDB and TigerBeetle do).

`FaultPlan` expands the scenario's fault section into concrete windows up front (so the report
can shade them), then `install` schedules their start and end in the twin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.kernel import at
from sim.landscape import Landscape
from sim.rng import Streams
from sim.scenario import Migration, Scenario, spans
from sim.systems.endpoint import Endpoint

LINKS = ("wms_core", "core_erp", "wms_erp")
SWARM_SYSTEMS = ("erp", "wms", "carrier", "core", *LINKS)
PARTNER_FAULTS = frozenset({"erp", "wms", "core_erp", "wms_core"})
"""Faults after which a redrive of the core's dead letters may succeed."""


@dataclass(frozen=True)
class FaultWindow:
    system: str
    start_s: float
    end_s: float
    kind: str = "down"
    factor: float = 1.0
    warehouse: str | None = None
    """One site's WMS (system "wms"); None: every site's."""

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.system, self.warehouse, self.kind) if x)


class FaultPlan:
    def __init__(self, sc: Scenario, streams: Streams) -> None:
        """Each random outage source draws from a stream of its own (`faults/mtbf/<system>`,
        then `#2`, `#3` for further entries of one system; swarm from `faults/swarm`), so
        adding one leaves the others' outages where they were."""
        self.duration_s = sc.duration_s
        plan = [FaultWindow(o.system, o.start_h * 3600, (o.start_h + o.duration_h) * 3600,
                            o.kind, o.factor, o.warehouse) for o in sc.faults.outages]
        entries: Counter[str] = Counter()
        for r in sc.faults.random:
            source = r.system if r.warehouse is None else f"{r.system}/{r.warehouse}"
            entries[source] += 1
            n = entries[source]
            rng = streams.get(f"faults/mtbf/{source}" + (f"#{n}" if n > 1 else ""))
            t = 0.0
            while True:
                t += rng.exponential(r.mtbf_h * 3600)
                if t >= self.duration_s:
                    break
                end = t + rng.exponential(r.mttr_h * 3600)
                plan.append(FaultWindow(r.system, t, end, warehouse=r.warehouse))
                t = end
        self.swarm_link_faults: dict[str, tuple[float, float]] = {}
        if sc.faults.swarm:
            plan += self._swarm(streams.get("faults/swarm"))
        self.plan = sorted(plan, key=lambda f: (f.start_s, f.system))
        self.windows: list[tuple[str, float, float]] = [
            (f.label, f.start_s, min(f.end_s, self.duration_s)) for f in self.plan
        ]
        end = sc.duration_s
        self.windows += [("erp maintenance", a, b) for a, b in spans(sc.erp.api.maintenance, end)]
        for w in sc.warehouses:
            self.windows += [(f"wms {w.id} maintenance", a, b)
                             for a, b in spans(w.api.maintenance, end)]
        self.maintenance_ends = [b for label, _, b in self.windows if "maintenance" in label]
        self.migration = sc.migration
        if sc.migration is not None:
            m = sc.migration
            self.windows.append(("erp cut-over", m.at_h * 3600, (m.at_h + m.freeze_h) * 3600))
        for name in LINKS:
            cfg = getattr(sc.links, name)
            self.windows += [(f"{name} partition", a, b) for a, b in spans(cfg.partitions, end)]

    def _swarm(self, rng: np.random.Generator) -> list[FaultWindow]:
        """1 to 4 outages of random systems, kinds and lengths, and random link loss and
        duplication: each seed explores a different corner of the fault space."""
        out = []
        for _ in range(int(rng.integers(1, 5))):
            system = str(rng.choice(SWARM_SYSTEMS))
            start = float(rng.uniform(0.05, 0.7)) * self.duration_s
            length = float(rng.exponential(3600))
            kind = "crash" if system == "core" else str(rng.choice(["down", "slow"]))
            out.append(FaultWindow(system, start, start + length, kind,
                                   float(rng.uniform(2, 20))))
        for name in LINKS:
            if rng.random() < 0.5:
                self.swarm_link_faults[name] = (float(rng.uniform(0, 0.1)),
                                                float(rng.uniform(0, 0.3)))
        return out

    @property
    def last_fault_end_s(self) -> float | None:
        ends = [end for _, _, end in self.windows]
        return max(ends) if ends else None

    def install(self, twin: Landscape, wms_up: Callable[[bool, int | None], None],
                recovered: Callable[[], None] | None = None) -> None:
        """Schedule the faults in `twin`; `wms_up(up, site)` is told when a WMS outage (of one
        site, or of all when site is None) begins and
        ends (the warehouse keeps working and posts what happened once it is back);
        `recovered()` when an outage of a partner (the ERP, a WMS) or of its link ends."""
        if self.migration is not None:
            m = self.migration
            at(twin.env, max(0.0, m.at_h * 3600 - m.snapshot_lag_min * 60), _snapshot, twin)
            at(twin.env, m.at_h * 3600, _freeze, twin)
            at(twin.env, (m.at_h + m.freeze_h) * 3600, _cut_over, twin, m)
        for name, (loss, dup) in self.swarm_link_faults.items():
            link = twin.links[name]
            link.loss = max(link.loss, loss)
            link.duplication = max(link.duplication, dup)
        for f in self.plan:
            if f.start_s < self.duration_s:
                at(twin.env, f.start_s, _toggle, twin, wms_up, f, True)
                at(twin.env, min(f.end_s, self.duration_s), _toggle, twin, wms_up, f, False)
                if recovered is not None and f.system in PARTNER_FAULTS:
                    at(twin.env, min(f.end_s, self.duration_s), recovered)
        if recovered is not None:
            for t in self.maintenance_ends:
                at(twin.env, t, recovered)


def _toggle(twin: Landscape, wms_up: Callable[[bool, int | None], None], f: FaultWindow,
            begin: bool) -> None:
    slow = f.factor if begin else 1.0
    if f.system == "core":
        if begin:
            twin.core.crash()
        else:
            twin.core.restart()
        return
    if f.system in LINKS:
        link = twin.links[f.system]
        if f.kind == "slow":
            link.slow_factor = slow
        else:
            link.down = begin
        return
    site = None if f.warehouse is None else twin.warehouse_ids.index(f.warehouse)
    wms = twin.wms_apis if site is None else [twin.wms_apis[site]]
    endpoints = {"erp": [twin.erp_api], "wms": wms, "carrier": [twin.carrier_api]}[f.system]
    for ep in endpoints:
        if f.kind == "slow":
            ep.slow_factor = slow
        else:
            ep.down = begin
    if f.system == "wms" and f.kind != "slow":
        wms_up(not begin, site)


def _snapshot(twin: Landscape) -> None:
    twin.erp_extract = twin.erp.on_hand.copy()


def _freeze(twin: Landscape) -> None:
    twin.erp_api.down = True


def _cut_over(twin: Landscape, m: Migration) -> None:
    """The new ERP starts from the extract, behind a new API; the old one is switched off.
    Idempotency keys migrate with it (else every redelivery would be applied twice)."""
    twin.erp.on_hand[:] = twin.erp_extract
    twin.erp_api = Endpoint(twin.env, "erp-new", m.new_api, twin.streams.get("api/erp-new"),
                           record=False, until_s=twin.scenario.duration_s)
