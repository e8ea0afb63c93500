"""The traffic the outside world offers the integration: the shop's orders and each
warehouse's own movements, as drawn, whatever the pattern does with them.

Common random numbers: every source draws from its own named stream (`sim.rng`), so the same
seed offers the same orders and movements to every pattern. The digest makes that checkable:
a comparison whose scenarios share a digest compared patterns on identical traffic; one whose
digests differ did not (a different load, a different seed), and its report says so.

Picks of the shop's orders are not in it: when they happen is the pattern's doing.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Any

_ORDER = struct.Struct("<dH")
_LINE = struct.Struct("<ii")
_MOVEMENT = struct.Struct("<dHBii")


class OfferedTraffic:
    def __init__(self) -> None:
        self._hash = hashlib.blake2b(digest_size=12)
        self.orders = 0
        self.movements = 0

    def order(self, at: float, order_id: str, warehouse: int,
              lines: Iterable[tuple[int, int]]) -> None:
        """An order placed at `at` for `warehouse`, its lines as (SKU index, units)."""
        self.orders += 1
        h = self._hash
        h.update(order_id.encode())
        h.update(_ORDER.pack(at, warehouse))
        for sku, units in lines:
            h.update(_LINE.pack(sku, units))

    def movement(self, at: float, warehouse: int, kind: int, sku: int, delta: int) -> None:
        """A movement the warehouse drew (before its stock limits what it can apply)."""
        self.movements += 1
        self._hash.update(_MOVEMENT.pack(at, warehouse, kind, sku, delta))

    def summary(self) -> dict[str, Any]:
        return {"orders": self.orders, "movements": self.movements,
                "digest": self._hash.hexdigest()}
