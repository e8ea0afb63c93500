"""Syntax checks of one transaction set against the tables: each segment's place (AK304
codes) and each element's requirement, length, type, code and rules (AK403 codes).

The structure walk keeps a stack of open loops. A segment is looked for from the current
position onwards in the innermost loop, then in each enclosing one; found in an enclosing loop,
the inner loops close (their missing mandatory segments are reported) and, if it is that loop's
trigger, a new iteration starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

from integration_core.edi.document import (
    COMPONENT,
    REPETITION,
    Interchange,
    Segment,
    TransactionSet,
)
from integration_core.edi.errors import (
    EdiError,
    ElementCode,
    GroupCode,
    SegmentCode,
    SetCode,
)
from integration_core.edi.segments import CODES, SEGMENTS, SegmentDef
from integration_core.edi.tables import RELEASES, SETS, Loop, SetTable, Use

_NUMBER = re.compile(r"-?\d+\Z")
_DECIMAL = re.compile(r"-?(\d+\.?\d*|\.\d+)\Z")
_DIGITS = re.compile(r"\d+\Z")
_TIME_LENGTHS = frozenset({4, 6, 7, 8})


@dataclass(slots=True)
class _Frame:
    loop: Loop
    cursor: int = 0
    used: dict[int, int] = field(default_factory=dict)


def _missing(frame: _Frame, upto: int, position: int) -> list[EdiError]:
    """Mandatory entries of `frame` left unused between its cursor and `upto`."""
    out = []
    for j in range(frame.cursor, upto):
        entry = frame.loop.body[j]
        if entry.req == "M" and not frame.used.get(j):
            tag = entry.tag if isinstance(entry, Use) else entry.trigger
            out.append(
                EdiError(
                    SegmentCode.MANDATORY_MISSING,
                    f"mandatory segment {tag} is missing",
                    segment_id=tag,
                    segment_position=position,
                    loop=frame.loop.id,
                )
            )
    return out


def check_structure(
    table: SetTable, segments: tuple[Segment, ...], known: frozenset[str]
) -> tuple[list[EdiError], list[str]]:
    """The structure errors, and the id of the loop each segment was placed in."""
    errors: list[EdiError] = []
    loops: list[str] = []
    stack = [_Frame(table.root)]
    in_set = table.root.tags()
    for position, seg in enumerate(segments, 1):
        tag = seg.tag
        for depth in range(len(stack) - 1, -1, -1):
            frame = stack[depth]
            # a loop's trigger met again inside it starts the next iteration: its parent's job
            first = 1 if depth else 0
            idx = next(
                (i for i in frame.loop.at.get(tag, ()) if i >= max(frame.cursor, first)), None
            )
            if idx is None:
                continue
            for inner in reversed(stack[depth + 1 :]):
                errors += _missing(inner, len(inner.loop.body), position)
            del stack[depth + 1 :]
            errors += _missing(frame, idx, position)
            entry = frame.loop.body[idx]
            count = frame.used[idx] = frame.used.get(idx, 0) + 1
            frame.cursor = idx
            if isinstance(entry, Use):
                if count > entry.max_use:
                    errors.append(
                        EdiError(
                            SegmentCode.OVER_MAX_USE,
                            f"{tag} used {count} times, at most {entry.max_use}",
                            segment_id=tag,
                            segment_position=position,
                            loop=frame.loop.id,
                        )
                    )
            else:
                if count > entry.max_repeat:
                    errors.append(
                        EdiError(
                            SegmentCode.LOOP_OVER_MAX,
                            f"loop {entry.id} repeats {count} times, at most {entry.max_repeat}",
                            segment_id=tag,
                            segment_position=position,
                            loop=entry.id,
                        )
                    )
                stack.append(_Frame(entry, 0, {0: 1}))
            loops.append(stack[-1].loop.id)
            break
        else:
            if tag not in known:
                code, why = SegmentCode.UNRECOGNIZED, "is not a known segment"
            elif tag in in_set:
                code, why = SegmentCode.OUT_OF_SEQUENCE, "is not in its proper place"
            else:
                code, why = SegmentCode.NOT_IN_SET, f"is not in a {table.code}"
            errors.append(
                EdiError(
                    code,
                    f"segment {tag} {why}",
                    segment_id=tag,
                    segment_position=position,
                    loop=stack[-1].loop.id,
                )
            )
            loops.append(stack[-1].loop.id)
    end = len(segments) + 1
    for frame in reversed(stack):
        errors += _missing(frame, len(frame.loop.body), end)
    return errors, loops


def _value_error(value: str, kind: str, lo: int, hi: int, ref: int) -> ElementCode | None:
    if kind == "C":
        return None
    if any(c < " " or c == "\x7f" for c in value):
        return ElementCode.INVALID_CHARACTER
    if kind[0] == "N" or kind == "R":
        if not (_NUMBER if kind[0] == "N" else _DECIMAL).match(value):
            return ElementCode.INVALID_CHARACTER
        size = len(value.lstrip("-").replace(".", ""))
    else:
        size = len(value)
    if size < lo:
        return ElementCode.TOO_SHORT
    if size > hi:
        return ElementCode.TOO_LONG
    if kind == "DT":
        return None if _date(value) is not None else ElementCode.INVALID_DATE
    if kind == "TM":
        ok = (
            _DIGITS.match(value)
            and len(value) in _TIME_LENGTHS
            and int(value[:2]) < 24
            and int(value[2:4]) < 60
            and (len(value) < 6 or int(value[4:6]) < 60)
        )
        return None if ok else ElementCode.INVALID_TIME
    codes = CODES.get(ref) if kind == "ID" else None
    if codes is not None and value not in codes:
        return ElementCode.INVALID_CODE
    return None


def _date(value: str) -> date | None:
    """CCYYMMDD, or YYMMDD read in the 20th/21st century window X12 uses (00-49 -> 20xx)."""
    if not _DIGITS.match(value) or len(value) not in (6, 8):
        return None
    if len(value) == 6:
        yy = int(value[:2])
        value = f"{20 if yy < 50 else 19}{value}"
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return None


parse_date = _date


def check_elements(seg: Segment, sdef: SegmentDef, position: int) -> list[EdiError]:
    errors: list[EdiError] = []

    def err(code: ElementCode, at: int, why: str, value: str = "") -> None:
        ref = sdef.elements[at - 1].ref if at <= len(sdef.elements) else 0
        errors.append(
            EdiError(
                code,
                f"{seg.tag}{at:02d} {why}",
                segment_id=seg.tag,
                segment_position=position,
                element_position=at,
                element_ref=ref,
                value=value,
            )
        )

    values = seg.elements
    used = len(values)
    while used and not values[used - 1]:
        used -= 1  # trailing empty elements are padding, not extra elements
    if used > len(sdef.elements):
        err(
            ElementCode.TOO_MANY,
            len(sdef.elements) + 1,
            f"is one of {used - len(sdef.elements)} elements more than {seg.tag} has",
        )
    for i, spec in enumerate(sdef.elements, 1):
        value = values[i - 1] if i <= used else ""
        if not value:
            if spec.req == "M":
                err(ElementCode.MANDATORY_MISSING, i, "is mandatory and missing")
            continue
        for one in value.split(REPETITION) if REPETITION in value else (value,):
            if COMPONENT in one and spec.type != "C":
                err(
                    ElementCode.INVALID_CHARACTER,
                    i,
                    "contains the component separator",
                    one.replace(COMPONENT, ""),
                )
                continue
            code = _value_error(one, spec.type, spec.min, spec.max, spec.ref)
            if code is not None:
                err(
                    code,
                    i,
                    f"is invalid ({code.name.lower()}, {spec.type} {spec.min}/{spec.max})",
                    one,
                )
    for rule in sdef.rules:
        present = [p <= used and bool(values[p - 1]) for p in rule.positions]
        if rule.kind == "P" and any(present) and not all(present):
            at = rule.positions[present.index(False)]
            err(ElementCode.CONDITIONAL_MISSING, at, "is required with its pair")
        elif rule.kind == "R" and not any(present):
            err(
                ElementCode.CONDITIONAL_MISSING,
                rule.positions[0],
                f"or one of {rule.positions[1:]} is required",
            )
        elif rule.kind == "C" and present[0] and not all(present[1:]):
            at = rule.positions[1 + present[1:].index(False)]
            err(ElementCode.CONDITIONAL_MISSING, at, f"is required with {rule.positions[0]}")
        elif rule.kind == "E" and sum(present) > 1:
            at = rule.positions[[i for i, p in enumerate(present) if p][1]]
            err(ElementCode.EXCLUSION, at, "excludes another element present")
    return errors


def check_set(ts: TransactionSet, table: SetTable, release: str) -> list[EdiError]:
    """Every syntax error of `ts`, positions counted from ST."""
    defs = SEGMENTS[release]
    errors, loops = check_structure(table, ts.segments, frozenset(defs))
    for position, seg in enumerate(ts.segments, 1):
        sdef = defs.get(seg.tag)
        if sdef is not None and seg.tag not in ("SE", "ST"):  # the parser checks ST/SE
            found = check_elements(seg, sdef, position)
            errors += [replace(e, loop=loops[position - 1]) for e in found]
    return errors


def release_of(version: str) -> str | None:
    """The release (segment definitions) of a GS08 such as "004010" or "004010UCS"."""
    return RELEASES.get(version[:5]) if len(version) >= 6 else None


def check_interchange(ic: Interchange) -> list[EdiError]:
    """Syntax errors of every set, tagged with their group and set indexes."""
    errors: list[EdiError] = []
    for g, group in enumerate(ic.groups):
        release = release_of(group.version)
        if release is None:
            errors.append(
                EdiError(
                    GroupCode.VERSION_NOT_SUPPORTED,
                    f"GS08 {group.version!r} is not a supported version (004010, 005010)",
                    segment_id="GS",
                    element_position=8,
                    value=group.version,
                    group=g,
                )
            )
            continue
        for s, ts in enumerate(group.sets):
            table = SETS.get(ts.code)
            found: list[EdiError]
            if table is None:
                found = [
                    EdiError(
                        SetCode.NOT_SUPPORTED,
                        f"transaction set {ts.code!r} is not supported",
                        segment_id="ST",
                        segment_position=1,
                        element_position=1,
                        value=ts.code,
                    )
                ]
            elif table.functional_id != group.functional_id:
                found = [
                    EdiError(
                        SetCode.INVALID_IDENTIFIER,
                        f"a {ts.code} does not belong "
                        f"in a group of {group.functional_id} (expected "
                        f"{table.functional_id})",
                        segment_id="ST",
                        segment_position=1,
                        element_position=1,
                        value=ts.code,
                    )
                ]
            else:
                found = check_set(ts, table, release)
            errors += [replace(e, group=g, set_index=s) for e in found]
    return errors
