"""Building outbound envelopes: a set from its body segments, an interchange around sets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from integration_core.edi.delimiters import Delimiters
from integration_core.edi.document import FunctionalGroup, Interchange, Segment, TransactionSet

#: GS08 release -> ISA12 control version.
CONTROL_VERSION = {"004010": "00401", "005010": "00501"}


def make_set(code: str, control: str, body: Sequence[Segment]) -> TransactionSet:
    """ST + body + SE, SE01 counting ST and SE."""
    st = Segment("ST", (code, control))
    se = Segment("SE", (str(len(body) + 2), control))
    return TransactionSet((st, *body, se))


def wrap(
    sets: Sequence[TransactionSet],
    *,
    functional_id: str,
    sender: tuple[str, str],
    receiver: tuple[str, str],
    control: int,
    when: datetime,
    release: str = "004010",
    delimiters: Delimiters | None = None,
    notes: Sequence[Segment] = (),
) -> Interchange:
    """One interchange holding one group of `sets` (none: only `notes`, e.g. a TA1).

    `sender` and `receiver` are (ISA05/07 qualifier, id); the ids double as GS02/GS03. The
    group's control number is the interchange's.
    """
    version = CONTROL_VERSION[release]
    d = delimiters or Delimiters(repetition="^" if release >= "005010" else "")
    isa = Segment("ISA", (
        "00", " " * 10, "00", " " * 10, sender[0], sender[1].ljust(15)[:15], receiver[0],
        receiver[1].ljust(15)[:15], when.strftime("%y%m%d"), when.strftime("%H%M"),
        d.repetition or "U", version, f"{control:09d}", "0", "P", d.component,
    ))  # fmt: skip
    groups: tuple[FunctionalGroup, ...] = ()
    if sets:
        gs = Segment("GS", (
            functional_id, sender[1].strip()[:15], receiver[1].strip()[:15],
            when.strftime("%Y%m%d"), when.strftime("%H%M"), str(control), "X", release,
        ))  # fmt: skip
        ge = Segment("GE", (str(len(sets)), str(control)))
        groups = (FunctionalGroup(gs, tuple(sets), ge),)
    iea = Segment("IEA", (str(len(groups)), f"{control:09d}"))
    return Interchange(isa, groups, iea, d, tuple(notes))
