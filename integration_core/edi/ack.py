"""Acknowledgments: the TA1 for the interchange envelope, a 997 per functional group.

Which findings reject and which are only noted is policy, kept here as data: envelope and
set-trailer errors reject; a bad ISA padding, a misplaced or malformed segment is noted ("E")
and the set is still processed when it can be mapped; a set that cannot be processed is
rejected ("R") whatever its syntax.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from integration_core.edi.document import (
    COMPONENT,
    FunctionalGroup,
    Interchange,
    Segment,
    TransactionSet,
)
from integration_core.edi.envelope import make_set
from integration_core.edi.errors import (
    EdiError,
    ElementCode,
    GroupCode,
    NoteCode,
    SegmentCode,
    SetCode,
)
from integration_core.edi.syntax import release_of

#: Envelope findings that let the interchange through, noted in TA104 "E".
NOTED: frozenset[NoteCode] = frozenset(
    {NoteCode.AUTH_VALUE, NoteCode.SECURITY_VALUE, NoteCode.SENDER_ID, NoteCode.RECEIVER_ID}
)
#: Segment findings that reject the set (the others are noted, AK501 "E").
REJECTING_SEGMENT: frozenset[SegmentCode] = frozenset({SegmentCode.MANDATORY_MISSING})


def interchange_verdict(errors: Iterable[EdiError]) -> tuple[str, NoteCode | None]:
    """TA104 and TA105: ("A", None), ("E", first noted code) or ("R", first rejecting)."""
    notes = [e.code for e in errors if isinstance(e.code, NoteCode)]
    rejecting = [c for c in notes if c not in NOTED]
    if rejecting:
        return "R", rejecting[0]
    return ("E", notes[0]) if notes else ("A", None)


def ta1(ic: Interchange, code: str, note: NoteCode | None) -> Segment:
    isa = ic.header
    return Segment("TA1", (isa.get(13), isa.get(9), isa.get(10), code, note or "000"))


def set_verdict(errors: Sequence[EdiError], processed: bool) -> str:
    """AK501: "R" when not processed or rejected by policy, "E" with findings, else "A"."""
    if not processed or any(
        isinstance(e.code, SetCode) or e.code in REJECTING_SEGMENT for e in errors
    ):
        return "R"
    return "E" if errors else "A"


def group_rejected(errors: Iterable[EdiError]) -> bool:
    return any(isinstance(e.code, GroupCode) for e in errors)


def _seg(tag: str, *elements: str) -> Segment:
    """A segment without trailing empty elements (an absent AK404 is not written)."""
    values = list(elements)
    while values and not values[-1]:
        values.pop()
    return Segment(tag, tuple(values))


def _ak3_ak4(errors: Sequence[EdiError]) -> list[Segment]:
    """AK3 per segment in error (structure codes first), each followed by its AK4s."""
    out: list[Segment] = []
    by_segment: dict[tuple[int, str], list[EdiError]] = {}
    for e in errors:
        if isinstance(e.code, SegmentCode | ElementCode):
            by_segment.setdefault((e.segment_position, e.segment_id), []).append(e)
    for (position, tag), found in sorted(by_segment.items()):
        loop = next((e.loop for e in found if e.loop), "")
        for e in found:
            if isinstance(e.code, SegmentCode):
                out.append(_seg("AK3", tag, str(position), loop, e.code.value))
        elements = [e for e in found if isinstance(e.code, ElementCode)]
        if elements:
            out.append(_seg("AK3", tag, str(position), loop, SegmentCode.ELEMENT_ERRORS))
        for e in elements:
            at = str(e.element_position)
            if e.component_position:
                at += COMPONENT + str(e.component_position)
            bad = e.value[:99] if e.value.isprintable() else ""
            ref = str(e.element_ref) if e.element_ref else ""
            out.append(_seg("AK4", at, ref, e.code.value, bad))
    return out


def _body_997(
    group: FunctionalGroup,
    group_index: int,
    errors: Sequence[EdiError],
    processed: Sequence[bool],
) -> tuple[list[Segment], str]:
    mine = [e for e in errors if e.group == group_index]
    release = release_of(group.version) or "004010"
    ak1 = (group.functional_id, group.control)
    body = [Segment("AK1", (*ak1, group.version) if release >= "005010" else ak1)]
    accepted = 0
    group_bad = group_rejected(mine)
    for s, ts in enumerate(group.sets):
        found = [e for e in mine if e.set_index == s]
        verdict = "R" if group_bad else set_verdict(found, processed[s])
        accepted += verdict != "R"
        ak2 = (ts.code, ts.control)
        body.append(Segment("AK2", (*ak2, ts.segments[0].get(3)) if ts.segments[0].get(3)
                            else ak2))  # fmt: skip
        body += _ak3_ak4(found)
        codes = [e.code.value for e in found if isinstance(e.code, SetCode)]
        if any(isinstance(e.code, SegmentCode | ElementCode) for e in found) and verdict == "R":
            codes.append(SetCode.SEGMENTS_IN_ERROR.value)
        body.append(Segment("AK5", (verdict, *dict.fromkeys(codes))))
    group_codes = [e.code.value for e in mine if isinstance(e.code, GroupCode) and e.set_index < 0]
    received = len(group.sets)
    if group_bad or (accepted == 0 and received):
        code = "R"
    elif accepted < received:
        code = "P"
    elif any(e.set_index >= 0 for e in mine):
        code = "E"
    else:
        code = "A"
    declared = group.trailer.get(1) if group.trailer is not None else str(received)
    body.append(Segment("AK9", (code, declared, str(received), str(accepted),
                                *list(dict.fromkeys(group_codes))[:5])))  # fmt: skip
    return body, code


def functional_ack(
    group: FunctionalGroup,
    group_index: int,
    errors: Sequence[EdiError],
    processed: Sequence[bool],
    control: str,
) -> TransactionSet:
    """The 997 for `group`: AK1, an AK2 .. AK5 per set, AK9. `processed[i]` says whether set
    i was taken; `errors` are all findings of the interchange (this group's are picked)."""
    body, _ = _body_997(group, group_index, errors, processed)
    return make_set("997", control, body)
