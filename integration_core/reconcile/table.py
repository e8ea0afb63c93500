"""Columnar balance tables keyed by integer codes.

Strings are encoded once, when a table is built; comparing two million-row tables is then a few
numpy sorts over int64 keys instead of a million dict lookups. Tables compared together must
share one `Keyspace`, so that equal codes mean equal names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from integration_core.models import InventoryBalance, Movement

Codes = npt.NDArray[np.int64]
RowKey = tuple[str, str, str | None]
"""(sku, location, lot) by name; lot None means not lot-tracked."""

N = TypeVar("N", bound="str | None")


class Vocabulary(Generic[N]):
    """Append-only map between names and dense integer codes 0, 1, 2, ..."""

    __slots__ = ("_codes", "_names")

    def __init__(self, names: Iterable[N] = ()) -> None:
        self._codes: dict[N, int] = {}
        self._names: list[N] = []
        for name in names:
            self.code(name)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._codes

    def code(self, name: N) -> int:
        """The name's code, assigning the next one if the name is new."""
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def get(self, name: N) -> int:
        """The name's code, or -1 if unknown (never assigns)."""
        return self._codes.get(name, -1)

    def name(self, code: int) -> N:
        return self._names[code]

    def encode(self, names: Iterable[N]) -> Codes:
        code = self.code
        return np.fromiter((code(n) for n in names), dtype=np.int64)

    def decode(self, codes: Codes) -> list[N]:
        names = self._names
        return [names[c] for c in codes.tolist()]


class Keyspace:
    """The sku, location and lot vocabularies shared by every table compared together."""

    __slots__ = ("locations", "lots", "skus")

    def __init__(self) -> None:
        self.skus: Vocabulary[str] = Vocabulary()
        self.locations: Vocabulary[str] = Vocabulary()
        self.lots: Vocabulary[str | None] = Vocabulary()

    def encode(self, rows: Iterable[RowKey]) -> tuple[Codes, Codes, Codes]:
        skus, locs, lots = [], [], []
        for sku, loc, lot in rows:
            skus.append(sku)
            locs.append(loc)
            lots.append(lot)
        return self.skus.encode(skus), self.locations.encode(locs), self.lots.encode(lots)

    def key(self, sku: int, location: int, lot: int) -> RowKey:
        return self.skus.name(sku), self.locations.name(location), self.lots.name(lot)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return len(self.skus), len(self.locations), len(self.lots)


def _column(values: npt.ArrayLike, name: str) -> Codes:
    arr = np.ascontiguousarray(values, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D column, got shape {arr.shape}")
    return arr


def _check_codes(vocab: Vocabulary[N], codes: Codes, name: str) -> None:
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= len(vocab)):
        raise ValueError(f"{name}: codes must lie in [0, {len(vocab)}) of the keyspace")


class _Keyed:
    """Validation shared by the keyed tables: equal-length int64 columns, codes in range."""

    keys: Keyspace
    sku: Codes
    location: Codes
    lot: Codes

    def _validate(self, quantity: str) -> None:
        length = None
        for name in ("sku", "location", "lot", quantity):
            arr = _column(getattr(self, name), name)
            object.__setattr__(self, name, arr)  # frozen: set once, here
            if length is not None and len(arr) != length:
                raise ValueError(f"{name}: length {len(arr)}, other columns have {length}")
            length = len(arr)
        _check_codes(self.keys.skus, self.sku, "sku")
        _check_codes(self.keys.locations, self.location, "location")
        _check_codes(self.keys.lots, self.lot, "lot")

    def __len__(self) -> int:
        return len(self.sku)

    @property
    def columns(self) -> tuple[Codes, Codes, Codes]:
        return self.sku, self.location, self.lot

    def row_keys(self) -> Iterator[RowKey]:
        ks = self.keys
        skus = ks.skus.decode(self.sku)
        locs = ks.locations.decode(self.location)
        lots = ks.lots.decode(self.lot)
        return zip(skus, locs, lots, strict=True)


@dataclass(frozen=True, eq=False)
class BalanceTable(_Keyed):
    """On-hand stock of one system by (sku, location, lot), as parallel numpy columns.

    Keys must be unique (the diff checks). Columns are not copied: treat them as read-only."""

    keys: Keyspace
    sku: Codes
    location: Codes
    lot: Codes
    on_hand: Codes

    def __post_init__(self) -> None:
        self._validate("on_hand")

    @classmethod
    def from_balances(
        cls, balances: Iterable[InventoryBalance], keys: Keyspace | None = None
    ) -> BalanceTable:
        on_hand: dict[RowKey, int] = {}
        for b in balances:
            k = (b.sku, b.location, b.lot)
            if k in on_hand:
                raise ValueError(f"balance {k} appears twice in one snapshot")
            on_hand[k] = b.on_hand
        return cls.from_dict(on_hand, keys)

    @classmethod
    def from_dict(cls, on_hand: Mapping[RowKey, int], keys: Keyspace | None = None) -> BalanceTable:
        keys = keys if keys is not None else Keyspace()
        sku, loc, lot = keys.encode(on_hand.keys())
        qty = np.fromiter(on_hand.values(), dtype=np.int64, count=len(on_hand))
        return cls(keys, sku, loc, lot, qty)

    def to_dict(self) -> dict[RowKey, int]:
        return dict(zip(self.row_keys(), self.on_hand.tolist(), strict=True))


@dataclass(frozen=True, eq=False)
class Deltas(_Keyed):
    """Net stock change per (sku, location, lot) still on its way: in-flight movements."""

    keys: Keyspace
    sku: Codes
    location: Codes
    lot: Codes
    delta: Codes

    def __post_init__(self) -> None:
        self._validate("delta")

    @classmethod
    def from_dict(cls, delta: Mapping[RowKey, int], keys: Keyspace) -> Deltas:
        sku, loc, lot = keys.encode(delta.keys())
        return cls(keys, sku, loc, lot, np.fromiter(delta.values(), np.int64, len(delta)))

    @classmethod
    def from_movements(
        cls, keys: Keyspace, to_erp: Iterable[Movement] = (), to_wms: Iterable[Movement] = ()
    ) -> Deltas:
        """Net in-flight units per row, signed so that ERP + delta == WMS when they explain a
        difference: movements on their way to the ERP count +, those to the WMS count -.
        Names new to `keys` are added to it."""
        net: dict[RowKey, int] = {}
        for sign, movements in ((1, to_erp), (-1, to_wms)):
            for m in movements:
                k = (m.sku, m.location, m.lot)
                net[k] = net.get(k, 0) + sign * m.delta
        return cls.from_dict({k: v for k, v in net.items() if v}, keys)
