"""A store whose writes and commits fail at random: for the bus's storage-failure contract.

`FailingStore` wraps any `Store`. While armed, each write fails *before* it happens with
probability `p`, and the outermost `batch` fails at its end (a failed COMMIT) with the same
probability: the failure is raised inside the wrapped store's batch, so the wrapped store
rolls back what the batch wrote, as a real database does when its commit fails. Reads never
fail: a disk that is full still reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from integration_core.bus import Store
from integration_core.errors import StorageError

WRITES = frozenset({
    "append", "append_many", "apply", "apply_many", "mark_processed", "mark_processed_many",
    "save_subscription", "put_dead_letter", "delete_dead_letter",
})


class FailingStore:
    def __init__(self, inner: Store, rng: np.random.Generator, p: float = 0.2) -> None:
        self.inner = inner
        self.rng = rng
        self.p = p
        self.armed = True
        self.failures = 0
        self._depth = 0

    def _maybe_fail(self, what: str) -> None:
        if self.armed and self.rng.random() < self.p:
            self.failures += 1
            raise StorageError(f"injected: {what} failed (database or disk is full)")

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self.inner.batch():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            if self._depth == 0:
                self._maybe_fail("commit")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            self._maybe_fail(name)
            return attr(*args, **kwargs)

        return write
