"""Callback scheduling on SimPy: the hot paths schedule plain functions, not processes.

A SimPy process per message costs a generator and several events; `at` costs one event,
built directly rather than through `Timeout` (whose argument checks show up in profiles) and
pushed on the environment's queue as `Environment.schedule` does, without the extra call.
Long-lived behaviour (order arrivals, waves, sampling) still uses processes; the WMS movement
stream, one event per movement, is a chain of `at` calls (`sim.systems.wms.movement_stream`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class _Call:
    """An already-triggered event that calls fn(*args) when SimPy processes it.

    Not a `simpy.Event`: nobody holds it, waits for it or adds a callback, and all that
    `Environment.step` reads of an event is `callbacks` (set to None once processed) and
    `_ok`. A slotted object of three fields is cheaper to build than an Event; `at` fills
    them in itself (an `__init__` would be one more Python call per event)."""

    __slots__ = ("args", "callbacks", "fn")
    _ok = True
    callbacks: tuple[Callable[[_Call], None], ...] | None
    fn: Callable[..., None]
    args: tuple[Any, ...]


def _fire(event: _Call) -> None:
    event.fn(*event.args)


_FIRE = (_fire,)
"""Every `_Call`'s callbacks: SimPy only iterates them (and sets them to None when fired)."""


def at(env: simpy.Environment, delay: float, fn: Callable[..., None], *args: Any) -> None:
    """Call fn(*args) after `delay` simulated seconds (0 if negative)."""
    queue: list[tuple[float, int, int, _Call]] = env._queue  # type: ignore[assignment]
    call = _new(_Call)
    call.callbacks, call.fn, call.args = _FIRE, fn, args
    heappush(queue, (env._now + (delay if delay > 0 else 0.0), NORMAL, next(env._eid), call))


_new = object.__new__


class Windows:
    """[start, end) windows, possibly overlapping (merged here); `active(t)` by bisection, so a
    year of nightly windows costs what one does."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        merged: list[tuple[float, float]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        self.spans = merged
        self._starts = [s for s, _ in merged]

    def active(self, t: float) -> bool:
        i = bisect_right(self._starts, t) - 1
        return i >= 0 and t < self.spans[i][1]
