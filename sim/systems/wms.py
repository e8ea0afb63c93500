"""WMS twin: physical stock per (sku, warehouse) row, and the movement stream it emits.

The state model (`WmsState`) has no SimPy in it; `movement_stream` is what gives it
time: Poisson movements at the configured rate, kinds from the mix, SKUs with Zipf popularity.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import numpy.typing as npt
import simpy

from integration_core.models import MOVEMENT_SIGN, MovementKind
from sim.kernel import at
from sim.scenario import WarehouseConfig, profile_rate, stage_rate

KINDS = [
    MovementKind.RECEIPT, MovementKind.PICK, MovementKind.ADJUSTMENT, MovementKind.TRANSFER_OUT,
    MovementKind.TRANSFER_IN, MovementKind.CYCLE_COUNT, MovementKind.RETURN, MovementKind.SCRAP,
]
"""In the order of `MovementMix.weights()`."""

# Quantity ranges (inclusive, base units) per kind: receipts and transfers move cases,
# picks, returns and scrap a few units; adjustments and counts are small signed corrections.
QTY_RANGE: dict[MovementKind, tuple[int, int]] = {
    MovementKind.RECEIPT: (12, 48),
    MovementKind.PICK: (1, 5),
    MovementKind.ADJUSTMENT: (1, 3),
    MovementKind.TRANSFER_OUT: (6, 24),
    MovementKind.TRANSFER_IN: (6, 24),
    MovementKind.CYCLE_COUNT: (0, 3),
    MovementKind.RETURN: (1, 2),
    MovementKind.SCRAP: (1, 2),
}

Sink = Callable[[int, int, int], None]
"""Called as sink(row, kind_index, delta) after the WMS applied a movement to its stock."""


class WmsState:
    def __init__(self, n_skus: int, warehouses: list[str], initial_on_hand: int) -> None:
        self.n_skus = n_skus
        self.warehouses = list(warehouses)
        self.on_hand = np.full(n_skus * len(warehouses), initial_on_hand, dtype=np.int64)
        self._cells = self.on_hand.data
        """The same cells for scalar reads and writes (cheaper than numpy's per item)."""

    def row(self, sku: int, warehouse: int) -> int:
        return warehouse * self.n_skus + sku

    def apply(self, row: int, delta: int) -> int:
        """Apply a physical movement; a pick cannot take more than is on the shelf, so the
        applied delta may be smaller than asked. Returns the applied delta."""
        cells = self._cells
        if delta < 0:
            delta = -min(-delta, cells[row])
        cells[row] += delta
        return delta


def zipf_probabilities(n: int, s: float) -> npt.NDArray[np.float64]:
    p = np.arange(1, n + 1, dtype=np.float64) ** -s
    return p / p.sum()  # type: ignore[no-any-return]


class MovementDraws:
    """Pre-drawn blocks of (interarrival, kind, sku, quantity): one numpy call per block."""

    def __init__(self, cfg: WarehouseConfig, n_skus: int, zipf_s: float,
                 rng: np.random.Generator, block: int = 4096) -> None:
        self.rng = rng
        self.block = block
        rate = cfg.movements_per_hour * cfg.peak_multiplier
        self.shaped = not cfg.flat or bool(cfg.rate_stages)
        self._daily, self._weekly = cfg.daily_profile, cfg.weekly_profile
        self._shape: Callable[[float], float] = partial(profile_rate, self._daily, self._weekly)
        if cfg.rate_stages:  # a load plan's stages: thinning below the top stage's rate
            top = max(st.movements_per_hour for st in cfg.rate_stages)
            rate, self.peak = top * cfg.peak_multiplier, 1.0
            self._shape = lambda t: stage_rate(cfg.rate_stages, t) / top if top else 0.0
        elif self.shaped:  # thinning: draw at the profile's peak, keep rate(t) / peak of them
            self.peak = max(profile_rate(self._daily, self._weekly, h * 3600.0)
                            for h in range(168))
            rate *= self.peak
        self.mean_gap = 3600.0 / rate if rate else 0.0
        w = np.array(cfg.mix.weights(), dtype=np.float64)
        self.kind_p = w / w.sum()
        self.sku_p = zipf_probabilities(n_skus, zipf_s)
        # A random permutation so popularity is not tied to SKU number (and so the same
        # SKUs are not the most popular in every warehouse).
        self.sku_perm = rng.permutation(n_skus)
        lo = np.array([QTY_RANGE[k][0] for k in KINDS])
        hi = np.array([QTY_RANGE[k][1] for k in KINDS])
        self.lo, self.span = lo, hi - lo + 1
        self.sign = np.array([MOVEMENT_SIGN[k] for k in KINDS])
        self._i = block
        self._gap: list[float] = []
        self._kind: list[int] = []
        self._sku: list[int] = []
        self._delta: list[int] = []
        self._keep: list[float] = []

    def _refill(self) -> None:
        n, rng = self.block, self.rng
        kinds = rng.choice(len(KINDS), size=n, p=self.kind_p)
        qty = self.lo[kinds] + (rng.random(n) * self.span[kinds]).astype(np.int64)
        sign = self.sign[kinds]
        # Kinds that carry their own sign (adjustment, cycle count) go either way.
        free = np.where(rng.random(n) < 0.5, -1, 1)
        self._gap = rng.exponential(self.mean_gap, n).tolist()
        self._kind = kinds.tolist()
        self._sku = self.sku_perm[rng.choice(len(self.sku_p), size=n, p=self.sku_p)].tolist()
        self._delta = (qty * np.where(sign == 0, free, sign)).tolist()
        if self.shaped:  # drawn last, so a flat profile's draws are what they always were
            self._keep = rng.random(n).tolist()
        self._i = 0

    def kept(self, t_s: float) -> bool:
        """Thinning: whether the movement just drawn happens at `t_s` (always, when flat)."""
        if not self.shaped:
            return True
        return self._keep[self._i - 1] * self.peak < self._shape(t_s)

    def next(self) -> tuple[float, int, int, int]:
        if self._i == self.block:
            self._refill()
        i = self._i
        self._i += 1
        return self._gap[i], self._kind[i], self._sku[i], self._delta[i]


def movement_stream(
    env: simpy.Environment, wms: WmsState, warehouse: int, draws: MovementDraws, sink: Sink,
    until: float, offered: Callable[[float, int, int, int, int], None] | None = None,
) -> None:
    """Start the background movement stream of one warehouse (receipts, picks, counts, ...),
    shaped by its daily and weekly profiles (a non-homogeneous Poisson process, by thinning).
    `offered(at, warehouse, kind, sku, delta)` hears every movement as drawn.

    A chain of callbacks (`sim.kernel.at`), not a process: one event per movement without a
    generator to resume, and the same draws as a process would make."""
    if draws.mean_gap:
        _Stream(env, wms, warehouse, draws, sink, until, offered).schedule()


class _Stream:
    def __init__(
        self, env: simpy.Environment, wms: WmsState, warehouse: int, draws: MovementDraws,
        sink: Sink, until: float, offered: Callable[[float, int, int, int, int], None] | None,
    ) -> None:
        self.env, self.wms, self.warehouse, self.draws = env, wms, warehouse, draws
        self.sink, self.until, self.offered = sink, until, offered
        self._first_row = wms.row(0, warehouse)
        """Rows of a warehouse are consecutive: its SKU `sku` is row `_first_row + sku`."""

    def schedule(self) -> None:
        """Draw the next movement; it happens after its gap, unless that is past `until`."""
        gap, kind, sku, delta = self.draws.next()
        env = self.env
        if env._now + gap < self.until:  # not the `now` property: once per movement
            at(env, gap, self.occur, kind, sku, delta)

    def occur(self, kind: int, sku: int, delta: int) -> None:
        now = self.env._now  # not the `now` property: once per movement
        draws = self.draws
        if not draws.shaped or draws.kept(now):
            if self.offered is not None:
                self.offered(now, self.warehouse, kind, sku, delta)
            row = self._first_row + sku  # self.wms.row(sku, warehouse)
            applied = self.wms.apply(row, delta)
            if applied:
                self.sink(row, kind, applied)
        self.schedule()
