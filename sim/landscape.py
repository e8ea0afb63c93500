"""The landscape a scenario describes, built once: the clock, the random streams, the systems
(ERP and WMS state, their API endpoints, the warehouses' worker pools, the carrier), the links,
the core and its partner adapter, and the twin's ground truth of movements.

The flows (`sim.inventory`, `sim.orders`, `sim.master_data`, `sim.reconcile`) and the faults
take this narrow context, never the `Twin` that runs them: what a flow may touch is what is
listed here, and `sim/` has no import circle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import simpy

from integration_core.engine import RowKey
from integration_core.engine.items import SiteItems
from integration_core.models import Catalog, Item
from integration_core.orchestrator import OrchestratorConfig
from sim.columns import Column
from sim.core import TwinCore
from sim.network import Link
from sim.offered import OfferedTraffic
from sim.partners import SimPartners
from sim.rng import Streams
from sim.scenario import ApiConfig, Scenario
from sim.systems.endpoint import Endpoint
from sim.systems.erp import ErpState
from sim.systems.pool import WorkerPool
from sim.systems.wms import MovementDraws, WmsState
from sim.truth import GroundTruth

LINKS = ("wms_core", "core_erp", "wms_erp")


class Landscape:
    def __init__(self, scenario: Scenario, desk: OrchestratorConfig | None) -> None:
        """`desk`: the core's order desk settings, None when orders bypass the core."""
        self.scenario = sc = scenario
        self.env = simpy.Environment()
        self.streams = Streams(sc.seed)
        n_skus = sc.catalog.skus
        self.warehouse_ids = [w.id for w in sc.warehouses]
        self.wms = WmsState(n_skus, self.warehouse_ids, sc.catalog.initial_on_hand)
        self.n_rows = len(self.wms.on_hand)
        self.truth = GroundTruth(self.n_rows)
        self.kinds = Column(np.uint8)
        self.offered = OfferedTraffic()
        self.erp = ErpState(
            # `_now`, not the `now` property (a Python call): the ERP reads it per movement.
            self.n_rows, sc.catalog.initial_on_hand, self.truth, lambda: self.env._now,
            honours_idempotency_keys=sc.erp.honours_idempotency_keys,
            batch_posting=sc.erp.batch_posting_min is not None or bool(sc.erp.batch_posting_runs),
        )
        # The twin reads no per-call records (theory tests do): skip their memory.
        self.erp_api = Endpoint(self.env, "erp", sc.erp.api, self.streams.get("api/erp"),
                                record=False, until_s=sc.duration_s)
        """Replaced by a migration's cut-over (`sim.faults`): look it up at call time."""
        self.erp_extract = self.erp.on_hand.copy()
        """The balance extract a migration loads into the new ERP (see `sim.faults`)."""
        self.wms_apis = [Endpoint(self.env, f"wms-{w.id}", w.api, self.streams.get(f"api/{w.id}"),
                                  record=False, until_s=sc.duration_s)
                         for w in sc.warehouses]
        self.wms_pools = [WorkerPool(self.env, w.workers) for w in sc.warehouses]
        carrier = ApiConfig(workers=8, service_time_s=sc.carrier.label_latency_s)
        self.carrier_api = Endpoint(self.env, "carrier", carrier,
                                    self.streams.get("api/carrier"), record=False)
        self.links = {name: Link(self.env, name, getattr(sc.links, name),
                                 self.streams.get(f"link/{name}"), until_s=sc.duration_s)
                      for name in LINKS}
        self.api_calls: Counter[str] = Counter()
        self._sku_names = [f"SKU-{i:05d}" for i in range(n_skus)]
        self.draws = [MovementDraws(cfg, n_skus, sc.catalog.zipf_s,
                                    self.streams.get(f"movements/{cfg.id}"))
                      for cfg in sc.warehouses]
        self.popularity = [d.sku_perm for d in self.draws]
        """Per warehouse, SKU indices from most to least popular."""
        self.partners = SimPartners(self.env, sc.bus.call_timeout_s, self.api_calls)
        self.own_items = {
            w: self.streams.get(f"items/{cfg.id}").random(n_skus) < cfg.items_known_at_start
            for w, cfg in enumerate(sc.warehouses) if cfg.item_master == "own"}
        """Per site with an item master of its own, which SKUs it knows at the start."""
        site_items = SiteItems({self.warehouse_ids[w]: [self._sku_names[i]
                                                        for i in np.flatnonzero(known)]
                                for w, known in self.own_items.items()}
                               ) if self.own_items else None
        self.core = TwinCore(self.env, sc.bus, self.streams.get("bus"),
                             Catalog(Item(sku=s) for s in self._sku_names), self.partners,
                             desk, self._stock_report, site_items=site_items)

    def _stock_report(self) -> dict[RowKey, int]:
        """The WMS's stock by row, as it reports it for the core's opening balance."""
        return {(self.sku_name(r), self.warehouse_name(r), None): int(q)
                for r, q in enumerate(self.wms.on_hand)}

    def count_call(self, system: str) -> Callable[[], None]:
        """A counter of API calls to `system`, for callers that retry."""

        def count() -> None:
            self.api_calls[system] += 1

        return count

    # -- naming ------------------------------------------------------------------------------

    def sku_name(self, row: int) -> str:
        return self._sku_names[row % self.scenario.catalog.skus]

    def warehouse_name(self, row: int) -> str:
        return self.warehouse_ids[row // self.scenario.catalog.skus]

    def row_of(self, sku: str, warehouse: str) -> int:
        return self.warehouse_ids.index(warehouse) * self.scenario.catalog.skus + int(sku[4:])
