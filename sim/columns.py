"""Growable columns: flat records without a Python object per row (DESIGN principle 5).

A column *is* an `array.array` (a subclass that knows its numpy dtype), so item reads, writes
and appends run at C speed with no Python call (the twin reads and writes ledger cells many
times per movement); `values` is a zero-copy numpy view for vectorised work. Do not hold a view
while appending: an array that exports its buffer cannot grow (Python raises BufferError rather
than corrupt it).
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

_TYPECODES: dict[Any, str] = {
    np.dtype(np.int32): "i", np.dtype(np.int64): "q", np.dtype(np.float64): "d",
    np.dtype(np.uint8): "B", np.dtype(np.bool_): "B",
}


class Column(array):  # type: ignore[type-arg]
    """An append-only column of one numpy dtype (int32, int64, float64, uint8 or bool).

    `append(v)`, `c[i]`, `c[i] = v` and `len(c)` are the array's own."""

    __slots__ = ("dtype", "fill")
    dtype: np.dtype[Any]
    fill: float

    def __new__(cls, dtype: npt.DTypeLike, fill: float = 0) -> Column:
        dt = np.dtype(dtype)
        try:
            code = _TYPECODES[dt]
        except KeyError:
            raise ValueError(f"unsupported column dtype {dt}") from None
        self = super().__new__(cls, code)
        self.dtype = dt
        self.fill = fill
        return self

    def __init__(self, dtype: npt.DTypeLike, fill: float = 0) -> None:
        pass  # array.__init__ takes no arguments; __new__ did the work

    def grow(self) -> None:
        """Append the fill value."""
        self.append(self.fill)

    @property
    def values(self) -> npt.NDArray[Any]:
        """A numpy view of the column (writable; do not keep it across appends)."""
        if not self:
            return np.zeros(0, dtype=self.dtype)
        return np.frombuffer(self, dtype=self.dtype)
