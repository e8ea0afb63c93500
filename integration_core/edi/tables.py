"""Transaction set structures as data: which segments, in which order, how often, in which
loops; one table per set, shared by 004010 and 005010 (the sets' structures did not change for
what the warehouse sets use; their segments' differences are in `segments`).

A loop's first entry is its trigger: a segment with that tag starts a new iteration. ``>1`` in
the standard is `MANY` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MANY = 1_000_000


@dataclass(frozen=True, slots=True)
class Use:
    """A segment's place in a loop (or in the set's top level)."""

    tag: str
    req: str
    max_use: int


@dataclass(frozen=True, slots=True)
class Loop:
    id: str
    req: str
    max_repeat: int
    body: tuple[Use | Loop, ...]
    at: Mapping[str, tuple[int, ...]] = field(init=False, repr=False, compare=False)
    """Tag -> indexes in `body` where it can go (a loop is found by its trigger)."""

    def __post_init__(self) -> None:
        at: dict[str, list[int]] = {}
        for i, entry in enumerate(self.body):
            at.setdefault(entry.tag if isinstance(entry, Use) else entry.trigger, []).append(i)
        object.__setattr__(self, "at", MappingProxyType({k: tuple(v) for k, v in at.items()}))

    @property
    def trigger(self) -> str:
        first = self.body[0]
        return first.tag if isinstance(first, Use) else first.trigger

    def tags(self) -> frozenset[str]:
        return frozenset().union(*({e.tag} if isinstance(e, Use) else e.tags() for e in self.body))


@dataclass(frozen=True, slots=True)
class SetTable:
    code: str
    functional_id: str
    """GS01 of the group the set travels in."""
    root: Loop


def _u(spec: str) -> Use:
    tag, req, use = spec.split()
    return Use(tag, req, MANY if use == ">1" else int(use))


def _body(*entries: str | Loop) -> tuple[Use | Loop, ...]:
    return tuple(_u(e) if isinstance(e, str) else e for e in entries)


def _loop(spec: str, *entries: str | Loop) -> Loop:
    lid, req, rep = spec.split()
    return Loop(lid, req, MANY if rep == ">1" else int(rep), _body(*entries))


def _set(code: str, functional_id: str, *entries: str | Loop) -> SetTable:
    # the set's top level is a loop without an id (AK303 stays empty for its segments)
    return SetTable(code, functional_id, Loop("", "M", 1, _body("ST M 1", *entries, "SE M 1")))


def _parties(loop_id: str, repeat: str) -> Loop:
    return _loop(
        f"{loop_id} O {repeat}", "N1 M 1", "N2 O 2", "N3 O 2", "N4 O 1", "REF O 12", "PER O 3"
    )


_SETS = (
    _set(
        "940",
        "OW",
        "W05 M 1",
        _parties("0100", "10"),
        "N9 O 10",
        "G61 O 3",
        "G62 O 10",
        "NTE O >1",
        "W09 O 1",
        "W66 O 1",
        _loop(
            "0300 O >1", "LX M 1", _loop("0310 M >1", "W01 M 1", "G69 O 5", "N9 O 200", "W20 O 3")
        ),
        "W76 O 1",
    ),
    _set(
        "945",
        "SW",
        "W06 M 1",
        _parties("0100", "10"),
        "N9 O 10",
        "G61 O 3",
        "G62 O 5",
        "NTE O 20",
        "W27 O 1",
        "W28 O 1",
        "W10 O 10",
        "G72 O 10",
        _loop(
            "0300 M >1",
            "LX M 1",
            "MAN O >1",
            "PAL O 1",
            "N9 O >1",
            _loop("0310 M >1", "W12 M 1", "G69 O 5", "N9 O 20", "W20 O 1", "MAN O >1"),
        ),
        "W03 M 1",
    ),
    _set(
        "943",
        "AR",
        "W06 M 1",
        _parties("0100", "10"),
        "N9 O 10",
        "G62 O 5",
        "NTE O 20",
        "W27 M 1",
        "W28 O 1",
        "W10 O 1",
        _loop(
            "0200 O >1", "LX M 1", _loop("0210 M >1", "W04 M 1", "G69 O 5", "N9 O 20", "W20 O 1")
        ),
        _loop("0220 O >1", "W04 M 1", "G69 O 5", "N9 O 20", "W20 O 1"),
        "W03 M 1",
    ),
    _set(
        "944",
        "RE",
        "W17 M 1",
        _parties("0100", "10"),
        "N9 O 10",
        "G62 O 5",
        "W08 O 1",
        "NTE O 20",
        _loop(
            "0200 O >1", "LX M 1", _loop("0210 M >1", "W07 M 1", "G69 O 5", "N9 O 200", "W20 O 1")
        ),
        _loop("0220 O >1", "W07 M 1", "G69 O 5", "N9 O 200", "W20 O 1"),
        "W14 M 1",
    ),
    _set(
        "947",
        "AW",
        "W15 M 1",
        _parties("0100", "10"),
        "N9 O 10",
        "G62 O 5",
        "NTE O 20",
        _loop(
            "0200 M >1", "LX M 1", _loop("0210 M >1", "W19 M 1", "G69 O 5", "N9 O 10", "NTE O 10")
        ),
    ),
    _set(
        "846",
        "IB",
        "BIA M 1",
        "CUR O 1",
        "DTM O 10",
        "REF O 12",
        "PER O 3",
        "MEA O 20",
        _parties("N1", "5"),
        _loop(
            "LIN M 10000",
            "LIN M 1",
            "PID O 200",
            "MEA O 40",
            "DTM O 10",
            "REF O >1",
            _loop("QTY O >1", "QTY M 1", "SCH O 25"),
        ),
        "CTT O 1",
    ),
    _set(
        "856",
        "SH",
        "BSN M 1",
        "DTM O 10",
        _loop(
            "HL M 200000",
            "HL M 1",
            "LIN O 1",
            "SN1 O 1",
            "PRF O 1",
            "PO4 O 1",
            "PID O 200",
            "MEA O 40",
            "PKG O 200",
            "TD1 O 20",
            "TD5 O 12",
            "TD3 O 12",
            "TD4 O 5",
            "REF O >1",
            "MAN O >1",
            "DTM O 10",
            "FOB O 1",
            _loop(
                "N1 O 200", "N1 M 1", "N2 O 2", "N3 O 2", "N4 O 1", "REF O 12", "PER O 3", "FOB O 1"
            ),
        ),
        "CTT O 1",
    ),
    _set(
        "997",
        "FA",
        "AK1 M 1",
        _loop("AK2 O 999999", "AK2 M 1", _loop("AK3 O 999999", "AK3 M 1", "AK4 O 99"), "AK5 M 1"),
        "AK9 M 1",
    ),
)

SETS: Mapping[str, SetTable] = MappingProxyType({t.code: t for t in _SETS})
"""Transaction set identifier (ST01) -> structure."""

RELEASES: Mapping[str, str] = MappingProxyType({"00401": "004010", "00501": "005010"})
"""GS08's first five characters -> the release whose segment definitions apply."""
