"""Growable numpy columns: flat records without a Python object per row (DESIGN principle 5)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class Column:
    """An append-only numpy array that doubles its capacity when full."""

    __slots__ = ("_data", "fill", "n")

    def __init__(self, dtype: npt.DTypeLike, capacity: int = 1024, fill: float = 0) -> None:
        self.fill = fill
        self._data = np.full(capacity, fill, dtype=dtype)
        self.n = 0

    def _double(self) -> None:
        self._data = np.concatenate([self._data, np.full_like(self._data, self.fill)])

    def append(self, value: float) -> int:
        if self.n == len(self._data):
            self._double()
        self._data[self.n] = value
        self.n += 1
        return self.n - 1

    def grow(self) -> int:
        """Append the fill value (the array is pre-filled with it): the cheapest append."""
        if self.n == len(self._data):
            self._double()
        self.n += 1
        return self.n - 1

    def __len__(self) -> int:
        return self.n

    @property
    def values(self) -> npt.NDArray[Any]:
        """A view of the filled part."""
        return self._data[: self.n]

    def __getitem__(self, i: int) -> float:
        return self._data[i]  # type: ignore[no-any-return]

    def __setitem__(self, i: int, v: float) -> None:
        self._data[i] = v
