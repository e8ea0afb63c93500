"""Stock ledgers kept as consumer state in the bus store, one integer per stock row.

A row's key is ``sku<TAB>location<TAB>lot`` (an empty lot for none) and its value the on-hand in
base units: a scalar, so reading and writing it inside an effect costs no copy, and
`GET /v1/inventory/{sku}` reads one SKU's rows by key prefix. Written only inside
durable-inbox effects, so a ledger changes exactly when its consumer's inbox records the
message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from integration_core.bus import Store, Tx
from integration_core.envelope import MOVEMENT, Envelope

RowKey = tuple[str, str, str | None]
_SEP = "\t"  # canonical ids never hold a tab


def movement_fields(envelope: Envelope) -> tuple[str, str, str, str | None, int]:
    """(movement_id, sku, location, lot, signed base units) of an inventory.movement envelope.

    The payload was validated against the item master when the API accepted it (or built by
    the core itself), so it is read without validating again."""
    p = envelope.payload
    return p["movement_id"], p["sku"], p["location"], p.get("lot"), int(p["quantity_base"])


def _key(sku: str, location: str, lot: str | None) -> str:
    return f"{sku}{_SEP}{location}{_SEP}{lot or ''}"


def _row(key: str) -> RowKey:
    sku, location, lot = key.split(_SEP)
    return sku, location, lot or None


class Ledger:
    def __init__(self, ns: str) -> None:
        self.ns = ns

    def apply(self, tx: Tx, sku: str, location: str, lot: str | None, delta: int) -> int:
        """Add `delta` to the row; returns the new on-hand."""
        key = _key(sku, location, lot)
        new = int(tx.get(self.ns, key) or 0) + delta
        tx.put(self.ns, key, new)
        return new

    def put(self, tx: Tx, sku: str, location: str, lot: str | None, on_hand: int) -> None:
        tx.put(self.ns, _key(sku, location, lot), on_hand)

    def get(self, tx: Tx, sku: str, location: str, lot: str | None) -> int:
        return int(tx.get(self.ns, _key(sku, location, lot)) or 0)

    def rows(self, store: Store, sku: str) -> dict[RowKey, int]:
        return {_row(k): int(v) for k, v in store.state(self.ns, sku + _SEP).items()}

    def table(self, store: Store) -> dict[RowKey, int]:
        """Every row: for the reconciler."""
        return {_row(k): int(v) for k, v in store.state(self.ns).items()}


def add_deltas(base: Mapping[RowKey, int], movements: Iterable[Envelope],
               sku: str | None = None) -> dict[RowKey, int]:
    """`base` plus the movements' deltas (only `sku`'s rows when given)."""
    out = dict(base)
    for env in movements:
        if env.type != MOVEMENT:
            continue
        _, s, loc, lot, delta = movement_fields(env)
        if sku is None or s == sku:
            out[(s, loc, lot)] = out.get((s, loc, lot), 0) + delta
    return out
