"""Named random streams, all children of one seed (DESIGN principle 7).

Each stream is keyed by its *name*, not by the order in which it is first requested, so adding
a new stream (a new system, a new fault) does not shift the draws of the existing ones, and two
runs with the same seed draw identical numbers whatever order the model builds itself in.
"""

from __future__ import annotations

import hashlib

import numpy as np


def _spawn_key(name: str) -> tuple[int, ...]:
    # 128 bits of a stable hash, as four 32-bit words: collisions between names are out of
    # reach, unlike a single crc32 word (about even odds of one collision at 77k names).
    # Python's hash() is salted per process, so it cannot be used here.
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """A family of independent `numpy.random.Generator`s derived from one integer seed.

    `get(name)` returns the same Generator object for the same name (cached), seeded by
    `SeedSequence(seed, spawn_key=<hash of name>)`.
    """

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self._seed = seed
        self._streams: dict[str, np.random.Generator] = {}

    @property
    def seed(self) -> int:
        return self._seed

    def get(self, name: str) -> np.random.Generator:
        """The stream called `name`, created on first use."""
        rng = self._streams.get(name)
        if rng is None:
            if not name:
                raise ValueError("a stream needs a non-empty name")
            seq = np.random.SeedSequence(self._seed, spawn_key=_spawn_key(name))
            rng = self._streams[name] = np.random.Generator(np.random.PCG64(seq))
        return rng

    def names(self) -> list[str]:
        """Names of the streams requested so far, sorted."""
        return sorted(self._streams)
