"""Growable columns: flat records without a Python object per row (DESIGN principle 5).

Backed by `array.array`, whose item reads and writes are a few times cheaper than numpy's
(the twin reads and writes ledger cells many times per movement); `values` is a zero-copy
numpy view for vectorised work. Do not hold a view while appending: an array that exports its
buffer cannot grow (Python raises BufferError rather than corrupt it).
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


class Column:
    """An append-only column of one numpy dtype (int32, int64, float64, uint8 or bool)."""

    __slots__ = ("_data", "dtype", "fill")

    def __init__(self, dtype: npt.DTypeLike, fill: float = 0) -> None:
        self.dtype = np.dtype(dtype)
        try:
            code = _TYPECODES[self.dtype]
        except KeyError:
            raise ValueError(f"unsupported column dtype {self.dtype}") from None
        self.fill = fill
        self._data: array[Any] = array(code)

    def append(self, value: float) -> int:
        self._data.append(value)
        return len(self._data) - 1

    def grow(self) -> int:
        """Append the fill value."""
        self._data.append(self.fill)
        return len(self._data) - 1

    def __len__(self) -> int:
        return len(self._data)

    @property
    def values(self) -> npt.NDArray[Any]:
        """A numpy view of the column (writable; do not keep it across appends)."""
        if not self._data:
            return np.zeros(0, dtype=self.dtype)
        return np.frombuffer(self._data, dtype=self.dtype)

    def __getitem__(self, i: int) -> Any:
        return self._data[i]

    def __setitem__(self, i: int, v: float) -> None:
        self._data[i] = v
