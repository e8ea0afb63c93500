"""The sans-I/O X12 gateway: bytes in; the acknowledgment, canonical messages, errors and
dead letters out. It never raises on bad input and never drops anything silently: whatever
is not mapped is in `Receipt.dead_letters` with the raw interchange and the cause.

Duplicates are recognised by (ISA06 sender, ISA13 control number) through a small `Seen`
port, shaped like the bus store's `Tx` so the live service can back it by its store (in the
same transaction as publishing the messages). Only interchanges that were not rejected are
recorded: a partner's corrected resend may reuse a rejected control number.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from integration_core.edi.ack import (
    functional_ack,
    group_rejected,
    interchange_verdict,
    set_verdict,
    ta1,
)
from integration_core.edi.delimiters import Delimiters
from integration_core.edi.document import Interchange, Segment, TransactionSet
from integration_core.edi.envelope import wrap
from integration_core.edi.errors import AppCode, EdiError, NoteCode
from integration_core.edi.mapping import Context, map_set
from integration_core.edi.parser import Limits, parse
from integration_core.edi.records import AckRecord, Message
from integration_core.edi.serializer import serialize
from integration_core.edi.syntax import check_interchange, release_of
from integration_core.models import Catalog

SEEN_NS = "edi.interchange"
CONTROL_NS = "edi.control"
_MAX_CONTROL = 999_999_999


class Seen(Protocol):
    """Key -> JSON value storage for the interchanges seen and our own control numbers."""

    def get(self, ns: str, key: str) -> Any: ...

    def put(self, ns: str, key: str, value: Any) -> None: ...


class MemorySeen:
    """`Seen` in a dict, for tests and the twin."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any:
        return self.data.get((ns, key))

    def put(self, ns: str, key: str, value: Any) -> None:
        self.data[(ns, key)] = value


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What could not be processed: the raw interchange, why, and which set (if one)."""

    raw: bytes
    cause: str
    received_at: float
    interchange: str = ""
    set_code: str = ""
    set_control: str = ""
    errors: tuple[EdiError, ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    ack: bytes | None
    """The reply interchange (a TA1 and/or a 997 per group); None when the input has no
    readable ISA to address a reply to, or is itself an acknowledgment without errors."""
    messages: tuple[Message, ...]
    errors: tuple[EdiError, ...]
    dead_letters: tuple[DeadLetter, ...]
    duplicate: bool = False


def interchange_key(ic: Interchange) -> str:
    control = ic.control.strip()
    return f"{ic.sender}|{int(control) if control.isdigit() else control}"


class Gateway:
    def __init__(
        self,
        seen: Seen,
        *,
        limits: Limits | None = None,
        catalog: Catalog | None = None,
        delimiters: Delimiters | None = None,
    ) -> None:
        self.seen = seen
        self.limits = limits or Limits()
        self.catalog = catalog
        self.delimiters = delimiters
        """Delimiters of our replies; None answers in the partner's own."""

    def receive(self, raw: bytes, received_at: float) -> Receipt:
        try:
            return self._receive(raw, received_at)
        except Exception as exc:  # a bug of ours must not lose the partner's file either
            err = EdiError(AppCode.INTERNAL, f"internal error: {exc!r}")
            return Receipt(None, (), (err,), (DeadLetter(raw, err.message, received_at,
                                                         errors=(err,)),))  # fmt: skip

    def _receive(self, raw: bytes, received_at: float) -> Receipt:
        parsed = parse(raw, self.limits)
        ic = parsed.interchange
        if ic is None:
            letter = DeadLetter(raw, parsed.errors[0].message, received_at, errors=parsed.errors)
            return Receipt(None, (), parsed.errors, (letter,))
        key = interchange_key(ic)
        when = datetime.fromtimestamp(received_at, UTC)
        if self.seen.get(SEEN_NS, key) is not None:
            dup = EdiError(NoteCode.DUPLICATE, f"interchange {ic.control} from {ic.sender} was "
                           "received before", segment_id="ISA", segment_position=1,
                           element_position=13, value=ic.control)  # fmt: skip
            reply = self._reply(ic, when, ta1(ic, "R", NoteCode.DUPLICATE), [])
            return Receipt(reply, (), (dup,), (), duplicate=True)
        errors = [*parsed.errors, *check_interchange(ic)]
        code, note = interchange_verdict(errors)
        messages: list[Message] = []
        dead: list[DeadLetter] = []
        acks: list[TransactionSet] = []
        if code == "R":
            dead.append(DeadLetter(raw, _cause(errors), received_at, key, errors=tuple(errors)))
        else:
            for g, group in enumerate(ic.groups):
                ctx = Context(ic.sender, ic.control, group, self.catalog)
                bad_group = group_rejected(e for e in errors if e.group == g)
                processed = []
                for s, ts in enumerate(group.sets):
                    found = [e for e in errors if e.group == g and e.set_index == s]
                    ok = not bad_group and set_verdict(found, True) != "R"
                    if ok:
                        got, problems = map_set(ts, ctx)
                        found += [replace(e, group=g, set_index=s) for e in problems]
                        errors += found[len(found) - len(problems) :]
                        ok = not problems
                        messages += got
                    if not ok:
                        dead.append(
                            DeadLetter(
                                raw,
                                _cause(found or errors),
                                received_at,
                                key,
                                ts.code,
                                ts.control,
                                tuple(found),
                            )
                        )
                    processed.append(ok)
                if group.functional_id != "FA":  # an acknowledgment is not acknowledged
                    acks.append(functional_ack(group, g, errors, processed,
                                               f"{len(acks) + 1:04d}"))  # fmt: skip
            messages += [AckRecord("TA1", n.get(1), n.get(4), detail=n.get(5)) for n in ic.notes]
            self.seen.put(SEEN_NS, key, {"received_at": received_at, "code": code})
        note_seg = ta1(ic, code, note) if code != "A" or ic.header.get(14) == "1" else None
        answer = self._reply(ic, when, note_seg, acks) if note_seg or acks else None
        return Receipt(answer, tuple(messages), tuple(errors), tuple(dead))

    def _reply(self, ic: Interchange, when: datetime, note: Segment | None,
               acks: list[TransactionSet]) -> bytes:  # fmt: skip
        control = (self.seen.get(CONTROL_NS, "isa13") or 0) % _MAX_CONTROL + 1
        self.seen.put(CONTROL_NS, "isa13", control)
        release = next((r for g in ic.groups if (r := release_of(g.version))), "004010")
        d = self.delimiters or ic.delimiters
        if (
            release >= "005010"
            and not d.repetition
            and "^" not in (d.element, d.component, d.segment)
        ):
            d = replace(d, repetition="^")
        isa = ic.header
        out = wrap(acks, functional_id="FA", sender=(isa.get(7), isa.get(8)),
                   receiver=(isa.get(5), isa.get(6)), control=control, when=when,
                   release=release, delimiters=d, notes=[note] if note else [])  # fmt: skip
        return serialize(out)


def _cause(errors: list[EdiError]) -> str:
    return errors[0].message if errors else "not processed"
