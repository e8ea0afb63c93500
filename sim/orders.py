"""Order-to-ship flow (placeholder while the orchestrator lands): no orders yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.systems.endpoint import Endpoint

if TYPE_CHECKING:
    from sim.twin import Twin


class OrderFlow:
    def __init__(self, twin: Twin) -> None:
        self.t = twin
        self.carrier_api = Endpoint(twin.env, "carrier", twin.scenario.erp.api,
                                    twin.streams.get("api/carrier"))
        self.blocked_s = 0.0

    def start(self) -> None:
        pass

    def settled(self) -> bool:
        return True

    def latency(self) -> dict[str, np.ndarray]:
        return {}

    def latency_at(self) -> dict[str, np.ndarray]:
        return {}

    def counts(self) -> dict[str, int]:
        return {}
