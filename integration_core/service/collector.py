"""The cyclic garbage collector's settings for the service's processes.

Under load a process of the service allocates many short-lived containers (a batch of 500
movements makes tens of thousands of dicts, tuples and models), nearly all freed by reference
counting. With CPython's default threshold (700) the collector runs thousands of times a
second anyway, and its full collections walk every long-lived object: the imported modules,
the schemas, the item master. Frozen, those are never scanned again.
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def tune_collector() -> None:
    """Call once a process has built what it keeps for its lifetime, before it serves."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, 20, 20)
