"""Inventory domain: carrying each WMS movement to the ERP by the scenario's pattern.

- direct: a warehouse worker posts the movement and then calls the ERP itself, blocking until
  it answers, retrying a few times, then giving up (the update is lost to the ERP).
- orchestrated / event_driven: the worker hands the movement to the core (at-least-once, from
  an outbox that resends until the core acknowledges) and moves on; the core's bus delivers to
  the ERP with its retry policy. event_driven also reconciles on an interval (`sim.reconcile`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

from integration_core.bus import Delivery
from integration_core.engine import MOVEMENT, Engine, MovementRecord
from integration_core.envelope import Envelope
from integration_core.models import MovementKind
from sim.calls import direct_call
from sim.core import when
from sim.distributions import sampler
from sim.edi import Edi3pl, sender_ids
from sim.kernel import at
from sim.landscape import Landscape
from sim.scenario import Pattern
from sim.systems.endpoint import Status
from sim.systems.wms import KINDS

CONSUMER = "erp"
"""The engine's ERP consumer: the twin posts what it delivers to its ERP."""
OUTBOX_RESEND_S = (5.0, 10.0, 20.0, 40.0, 60.0)


def movement_id(idx: int) -> str:
    return f"mv-{idx}"


def movement_index(message_id: str) -> int:
    return int(message_id.rsplit("-", 1)[1])


class InventoryFlow:
    def __init__(self, twin: Landscape) -> None:
        self.t = twin
        sc = twin.scenario
        self.pattern = sc.patterns.resolved("inventory")
        self.posting = [sampler(w.posting_time_s, twin.streams.get(f"posting/{w.id}"))
                        for w in sc.warehouses]
        self.batches: list[list[int]] = [[] for _ in sc.warehouses]
        self.blocked_s = 0.0
        self.gave_up = 0
        self.outbox_resends = 0
        self.wms_down = [0] * len(sc.warehouses)
        """Per site, outages of its WMS in progress (they may overlap)."""
        self._row_names: dict[int, tuple[str, str, str, str]] = {}
        self.held: list[tuple[int, int]] = []
        """Movements that happened while the WMS was down, posted when it is back."""
        self.unacked: deque[tuple[float, int]] = deque()
        """First sends awaiting the core's acknowledgement, oldest first (see `_sweep`)."""
        self.edi_ids: dict[str, int] = {}
        """The core's ids of movements an EDI site reported -> their indices (see sim.edi)."""
        senders = sender_ids([w.id for w in sc.warehouses])
        self._batched = [bool(w.batch_minutes) for w in sc.warehouses]
        self._direct_pattern = self.pattern is Pattern.DIRECT
        self.edi = {w: Edi3pl(twin, w, cfg.edi, senders[w], self._record, self._kind,
                              self.edi_ids, partial(self._down, w))
                    for w, cfg in enumerate(sc.warehouses) if cfg.edi is not None}
        if self.pattern is not Pattern.DIRECT:
            twin.env.process(self._sweep())
            twin.core.subscribe(CONSUMER, [MOVEMENT], self._deliver)
            twin.core.erp_batch_handler = self._deliver_many
            twin.core.on_dead_letter = self._dead
        for w, cfg in enumerate(sc.warehouses):
            if cfg.batch_minutes:
                twin.env.process(self._batcher(w, cfg.batch_minutes * 60))

    # -- WMS side ----------------------------------------------------------------------------

    def on_movement(self, warehouse: int, row: int, kind: int, delta: int) -> None:
        """The WMS applied a movement to its stock; now it must reach the ERP."""
        # `_now`, not the `now` property (a Python call): the hot path reads the clock often.
        idx = self.t.truth.occur(row, delta, self.t.env._now)
        self.t.kinds.append(kind)
        if self.edi and warehouse in self.edi:
            self.edi[warehouse].add(idx)
        elif self._batched[warehouse]:
            self.batches[warehouse].append(idx)
        else:
            self._post(warehouse, idx)

    def _batcher(self, warehouse: int, every_s: float):  # type: ignore[no-untyped-def]
        """A 3PL reports what happened since the last report, every `every_s` seconds."""
        env = self.t.env
        while True:
            yield env.timeout(every_s)
            batch, self.batches[warehouse] = self.batches[warehouse], []
            for idx in batch:
                self._post(warehouse, idx)

    def set_wms_up(self, up: bool, warehouse: int | None = None) -> None:
        """A WMS outage (of one site, or of every site) begins (`up` False) or ends."""
        sites = range(len(self.wms_down)) if warehouse is None else [warehouse]
        for w in sites:
            self.wms_down[w] = max(0, self.wms_down[w] + (-1 if up else 1))
        if up:
            held, self.held = self.held, []
            for w, idx in held:
                self._post(w, idx)

    def _post(self, warehouse: int, idx: int) -> None:
        if self.wms_down[warehouse]:
            self.held.append((warehouse, idx))
            return
        posting = self.posting[warehouse]
        pool = self.t.wms_pools[warehouse]
        if self._direct_pattern:
            pool.submit(lambda done: at(self.t.env, posting(), self._direct, idx, done))
            return
        took = posting()
        if pool.hold(took):
            # A worker was free: it posts for `took` seconds and the message leaves then,
            # in one event (the worker is given back without one).
            self._handoff(idx, 0, None, after=took)
        else:
            def task(done: Callable[[], None]) -> None:
                at(self.t.env, took, self._handoff, idx, 0, done)

            pool.submit(task)

    # -- direct: the worker blocks on the ERP ------------------------------------------------

    def _direct(self, idx: int, done: Callable[[], None]) -> None:
        """The worker calls the ERP and waits (retrying) before it does anything else."""
        t = self.t
        start = t.env.now

        def final(status: Status, _value: object) -> None:
            if status is Status.OK:
                t.truth.acknowledged[idx] = True
            else:
                self.gave_up += 1
                t.truth.abandon(idx)
            self.blocked_s += t.env.now - start
            done()

        direct_call(t.env, t.links["wms_erp"], t.erp_api, lambda: t.erp.post_movement(idx),
                    t.scenario.direct, final, t.count_call("erp"))

    # -- through the core --------------------------------------------------------------------

    def _handoff(self, idx: int, resends: int, done: Callable[[], None] | None,
                 after: float = 0.0) -> None:
        """Send the movement to the core (`after` seconds from now, when the posting ends);
        the worker is free once it is sent. The outbox resends until the core's
        acknowledgement comes back (its callers check that it has not yet)."""
        t = self.t
        if done is not None:
            done()
        rec = self._record(idx)
        t.links["wms_core"].send_after(after, self._ingress, idx, rec)
        if resends == 0:
            self.unacked.append((t.env._now + after, idx))  # `_now`: see on_movement
        else:
            wait = OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)]
            at(t.env, wait, self._resend, idx, resends + 1)

    def _sweep(self) -> Generator[Any, Any, None]:
        """The outbox's first resend, checked every OUTBOX_RESEND_S[0] seconds for all
        movements at once: a timer per movement would double the events per movement.
        Later resends (rare) have timers of their own."""
        env, wait, unacked = self.t.env, OUTBOX_RESEND_S[0], self.unacked
        truth = self.t.truth
        while True:
            yield env.timeout(wait)
            now = env.now  # read once: a resend takes no simulated time
            horizon = now - wait
            while unacked and unacked[0][0] <= horizon:
                _, idx = unacked.popleft()
                if not truth.acked(idx, now):
                    self._resend(idx, 1)

    def _resend(self, idx: int, resends: int) -> None:
        if not self.t.truth.acked(idx, self.t.env.now):
            self.outbox_resends += 1
            self._handoff(idx, resends, None)

    def _ingress(self, idx: int, rec: MovementRecord) -> None:
        t = self.t
        ack_at = t.truth.ack_at
        if t.core.accept_movement(rec, self._row_names[t.truth.row[idx]][3]):
            arrives = t.links["wms_core"].arrival()
            if arrives is not None and arrives < ack_at[idx]:
                ack_at[idx] = arrives

    def _record(self, idx: int) -> MovementRecord:
        t = self.t
        truth = t.truth
        row, delta = truth.row[idx], truth.delta[idx]
        names = self._row_names.get(row) or self._names(row)
        kind = t.kinds[idx]
        occurred = when(truth.occurred_at[idx])
        mid = f"mv-{idx}"  # movement_id(idx), inline: once per movement
        # Built without validation: the simulator is a trusted producer whose payloads are
        # canonical Movement documents (tests/sim/test_inventory.py checks that they validate).
        return MovementRecord(mid, names[2], occurred, {
            "movement_id": mid, "kind": _KIND_VALUES[kind], "sku": names[0],
            "location": names[1],
            "quantity": str(abs(delta) if _DIRECTIONAL[kind] else delta),
            "quantity_base": delta, "occurred_at": occurred.isoformat(),
        })

    def _names(self, row: int) -> tuple[str, str, str, str]:
        """(sku, warehouse, ordering key, source) of a row, built once per row."""
        names = self._row_names.get(row)
        if names is None:
            sku, wh = self.t.sku_name(row), self.t.warehouse_name(row)
            names = self._row_names[row] = (sku, wh, f"{sku}@{wh}", f"wms-{wh}")
        return names

    def _dead(self, env: Envelope) -> None:
        """A dead letter reaches the ERP only if someone requeues it: until then it is lost
        (unexplained divergence), not in flight."""
        if env.type == MOVEMENT:
            self.t.truth.abandon(self.index_of(env))

    def _deliver(self, d: Delivery, ack: Callable[[], None],
                 nack: Callable[[BaseException], None]) -> None:
        """The engine's ERP consumer: post to the ERP with the idempotency key, one movement
        a call (the twin's ERP has no bulk endpoint yet)."""

        def result(_answer: object, error: BaseException | None) -> None:
            ack() if error is None else nack(error)

        self.t.partners.post(Engine.posting(d), result)

    def _deliver_many(self, ds: list[Delivery], ack: Callable[[], None],
                      nack: Callable[[BaseException], None]) -> None:
        """A batch of the ERP consumer's deliveries to the ERP's bulk endpoint, one call."""

        def result(_answer: object, error: BaseException | None) -> None:
            ack() if error is None else nack(error)

        self.t.partners.post_many([Engine.posting(d) for d in ds], result)

    def post(self, posting: dict[str, object]) -> str:
        """The ERP twin's posting operation (served through the partner port)."""
        self.t.erp.post_movement(self.index(str(posting["movement_id"])))
        return "applied"

    def index(self, mid: str) -> int:
        """The ground-truth index of a movement id (the twin's own, or an EDI site's)."""
        idx = self.edi_ids.get(mid) if self.edi_ids else None
        return movement_index(mid) if idx is None else idx

    def index_of(self, env: Envelope) -> int:
        return self.index(str(env.payload["movement_id"]))

    def edi_settled(self) -> bool:
        return all(site.settled() for site in self.edi.values())

    def edi_counts(self) -> dict[str, int]:
        """The EDI sites' counts, summed (none without an EDI site)."""
        out: dict[str, int] = {}
        for site in self.edi.values():
            for k, v in site.counts.items():
                out[k] = out.get(k, 0) + v
        return out

    def _kind(self, idx: int) -> MovementKind:
        return KINDS[int(self.t.kinds[idx])]

    def _down(self, warehouse: int) -> bool:
        return bool(self.wms_down[warehouse])


_KIND_VALUES = [k.value for k in KINDS]
_DIRECTIONAL = [k.value not in ("adjustment", "cycle_count") for k in KINDS]
"""Per kind index: whether the quantity is unsigned (its kind gives the direction)."""
