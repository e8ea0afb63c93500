"""Callback scheduling on SimPy: the hot paths schedule plain functions, not processes.

A SimPy process per message costs a generator and several events; `at` costs one event,
built directly rather than through `Timeout` (whose argument checks show up in profiles).
Long-lived behaviour (arrivals, waves, sampling) still uses processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL


class _Call(simpy.Event):
    """An already-triggered event that calls fn(*args) when SimPy processes it."""

    __slots__ = ("args", "fn")

    def __init__(self, env: simpy.Environment, fn: Callable[..., None], args: tuple[Any, ...]
                 ) -> None:
        self.env = env
        self.callbacks = [self._fire]
        self._value = None
        self._ok = True
        self.fn = fn
        self.args = args

    def _fire(self, _event: simpy.Event) -> None:
        self.fn(*self.args)


def at(env: simpy.Environment, delay: float, fn: Callable[..., None], *args: Any) -> None:
    """Call fn(*args) after `delay` simulated seconds (0 if negative)."""
    env.schedule(_Call(env, fn, args), NORMAL, delay if delay > 0 else 0.0)


class Windows:
    """Sorted, possibly overlapping [start, end) windows; `active(t)` by a linear scan of the
    few windows a scenario declares."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.spans = sorted(spans)

    def active(self, t: float) -> bool:
        for start, end in self.spans:
            if start > t:
                return False
            if t < end:
                return True
        return False
