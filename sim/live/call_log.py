"""The live twins' partner calls, one CSV row each, for `twin calibrate` to fit from.

Set ``TWIN_PARTNER_CALLS_CSV`` to a path before starting `twin twins` (or `loadtests.run`,
which passes its environment on; ``--twin`` sets it) and every served operation writes
``timestamp,partner,operation,duration_s,batch_size``: the start (Unix seconds), ``erp`` or
``wms``, the operation, the time the twin took to serve it, and the items it carried (a
posting batch's movements; 1 otherwise). The file is rewritten by each start of the twins.
It is the layout of docs/calibration.md, the one a team's own logs use. Unset: nothing is
recorded and nothing is opened.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import IO, ParamSpec, TypeVar

ENV = "TWIN_PARTNER_CALLS_CSV"
HEADER = "timestamp,partner,operation,duration_s,batch_size\n"

P = ParamSpec("P")
R = TypeVar("R")


class CallLog:
    """Writes call rows to `path` (created, or emptied, on the first call, with the header)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def record(self, partner: str, operation: str, started: float, duration_s: float,
               batch_size: int = 1) -> None:
        if self.path is None:
            return
        if self._file is None:  # a new file per process: one run's calls, never two runs'
            self._file = open(self.path, "w", buffering=1)  # noqa: SIM115 (lives with the process)
            self._file.write(HEADER)
        self._file.write(f"{started:.6f},{partner},{operation},{duration_s:.9f},{batch_size}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


CALLS = CallLog(os.environ.get(ENV) or None)


def served(partner: str, operation: str, batch: Callable[..., int] | None = None
           ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call of the decorated operation in `CALLS`; `batch(*args)` (the method's
    arguments after self) gives its batch size."""
    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if CALLS.path is None:
                return fn(*args, **kwargs)
            wall, t0 = time.time(), time.perf_counter()
            out = fn(*args, **kwargs)
            CALLS.record(partner, operation, wall, time.perf_counter() - t0,
                         batch(*args[1:]) if batch is not None else 1)
            return out
        return call
    return wrap
