"""Delimiters sniffed from the ISA segment.

The ISA is fixed-width: 106 characters, the element separator at index 3, ISA16 (component
separator) at 104, the segment terminator at 105. Senders do pad wrongly at times (a short
ISA06); the fields are then found by splitting on the element separator instead, and the
parser reports the bad widths as envelope errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from integration_core.edi.errors import EdiError, NoteCode

ISA_LENGTH = 106
#: Indexes of the 16 element separators in a well-formed ISA.
_SEPARATOR_AT = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)
#: ISA11 became the repetition separator in control version 00402; before, it is "U".
REPETITION_FROM_VERSION = "00402"


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str = "*"
    component: str = ">"
    repetition: str = ""
    """Empty when the control version has none (ISA11 is then the standards identifier)."""
    segment: str = "~"

    def __post_init__(self) -> None:
        chars = [self.element, self.component, self.segment]
        if self.repetition:
            chars.append(self.repetition)
        if any(len(c) != 1 or c.isalnum() or c == " " for c in chars) or len(set(chars)) != len(
            chars
        ):
            raise ValueError(
                f"delimiters must be distinct single non-alphanumeric characters, got {chars!r}"
            )


def _fields(head: str, element: str) -> tuple[list[str], int] | None:
    """ISA01..ISA15, then ISA16 with the terminator after it; and the index past the ISA."""
    if len(head) >= ISA_LENGTH and all(head[i] == element for i in _SEPARATOR_AT):
        return [*head[4:103].split(element), head[104:106]], ISA_LENGTH
    parts = head.split(element, 16)
    if len(parts) < 17 or len(parts[16]) < 2:
        return None
    return [*parts[1:16], parts[16][:2]], len(head) - len(parts[16]) + 2


def sniff(text: str) -> tuple[Delimiters, int] | EdiError:
    """The delimiters and the index just past the ISA's terminator; `text` starts with "ISA"."""
    if len(text) < 4 or not text.startswith("ISA"):
        return EdiError(
            NoteCode.PREMATURE_END,
            "the interchange does not start with an ISA",
            segment_id="ISA",
            segment_position=1,
        )
    element = text[3]
    if element.isalnum() or element in " \r\n":
        return EdiError(
            NoteCode.ELEMENT_SEPARATOR,
            f"invalid element separator {element!r}",
            segment_id="ISA",
            segment_position=1,
            value=element,
        )
    found = _fields(text[:512], element)
    if found is None:
        return EdiError(
            NoteCode.PREMATURE_END,
            "the ISA segment is incomplete",
            segment_id="ISA",
            segment_position=1,
        )
    fields, end = found
    component, segment = fields[15][0], fields[15][1]
    if component.isalnum() or component in (" ", element):
        return EdiError(
            NoteCode.COMPONENT_SEPARATOR,
            f"invalid component separator {component!r}",
            segment_id="ISA",
            segment_position=1,
            element_position=16,
            value=component,
        )
    if segment.isalnum() or segment in (" ", element, component):
        return EdiError(
            NoteCode.SEGMENT_TERMINATOR,
            f"invalid segment terminator {segment!r}",
            segment_id="ISA",
            segment_position=1,
        )
    rep = fields[10]
    repetition = ""
    if (
        fields[11] >= REPETITION_FROM_VERSION
        and len(rep) == 1
        and not rep.isalnum()
        and rep not in (" ", element, component, segment)
    ):
        repetition = rep
    return Delimiters(element, component, repetition, segment), end
