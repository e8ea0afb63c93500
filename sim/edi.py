"""A warehouse that reports over X12 EDI (a 3PL): the partner's side, in SimPy time.

The 3PL's translator gathers the site's movements for `edi.interval_min`, then writes one
interchange per document type with `integration_core.edi` (944 for receipts, returns and
transfers in; 943 for transfers out; 947 for everything else, a signed adjustment) and sends
it over the wms_core link (a VAN or AS2), or drops it as a file the core polls for. The core
takes it through the same `EdiInbox` the live route runs (`TwinCore.accept_interchange`):
the gateway parses and checks it, the movements are published on the bus, the reply (997 /
TA1) is kept for duplicates. This module only supplies time and transport: when the bytes
arrive, when the reply does (or that it never does), when the 3PL resends.

The 3PL's policy: an interchange without a 997 after `resend_after_min` is sent again, the
same bytes (same ISA13, which the core recognises as a duplicate), up to `resend_max` times;
a rejected one (997 R or TA1 R: a defect injected with `reject_p`) is sent again corrected
under a new ISA13. The core names the movements of an interchange from its sender, ISA13,
set control number and line; the observer (like `sim.truth`) learns those names by mapping
the 3PL's own sets with the gateway's mapper, so the ERP's postings find their movements.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from integration_core.edi import (
    Context,
    Interchange,
    Segment,
    TransactionSet,
    map_set,
    serialize,
)
from integration_core.edi.envelope import make_set, wrap
from integration_core.engine import MovementRecord
from integration_core.feed import Verdict
from integration_core.models import Catalog, Movement, MovementKind
from sim.core import when
from sim.distributions import sampler
from sim.kernel import at
from sim.landscape import Landscape
from sim.scenario import EdiConfig

US = ("ZZ", "TWIN")
"""The core's interchange address (ISA07/08)."""
DOCUMENT: dict[MovementKind, str] = {
    MovementKind.RECEIPT: "944", MovementKind.TRANSFER_IN: "944", MovementKind.RETURN: "944",
    MovementKind.TRANSFER_OUT: "943",
    MovementKind.PICK: "947", MovementKind.SCRAP: "947", MovementKind.ADJUSTMENT: "947",
    MovementKind.CYCLE_COUNT: "947",
}  # fmt: skip
"""Which set reports a movement kind (the ones the gateway maps to canonical movements)."""
GROUP = {"944": "RE", "943": "AR", "947": "AW"}
REASON = {MovementKind.PICK: "PK", MovementKind.SCRAP: "SC", MovementKind.ADJUSTMENT: "AA",
          MovementKind.CYCLE_COUNT: "CC"}
"""W19-01 of a 947: the twin's own codes, saying which kind of movement it was."""
ACCEPTED = (Verdict.ACCEPTED, Verdict.PARTIAL)
DEFECTS = ("se01", "iea02")
"""A wrong SE01 count (the set is rejected: 997 AK5 R 4) or an IEA02 that is not the ISA13
(the interchange is rejected: TA1 R 001)."""
COUNTS = ("edi_interchanges_sent", "edi_interchanges_resent", "edi_interchanges_corrected",
          "edi_interchanges_rejected", "edi_997_missing", "edi_duplicates_recognised",
          "edi_interchanges_given_up", "edi_movements_given_up", "edi_zero_counts_unsent")


def sender_ids(names: list[str]) -> list[str]:
    """An ISA06 per site (15 characters at most, unique: the core's duplicate check keys on
    sender and ISA13)."""
    out: list[str] = []
    for i, name in enumerate(names):
        sid = re.sub(r"[^A-Z0-9]", "", name.upper())[:15] or "THREEPL"
        if sid in out:
            sid = f"{sid[:11]}{i:04d}"
        out.append(sid)
    return out


@dataclass(slots=True)
class Sent:
    """One interchange the 3PL sent, and what became of it."""

    control: int
    raw: bytes
    moves: list[int]
    """Ground-truth indices of its movements, in line order."""
    sends: int = 1
    replied_at: float = math.inf
    """When the first reply reached the 3PL (inf: none yet)."""
    accepted: bool = False
    """What that reply said."""
    received: bool = False
    """The core carried it out (observer's knowledge, for what is lost if the 3PL gives up)."""
    done: bool = False


class Edi3pl:
    """One EDI site: `add` takes each movement the WMS applied; a process sends them."""

    def __init__(self, land: Landscape, warehouse: int, cfg: EdiConfig, sender: str,
                 record: Callable[[int], MovementRecord], kind_of: Callable[[int], MovementKind],
                 ids: dict[str, int], down: Callable[[], bool]) -> None:
        """`record(idx)`: the movement as the API path would publish it (its SKU, location,
        quantity); `ids`: the observer's map from the core's movement ids to truth indices,
        filled here; `down()`: the site's WMS is down (nothing is sent meanwhile)."""
        self.land, self.w, self.cfg = land, warehouse, cfg
        self.env = land.env
        self.sender = sender
        self.record, self.kind_of, self.ids, self.down = record, kind_of, ids, down
        site = land.scenario.warehouses[warehouse].id
        self.source = f"wms-{site}"
        name = f"edi/{site}"
        streams = land.streams
        self._latency = sampler(cfg.ack_latency_s, streams.get(f"{name}/ack_latency"))
        self._missing = streams.get(f"{name}/ack_missing")
        self._reject = streams.get(f"{name}/reject")
        self.catalog: Catalog = land.core.catalog
        self.pending: list[int] = []
        self.control = 0
        self.counts: Counter[str] = Counter({k: 0 for k in COUNTS})
        self.open: dict[int, Sent] = {}
        """Interchanges sent and not done with (no 997 yet, or a rejection not acted on)."""
        land.env.process(self._schedule())

    # -- the 3PL's side ----------------------------------------------------------------------

    def add(self, idx: int) -> None:
        truth = self.land.truth
        if int(truth.delta[idx]) == 0:
            # A count that found no difference: a 947 cannot carry a zero adjustment, so the
            # 3PL reports nothing and there is nothing for the ERP to apply.
            truth.acknowledged[idx] = True
            truth.applied_once_more(idx)
            self.counts["edi_zero_counts_unsent"] += 1
            return
        self.pending.append(idx)

    def _schedule(self) -> Generator[Any, Any, None]:
        every = self.cfg.interval_min * 60
        while True:
            yield self.env.timeout(every)
            if self.pending and not self.down():
                batch, self.pending = self.pending, []
                by_set: dict[str, list[int]] = {}
                for idx in batch:
                    by_set.setdefault(DOCUMENT[self.kind_of(idx)], []).append(idx)
                for code in sorted(by_set):
                    defect = ""
                    if self.cfg.reject_p and self._reject.random() < self.cfg.reject_p:
                        defect = DEFECTS[int(self._reject.integers(len(DEFECTS)))]
                    self._send(self._build(code, by_set[code], defect))

    def _build(self, code: str, moves: list[int], defect: str = "") -> Sent:
        """The interchange for `moves` under the next ISA13; the core's ids of its movements
        go into `ids` (unless it is defective: then it will publish nothing)."""
        self.control = self.control % 999_999_999 + 1
        now = self.env.now
        at_ = when(now)
        records = [self.record(i) for i in moves]
        location = str(records[0].payload["location"])
        ts = _set(code, f"{self.control:04d}", location, at_, records,
                  [self.kind_of(i) for i in moves])
        ic = wrap([ts], functional_id=GROUP[code], sender=("ZZ", self.sender), receiver=US,
                  control=self.control, when=at_)
        if not defect:
            got, errors = map_set(ts, Context(ic.sender, ic.control, ic.groups[0], self.catalog))
            if errors:  # a bug of ours: the twin writes only what the gateway maps
                raise RuntimeError(f"the 3PL's {code} does not map: {errors[0].message}")
            for m, idx in zip(got, moves, strict=True):
                assert isinstance(m, Movement)
                self.ids[m.movement_id] = idx
        return Sent(self.control, serialize(_defective(ic, defect)), moves)

    def _send(self, s: Sent) -> None:
        self.open[s.control] = s
        self.counts["edi_interchanges_sent"] += 1
        self._transmit(s)

    def _transmit(self, s: Sent) -> None:
        if self.cfg.transport == "van":
            self.land.links["wms_core"].send(self._arrive, s)
        else:  # dropped in the folder: the core takes it on its next poll
            poll = self.cfg.poll_min * 60
            at(self.env, _next(self.env.now, poll) - self.env.now, self._arrive, s)
        at(self.env, self.cfg.resend_after_min * 60, self._check, s, s.sends)

    def _check(self, s: Sent, sends: int) -> None:
        """`resend_after_min` after a send: done, corrected, resent or given up."""
        if s.done or s.sends != sends:
            return
        if s.replied_at <= self.env.now:
            self._done(s)
            if not s.accepted:  # rejected: the same movements again, corrected
                self.counts["edi_interchanges_corrected"] += 1
                self._send(self._build(self._code(s), s.moves))
            return
        if s.sends > self.cfg.resend_max:
            self._done(s)
            self.counts["edi_interchanges_given_up"] += 1
            if not s.received:
                for idx in s.moves:
                    self.land.truth.abandon(idx)
                self.counts["edi_movements_given_up"] += len(s.moves)
            return
        s.sends += 1
        self.counts["edi_interchanges_resent"] += 1
        self._transmit(s)

    def _done(self, s: Sent) -> None:
        s.done = True
        del self.open[s.control]

    def settled(self) -> bool:
        """Nothing gathered and nothing sent that the 3PL still waits on."""
        return not self.pending and not self.open

    def _code(self, s: Sent) -> str:
        return DOCUMENT[self.kind_of(s.moves[0])]

    # -- the core's side of the wire ---------------------------------------------------------

    def _arrive(self, s: Sent) -> None:
        """A copy of the interchange reaches the core, which carries it out and replies."""
        outcome = self.land.core.accept_interchange(s.raw, self.source)
        if outcome is None:
            return  # the core is down: no reply, the 3PL will resend
        if outcome.verdict is Verdict.DUPLICATE:
            self.counts["edi_duplicates_recognised"] += 1
            accepted = outcome.original in ACCEPTED
        elif outcome.verdict in ACCEPTED:
            s.received = True
            accepted = True
        else:
            self.counts["edi_interchanges_rejected"] += 1
            accepted = False
        if self.cfg.ack_missing_p and self._missing.random() < self.cfg.ack_missing_p:
            self.counts["edi_997_missing"] += 1
            return
        now = self.env.now
        if self.cfg.transport == "van":
            reply_at = now + self._latency()
        else:  # written beside the file; the 3PL reads it when it next drops one
            reply_at = _next(now, self.cfg.interval_min * 60)
        if reply_at < s.replied_at:
            s.replied_at, s.accepted = reply_at, accepted
            if accepted:
                ack_at = self.land.truth.ack_at
                for idx in s.moves:
                    ack_at[idx] = min(float(ack_at[idx]), reply_at)


def _next(now: float, every: float) -> float:
    """The next multiple of `every` after `now` (a poll or a drop on the schedule)."""
    return (math.floor(now / every) + 1) * every


def _set(code: str, control: str, location: str, at_: datetime,
         records: list[MovementRecord], kinds: list[MovementKind]) -> TransactionSet:
    """A 944, 943 or 947 reporting the movements (quantities in base units)."""
    day = at_.strftime("%Y%m%d")
    ref = f"{location}-{control}"
    lines: list[Segment] = []
    total = 0
    for n, (r, kind) in enumerate(zip(records, kinds, strict=True), 1):
        sku, delta = str(r.payload["sku"]), int(r.payload["quantity_base"])
        lines.append(Segment("LX", (str(n),)))
        if code == "947":
            lines.append(Segment("W19", (REASON[kind], str(delta), "EA", "", "VN", sku)))
        else:
            lines.append(Segment("W07" if code == "944" else "W04",
                                 (str(abs(delta)), "EA", "", "VN", sku)))
        total += abs(delta)
    if code == "944":
        body = [Segment("W17", ("F", day, ref)), Segment("N1", ("WH", "", "91", location)),
                *lines, Segment("W14", (str(total),))]
    elif code == "943":
        body = [Segment("W06", ("N", ref, day)), Segment("N1", ("SF", "", "91", location)),
                Segment("W27", ("M", "OWN")), *lines, Segment("W03", (str(total),))]
    else:
        body = [Segment("W15", (day, ref)), Segment("N1", ("WH", "", "91", location)), *lines]
    return make_set(code, control, body)


def _defective(ic: Interchange, defect: str) -> Interchange:
    if defect == "se01":
        ts = ic.groups[0].sets[0]
        se = ts.segments[-1]
        bad = TransactionSet((*ts.segments[:-1], Segment("SE", (str(int(se.get(1)) + 1),
                                                                se.get(2)))))
        return replace(ic, groups=(replace(ic.groups[0], sets=(bad,)),))
    if defect == "iea02":
        assert ic.trailer is not None
        control = int(ic.trailer.get(2)) % 999_999_999 + 1
        return replace(ic, trailer=Segment("IEA", (ic.trailer.get(1), f"{control:09d}")))
    return ic
