"""Reading an interchange: limits, delimiters, segments, then the envelopes.

The envelope walk is a table ``(where, tag) -> (where next, steps)``: the steps open and close
groups and sets and report what a missing trailer or a stray segment means. Control numbers and
counts are checked as each trailer closes its envelope. Set contents are checked by `syntax`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from integration_core.edi.delimiters import Delimiters, sniff
from integration_core.edi.document import (
    COMPONENT,
    REPETITION,
    FunctionalGroup,
    Interchange,
    Segment,
    TransactionSet,
)
from integration_core.edi.errors import (
    AppCode,
    EdiError,
    GroupCode,
    NoteCode,
    SetCode,
)
from integration_core.edi.syntax import parse_date


@dataclass(frozen=True, slots=True)
class Limits:
    """Checked before any parsing: a partner's oversized file costs nothing to refuse."""

    max_bytes: int = 16 * 1024 * 1024
    max_segments: int = 500_000


@dataclass(frozen=True, slots=True)
class Parsed:
    interchange: Interchange | None
    errors: tuple[EdiError, ...]


class Where(StrEnum):
    INTERCHANGE = "interchange"
    GROUP = "group"
    SET = "set"
    END = "end"


class Step(StrEnum):
    OPEN_GROUP = "open_group"
    CLOSE_GROUP = "close_group"
    GROUP_TRAILER_MISSING = "group_trailer_missing"
    OPEN_SET = "open_set"
    ADD = "add"
    CLOSE_SET = "close_set"
    SET_TRAILER_MISSING = "set_trailer_missing"
    NOTE = "note"
    CLOSE_INTERCHANGE = "close_interchange"
    STRAY = "stray"


_W, _S = Where, Step
#: Tag "*" stands for any segment not named in the row's `where`.
ENVELOPE: Mapping[tuple[Where, str], tuple[Where, tuple[Step, ...]]] = MappingProxyType(
    {
        (_W.INTERCHANGE, "GS"): (_W.GROUP, (_S.OPEN_GROUP,)),
        (_W.INTERCHANGE, "TA1"): (_W.INTERCHANGE, (_S.NOTE,)),
        (_W.INTERCHANGE, "IEA"): (_W.END, (_S.CLOSE_INTERCHANGE,)),
        (_W.INTERCHANGE, "*"): (_W.INTERCHANGE, (_S.STRAY,)),
        (_W.GROUP, "ST"): (_W.SET, (_S.OPEN_SET,)),
        (_W.GROUP, "GE"): (_W.INTERCHANGE, (_S.CLOSE_GROUP,)),
        (_W.GROUP, "GS"): (_W.GROUP, (_S.GROUP_TRAILER_MISSING, _S.OPEN_GROUP)),
        (_W.GROUP, "IEA"): (_W.END, (_S.GROUP_TRAILER_MISSING, _S.CLOSE_INTERCHANGE)),
        (_W.GROUP, "*"): (_W.GROUP, (_S.STRAY,)),
        (_W.SET, "SE"): (_W.GROUP, (_S.CLOSE_SET,)),
        (_W.SET, "ST"): (_W.SET, (_S.SET_TRAILER_MISSING, _S.OPEN_SET)),
        (_W.SET, "GE"): (_W.INTERCHANGE, (_S.SET_TRAILER_MISSING, _S.CLOSE_GROUP)),
        (_W.SET, "GS"): (
            _W.GROUP,
            (_S.SET_TRAILER_MISSING, _S.GROUP_TRAILER_MISSING, _S.OPEN_GROUP),
        ),
        (_W.SET, "IEA"): (
            _W.END,
            (_S.SET_TRAILER_MISSING, _S.GROUP_TRAILER_MISSING, _S.CLOSE_INTERCHANGE),
        ),
        (_W.SET, "*"): (_W.SET, (_S.ADD,)),
        (_W.END, "*"): (_W.END, (_S.STRAY,)),
    }
)

#: ISA01..ISA16: fixed width, type, and the TA105 code of a bad value.
ISA_FIELDS: tuple[tuple[int, str, NoteCode], ...] = (
    (2, "ID", NoteCode.AUTH_QUALIFIER),
    (10, "AN", NoteCode.AUTH_VALUE),
    (2, "ID", NoteCode.SECURITY_QUALIFIER),
    (10, "AN", NoteCode.SECURITY_VALUE),
    (2, "ID", NoteCode.SENDER_QUALIFIER),
    (15, "AN", NoteCode.SENDER_ID),
    (2, "ID", NoteCode.RECEIVER_QUALIFIER),
    (15, "AN", NoteCode.RECEIVER_ID),
    (6, "DT", NoteCode.DATE),
    (4, "TM", NoteCode.TIME),
    (1, "AN", NoteCode.STANDARDS_ID),
    (5, "N", NoteCode.VERSION_ID),
    (9, "N", NoteCode.CONTROL_NUMBER),
    (1, "01", NoteCode.ACK_REQUESTED),
    (1, "PTI", NoteCode.TEST_INDICATOR),
    (1, "AN", NoteCode.COMPONENT_SEPARATOR),
)


def same_number(a: str, b: str) -> bool:
    """Control numbers agree: equal text, or equal numbers ("0001" and "1")."""
    a, b = a.strip(), b.strip()
    return a == b or (a.isdigit() and b.isdigit() and int(a) == int(b))


def _isa_errors(isa: Segment) -> list[EdiError]:
    errors = []
    for pos, ((width, kind, code), value) in enumerate(
        zip(ISA_FIELDS, isa.elements, strict=False), 1
    ):
        bad = len(value) != width
        if kind in ("N", "DT", "TM"):
            bad = bad or not value.isdigit()
        if kind == "DT" and not bad:
            bad = parse_date(value) is None
        if kind == "TM" and not bad:
            bad = int(value[:2]) > 23 or int(value[2:]) > 59
        if kind not in ("N", "DT", "TM", "ID", "AN"):
            bad = bad or value not in kind
        if bad:
            errors.append(
                EdiError(
                    code,
                    f"ISA{pos:02d} {value!r} is not a valid {width}-character {kind} value",
                    segment_id="ISA",
                    segment_position=1,
                    element_position=pos,
                    value=value,
                )
            )
    version = isa.get(12)
    if version.isdigit() and not 200 <= int(version) < 600:
        errors.append(
            EdiError(
                NoteCode.VERSION_NOT_SUPPORTED,
                f"control version {version} is not supported",
                segment_id="ISA",
                segment_position=1,
                element_position=12,
                value=version,
            )
        )
    return errors


@dataclass(slots=True)
class _Builder:
    """The interchange under construction while the envelope table is walked."""

    isa: Segment
    delimiters: Delimiters
    errors: list[EdiError] = field(default_factory=list)
    groups: list[FunctionalGroup] = field(default_factory=list)
    notes: list[Segment] = field(default_factory=list)
    gs: Segment | None = None
    sets: list[TransactionSet] = field(default_factory=list)
    segs: list[Segment] = field(default_factory=list)
    controls: set[str] = field(default_factory=set)
    trailer: Segment | None = None
    position: int = 1

    def error(
        self,
        code: GroupCode | NoteCode | SetCode,
        message: str,
        seg: Segment,
        element: int = 0,
        in_set: int = 0,
    ) -> None:
        self.errors.append(
            EdiError(
                code,
                message,
                segment_id=seg.tag,
                segment_position=in_set or self.position,
                element_position=element,
                value=seg.get(element) if element else "",
                group=len(self.groups) if self.gs is not None else -1,
                set_index=len(self.sets) if in_set else -1,
            )
        )

    def step(self, step: Step, seg: Segment) -> None:
        if step is Step.ADD:
            self.segs.append(seg)
        elif step is Step.OPEN_SET:
            self.segs = [seg]
            control = seg.get(2)
            if not 4 <= len(control) <= 9:
                self.error(
                    SetCode.INVALID_CONTROL_NUMBER,
                    f"ST02 {control!r} is not a 4-9 character control number",
                    seg,
                    2,
                    1,
                )
            elif control in self.controls:
                self.error(
                    SetCode.CONTROL_NUMBER_NOT_UNIQUE,
                    f"ST02 {control} is used twice in the group",
                    seg,
                    2,
                    1,
                )
            self.controls.add(control)
        elif step is Step.CLOSE_SET:
            self.segs.append(seg)
            count, st = len(self.segs), self.segs[0]
            if not same_number(seg.get(1), str(count)):
                self.error(
                    SetCode.SEGMENT_COUNT,
                    f"SE01 says {seg.get(1)} segments, the set has {count}",
                    seg,
                    1,
                    count,
                )
            if not same_number(seg.get(2), st.get(2)):
                self.error(
                    SetCode.CONTROL_NUMBER_MISMATCH,
                    f"SE02 {seg.get(2)} does not match ST02 {st.get(2)}",
                    seg,
                    2,
                    count,
                )
            self.sets.append(TransactionSet(tuple(self.segs)))
        elif step is Step.SET_TRAILER_MISSING:
            self.error(
                SetCode.TRAILER_MISSING,
                f"the set {self.segs[0].get(2)} has no SE before {seg.tag}",
                seg,
                0,
                len(self.segs) + 1,
            )
            self.sets.append(TransactionSet(tuple(self.segs)))
        elif step is Step.OPEN_GROUP:
            self.gs, self.sets, self.controls = seg, [], set()
            if not seg.get(6).isdigit() or len(seg.get(6)) > 9:
                self.error(
                    GroupCode.CONTROL_NUMBER_SYNTAX,
                    f"GS06 {seg.get(6)!r} is not a 1-9 digit number",
                    seg,
                    6,
                )
        elif step in (Step.CLOSE_GROUP, Step.GROUP_TRAILER_MISSING):
            assert self.gs is not None
            trailer = seg if step is Step.CLOSE_GROUP else None
            if trailer is None:
                self.error(
                    GroupCode.TRAILER_MISSING,
                    f"the group {self.gs.get(6)} has no GE before {seg.tag}",
                    seg,
                )
            else:
                if not same_number(seg.get(1), str(len(self.sets))):
                    self.error(
                        GroupCode.SET_COUNT,
                        f"GE01 says {seg.get(1)} sets, the group has {len(self.sets)}",
                        seg,
                        1,
                    )
                if not same_number(seg.get(2), self.gs.get(6)):
                    self.error(
                        GroupCode.CONTROL_NUMBER_MISMATCH,
                        f"GE02 {seg.get(2)} does not match GS06 {self.gs.get(6)}",
                        seg,
                        2,
                    )
            self.groups.append(FunctionalGroup(self.gs, tuple(self.sets), trailer))
            self.gs = None
        elif step is Step.NOTE:
            self.notes.append(seg)
        elif step is Step.CLOSE_INTERCHANGE:
            self.trailer = seg
            if not same_number(seg.get(1), str(len(self.groups))):
                self.error(
                    NoteCode.GROUP_COUNT,
                    f"IEA01 says {seg.get(1)} groups, the interchange has {len(self.groups)}",
                    seg,
                    1,
                )
            if not same_number(seg.get(2), self.isa.get(13)):
                self.error(
                    NoteCode.CONTROL_NUMBER_MISMATCH,
                    f"IEA02 {seg.get(2).strip()} does not match ISA13 {self.isa.get(13)}",
                    seg,
                    2,
                )
        elif step is Step.STRAY:
            self.error(
                NoteCode.CONTROL_STRUCTURE if seg.tag in ENVELOPE_TAGS else NoteCode.CONTENT,
                f"segment {seg.tag} is outside any set",
                seg,
            )


ENVELOPE_TAGS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE", "TA1"})


def _refused(code: NoteCode | AppCode, message: str) -> Parsed:
    return Parsed(None, (EdiError(code, message, segment_id="ISA", segment_position=1),))


def parse(raw: bytes | str, limits: Limits = Limits()) -> Parsed:
    """The interchange and every envelope error; never raises on bad input."""
    if len(raw) > limits.max_bytes:
        return _refused(
            AppCode.TOO_LARGE, f"{len(raw)} bytes is more than the limit of {limits.max_bytes}"
        )
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    text = text.lstrip(" \t\r\n\ufeff")
    sniffed = sniff(text)
    if isinstance(sniffed, EdiError):
        return Parsed(None, (sniffed,))
    d, isa_end = sniffed
    isa = Segment("ISA", tuple(text[4 : isa_end - 1].split(d.element)))
    rest = text[isa_end:]
    if rest.count(d.segment) > limits.max_segments:
        return _refused(AppCode.TOO_LARGE, f"more than {limits.max_segments} segments")
    if COMPONENT in rest or REPETITION in rest:
        return _refused(NoteCode.CONTENT, "the data holds control characters 0x1e/0x1f")
    rest = rest.replace(d.component, COMPONENT)
    if d.repetition:
        rest = rest.replace(d.repetition, REPETITION)
    b = _Builder(isa, d, _isa_errors(isa))
    where = Where.INTERCHANGE
    for piece in rest.split(d.segment):
        piece = piece.strip("\r\n")
        if not piece:
            continue
        b.position += 1
        fields = piece.split(d.element)
        seg = Segment(fields[0], tuple(fields[1:]))
        where, steps = ENVELOPE.get((where, seg.tag)) or ENVELOPE[(where, "*")]
        for step in steps:
            b.step(step, seg)
    if where is not Where.END:
        end = Segment("", ())
        if where is Where.SET:
            b.step(Step.SET_TRAILER_MISSING, end)
        if where in (Where.SET, Where.GROUP):
            b.step(Step.GROUP_TRAILER_MISSING, end)
        b.errors.append(
            EdiError(
                NoteCode.PREMATURE_END,
                "the interchange ends without IEA",
                segment_id="IEA",
                segment_position=b.position + 1,
            )
        )
    return Parsed(Interchange(isa, tuple(b.groups), b.trailer, d, tuple(b.notes)), tuple(b.errors))
