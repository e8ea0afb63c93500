"""One instance's part in a bus that several instances share on one PostgreSQL schema.

Each instance runs its own `Bus` over its own `PostgresStore` opened with an instance id (shared
mode). `Membership` ties the two: the bus queues only the keys of the partitions whose leases
this instance holds (`Bus.owns`), and queues nothing when it publishes (`Bus.queue_published`
off): every instance finds the new messages of its partitions in the log (`tail`), whoever
published them, so messages of one key enter its queue in log order. A lease gained is
recovered from the log (its messages not yet in a consumer's inbox, as after a restart); a
lease lost or given up is forgotten (its queues dropped; the fence refuses whatever of it was
still under way).

The driver calls `heartbeat` every third of the lease's time to live (and at once after a
`Fenced` error), `tail` before each delivery round. Both are synchronous database calls.
"""

from __future__ import annotations

from collections.abc import Callable

from integration_core.bus.core import Bus
from integration_core.bus.partitions import partition_of
from integration_core.bus.postgres import LeaseChange, PostgresStore

TAIL_PAGE = 5000
"""Messages read from the log per query."""


class Membership:
    def __init__(self, bus: Bus, store: PostgresStore) -> None:
        if store.instance is None:
            raise ValueError("Membership needs a PostgresStore opened with an instance id")
        self.bus = bus
        self.store = store
        self.takeovers = 0
        """Partitions claimed after the first heartbeat (from an instance gone, or given)."""
        self.recovered = 0
        """Deliveries queued from the log for partitions claimed."""
        self._beats = 0
        bus.owns = store.owns
        bus.queue_published = False
        # Whatever the bus queued before (nothing on a shared store: it owned no partition).
        bus.forget(lambda key: not store.owns(key))

    def partition(self, key: str) -> int:
        return partition_of(key, self.store.partitions)

    def of(self, partitions: set[int]) -> Callable[[str], bool]:
        """The ordering keys of these partitions."""
        n = self.store.partitions
        return lambda key: partition_of(key, n) in partitions

    def heartbeat(self, now: float) -> LeaseChange:
        change = self.store.heartbeat()
        gone = change.lost | change.released
        if gone:
            self.bus.forget(self.of(gone))
        claimed = {p for p in change.claimed if p >= 0}
        if claimed:
            if self._beats:
                self.takeovers += len(claimed)
            self.recover(claimed, now)
        self._beats += 1
        return change

    def recover(self, partitions: set[int], now: float) -> int:
        """Queue the messages of these (newly owned) partitions that a consumer has not
        processed, up to what `tail` read; they may have been delivered before."""
        n = 0
        for consumer in self.bus.consumers:
            saved = self.store.subscription(consumer)
            if saved is None:
                continue
            types, start = saved
            starts = self.store.partition_starts(consumer)
            by_start: dict[int, set[int]] = {}
            for p in partitions:
                by_start.setdefault(starts.get(p, start), set()).add(p)
            for first, group in sorted(by_start.items()):
                n += self.bus.adopt(
                    self.store.unfinished_in(consumer, types, first, group, self.store.tailed),
                    now, consumer, recovered=True)
        self.recovered += n
        return n

    def advance(self) -> None:
        """Save, per partition owned and consumer, where a takeover's recovery would have to
        start: its lowest queued position, or past what the tail read when nothing of it is
        queued (all of it up to there is done)."""
        store = self.store
        owned = {p for p in store.owned if p >= 0}
        after = store.tailed + 1
        with store.batch():
            for consumer in self.bus.consumers:
                starts = dict.fromkeys(owned, after)
                for key, position in self.bus.lowest_queued(consumer).items():
                    p = self.partition(key)
                    if p in starts:
                        starts[p] = min(starts[p], position)
                store.save_partition_starts(consumer, starts)

    def start(self, consumer: str) -> int:
        """The lowest start of the consumer over all partitions: from there a scan of the
        whole log finds everything not yet done."""
        saved = self.store.subscription(consumer)
        start = 1 if saved is None else saved[1]
        starts = self.store.partition_starts(consumer)
        if len(starts) >= self.store.partitions:
            return min(starts.values())
        return min([start, *starts.values()])

    def tail(self, now: float) -> int:
        """Queue what was published (here or elsewhere) in the partitions owned since the
        last call; returns how many deliveries that queued."""
        n = 0
        while True:
            entries = self.store.tail(TAIL_PAGE)
            n += self.bus.adopt(entries, now)
            if len(entries) < TAIL_PAGE:
                return n
