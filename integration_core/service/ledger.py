"""Stock ledgers kept as consumer state in the bus store, one JSON value per SKU.

A value is a list of ``[location, lot, on_hand]`` rows: one read and one write per movement,
and `GET /v1/inventory/{sku}` reads one key. Written only inside durable-inbox effects, so a
ledger changes exactly when its consumer's inbox records the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from integration_core.bus import Store, Tx
from integration_core.envelope import Envelope

RowKey = tuple[str, str, str | None]
Row = list[Any]
"""[location, lot, on_hand]."""


def movement_fields(envelope: Envelope) -> tuple[str, str, str, str | None, int]:
    """(movement_id, sku, location, lot, signed base units) of an inventory.movement envelope.

    The payload was validated against the item master when the API accepted it (or built by
    the core itself), so it is read without validating again."""
    p = envelope.payload
    return p["movement_id"], p["sku"], p["location"], p.get("lot"), int(p["quantity_base"])


class Ledger:
    def __init__(self, ns: str) -> None:
        self.ns = ns

    def apply(self, tx: Tx, sku: str, location: str, lot: str | None, delta: int) -> int:
        """Add `delta` to the row; returns the new on-hand."""
        # Copy: within a batch, `get` may hand back an earlier effect's staged object.
        rows: list[Row] = [list(r) for r in tx.get(self.ns, sku) or []]
        for row in rows:
            if row[0] == location and row[1] == lot:
                row[2] += delta
                new = int(row[2])
                break
        else:
            rows.append([location, lot, delta])
            new = delta
        tx.put(self.ns, sku, rows)
        return new

    def rows(self, store: Store, sku: str) -> dict[RowKey, int]:
        return {(sku, r[0], r[1]): int(r[2]) for r in store.get_state(self.ns, sku) or []}

    def table(self, store: Store) -> dict[RowKey, int]:
        """Every row: for the reconciler."""
        return {(sku, r[0], r[1]): int(r[2])
                for sku, rows in store.state(self.ns).items() for r in rows}


def add_deltas(base: Mapping[RowKey, int], movements: Iterable[Envelope],
               sku: str | None = None) -> dict[RowKey, int]:
    """`base` plus the movements' deltas (only `sku`'s rows when given)."""
    out = dict(base)
    for env in movements:
        if env.type != "inventory.movement":
            continue
        _, s, loc, lot, delta = movement_fields(env)
        if sku is None or s == sku:
            out[(s, loc, lot)] = out.get((s, loc, lot), 0) + delta
    return out
