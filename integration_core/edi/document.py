"""The parsed interchange as flat, frozen records: interchange -> groups -> sets -> segments.

Element values are strings with the delimiters of the wire taken out: components are joined by
`COMPONENT` (US, 0x1f) and repetitions by `REPETITION` (RS, 0x1e), so a document read with one
set of delimiters equals the same document read with another.
"""

from __future__ import annotations

from dataclasses import dataclass

from integration_core.edi.delimiters import Delimiters

COMPONENT = "\x1f"
REPETITION = "\x1e"


@dataclass(frozen=True, slots=True)
class Segment:
    tag: str
    elements: tuple[str, ...]

    def get(self, position: int) -> str:
        """Element `position` (1-based), "" when absent."""
        return self.elements[position - 1] if 0 < position <= len(self.elements) else ""


@dataclass(frozen=True, slots=True)
class TransactionSet:
    segments: tuple[Segment, ...]
    """ST first; SE last unless the trailer is missing."""

    @property
    def code(self) -> str:
        return self.segments[0].get(1)

    @property
    def control(self) -> str:
        return self.segments[0].get(2)


@dataclass(frozen=True, slots=True)
class FunctionalGroup:
    header: Segment
    sets: tuple[TransactionSet, ...]
    trailer: Segment | None

    @property
    def functional_id(self) -> str:
        return self.header.get(1)

    @property
    def control(self) -> str:
        return self.header.get(6)

    @property
    def version(self) -> str:
        return self.header.get(8)


@dataclass(frozen=True, slots=True)
class Interchange:
    header: Segment
    groups: tuple[FunctionalGroup, ...]
    trailer: Segment | None
    delimiters: Delimiters
    notes: tuple[Segment, ...] = ()
    """TA1 segments the interchange carries (an acknowledgment of ours)."""

    @property
    def sender(self) -> str:
        return self.header.get(6).strip()

    @property
    def receiver(self) -> str:
        return self.header.get(8).strip()

    @property
    def control(self) -> str:
        return self.header.get(13)

    @property
    def version(self) -> str:
        return self.header.get(12)
