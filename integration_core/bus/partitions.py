"""Partitions of the ordering keys, for several bus instances sharing one store.

A key lives in one partition for good (`partition_of`), so per-key order holds when each
partition has one owner at a time. The number of partitions is fixed per store when it is
created: more partitions than instances, so that any number of instances up to it gets a fair
share (`fair_share`). The hash is MD5's first 32 bits, because the database can compute the
same one (``('x' || substr(md5(key), 1, 8))::bit(32)``), which lets it backfill a log written
before partitions existed.
"""

from __future__ import annotations

import hashlib

PARTITIONS = 64
"""Partitions of a new store: enough for a fair split over up to 64 instances."""


def partition_of(key: str, partitions: int) -> int:
    """The partition of an ordering key: stable across processes, machines and versions."""
    return int(hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:8], 16) % partitions


def fair_share(partitions: int, live: int, rank: int = 0) -> int:
    """How many partitions the instance of rank `rank` (its place among the `live` instances'
    ids, sorted) aims to own: the first ``partitions % live`` one more than the others, so the
    shares add up to `partitions` and every partition finds an owner."""
    live = max(1, live)
    return partitions // live + (1 if rank < partitions % live else 0)
