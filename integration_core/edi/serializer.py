"""Writing an interchange: the inverse of `parser.parse`, with any delimiters.

ISA11 (from 00402) and ISA16 are written from the delimiters chosen; everything else is written
as it was read, so parse -> serialize -> parse gives an equal interchange.
"""

from __future__ import annotations

from integration_core.edi.delimiters import REPETITION_FROM_VERSION, Delimiters
from integration_core.edi.document import COMPONENT, REPETITION, Interchange, Segment


def _segments(ic: Interchange) -> list[Segment]:
    out = [*ic.notes]
    for group in ic.groups:
        out.append(group.header)
        for ts in group.sets:
            out += ts.segments
        if group.trailer is not None:
            out.append(group.trailer)
    if ic.trailer is not None:
        out.append(ic.trailer)
    return out


def serialize(ic: Interchange, delimiters: Delimiters | None = None, line_break: str = "") -> bytes:
    """The interchange's bytes; `line_break` (e.g. "\\r\\n") follows each terminator.

    Raises ValueError when a value holds one of the delimiters: our own outbound data is then
    wrong, and writing it would change the document.
    """
    d = delimiters or ic.delimiters
    isa = list(ic.header.elements)
    isa[15] = d.component
    if d.repetition and ic.version >= REPETITION_FROM_VERSION:
        isa[10] = d.repetition
    end = d.segment + line_break
    forbidden = {d.element, d.segment, d.component, *([d.repetition] if d.repetition else [])}
    lines = [d.element.join(["ISA", *isa])]
    for seg in _segments(ic):
        text = d.element.join((seg.tag, *seg.elements))
        if any(c in text for c in forbidden if c != d.element) or any(
            d.element in e for e in seg.elements
        ):
            raise ValueError(f"segment {seg.tag} holds a delimiter character: {text!r}")
        if COMPONENT in text:
            text = text.replace(COMPONENT, d.component)
        if REPETITION in text:
            if not d.repetition:
                raise ValueError(
                    f"segment {seg.tag} repeats an element but the delimiters "
                    "have no repetition separator"
                )
            text = text.replace(REPETITION, d.repetition)
        lines.append(text)
    return (end.join(lines) + end).encode("latin-1")
