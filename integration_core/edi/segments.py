"""Segment definitions as data: each segment's elements (requirement, type, min/max length,
data element reference number) and its syntax rules, for release 004010, with the 005010
differences as overrides.

An element is written ``"REQ TYPE MIN/MAX REF"``: REQ is M (mandatory), O (optional) or X
(conditional, governed by a rule); TYPE is AN, ID, DT, TM, R, N0/N2 or C (composite, checked
for presence only); REF is the data element number AK402 reports (0 where not given). Rules are
the standard's relational conditions: ``P0304`` (paired: both or neither), ``R0203`` (at least
one), ``C0405`` (if the first, all the others), ``E0102`` (at most one). Positions the warehouse
mapping does not read and whose definition is not pinned down here are ``ANY``: optional text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

ANY = "O AN 1/264 0"


@dataclass(frozen=True, slots=True)
class Element:
    req: str
    type: str
    min: int
    max: int
    ref: int


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    positions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SegmentDef:
    tag: str
    elements: tuple[Element, ...]
    rules: tuple[Rule, ...] = ()


def _element(spec: str) -> Element:
    req, kind, span, ref = spec.split()
    lo, hi = span.split("/")
    return Element(req, kind, int(lo), int(hi), int(ref) if ref.isdigit() else 0)


def _rule(spec: str) -> Rule:
    digits = spec[1:]
    return Rule(spec[0], tuple(int(digits[i : i + 2]) for i in range(0, len(digits), 2)))


def _seg(tag: str, *elements: str, rules: str = "") -> SegmentDef:
    return SegmentDef(
        tag, tuple(_element(e) for e in elements), tuple(_rule(r) for r in rules.split())
    )


def _any(n: int) -> tuple[str, ...]:
    return (ANY,) * n


_PAIR = ("X ID 2/2 235", "X AN 1/48 234")  # product/service id qualifier + id

_004010 = (
    # envelopes and acknowledgments
    _seg(
        "GS",
        "M ID 2/2 479",
        "M AN 2/15 142",
        "M AN 2/15 124",
        "M DT 8/8 373",
        "M TM 4/8 337",
        "M N0 1/9 28",
        "M ID 1/2 455",
        "M AN 1/12 480",
    ),
    _seg("GE", "M N0 1/6 97", "M N0 1/9 28"),
    _seg("IEA", "M N0 1/5 0", "M N0 9/9 0"),
    _seg("TA1", "M N0 9/9 0", "M DT 6/6 0", "M TM 4/4 0", "M ID 1/1 0", "M ID 3/3 0"),
    _seg("ST", "M ID 3/3 143", "M AN 4/9 329"),
    _seg("SE", "M N0 1/10 96", "M AN 4/9 329"),
    _seg("AK1", "M ID 2/2 479", "M N0 1/9 28"),
    _seg("AK2", "M ID 3/3 143", "M AN 4/9 329"),
    _seg("AK3", "M ID 2/3 721", "M N0 1/6 719", "O AN 1/6 447", "O ID 1/3 720"),
    _seg("AK4", "M C 1/99 0", "O N0 1/4 725", "M ID 1/3 723", "O AN 1/99 724"),
    _seg(
        "AK5",
        "M ID 1/1 717",
        "O ID 1/3 718",
        "O ID 1/3 718",
        "O ID 1/3 718",
        "O ID 1/3 718",
        "O ID 1/3 718",
    ),
    _seg(
        "AK9",
        "M ID 1/1 715",
        "M N0 1/6 97",
        "M N0 1/6 123",
        "M N0 1/6 2",
        "O ID 1/3 716",
        "O ID 1/3 716",
        "O ID 1/3 716",
        "O ID 1/3 716",
        "O ID 1/3 716",
    ),
    # parties, references, dates, notes
    _seg(
        "N1",
        "M ID 2/3 98",
        "X AN 1/60 93",
        "X ID 1/2 66",
        "X AN 2/80 67",
        "O ID 2/2 706",
        "O ID 2/3 98",
        rules="R0203 P0304",
    ),
    _seg("N2", "M AN 1/60 93", "O AN 1/60 93"),
    _seg("N3", "M AN 1/55 166", "O AN 1/55 166"),
    _seg(
        "N4",
        "O AN 2/30 19",
        "O ID 2/2 156",
        "O ID 3/15 116",
        "O ID 2/3 26",
        "X ID 1/2 309",
        "O AN 1/30 310",
    ),
    _seg(
        "PER",
        "M ID 2/2 366",
        "O AN 1/60 93",
        "X ID 2/2 365",
        "X AN 1/80 364",
        "X ID 2/2 365",
        "X AN 1/80 364",
        "X ID 2/2 365",
        "X AN 1/80 364",
        "O AN 1/20 443",
        rules="P0304 P0506 P0708",
    ),
    _seg(
        "G61",
        "M ID 2/2 366",
        "M AN 1/60 93",
        "X ID 2/2 365",
        "X AN 1/80 364",
        "O AN 1/20 443",
        rules="P0304",
    ),
    _seg(
        "N9",
        "M ID 2/3 128",
        "X AN 1/30 127",
        "X AN 1/45 369",
        "O DT 8/8 373",
        "X TM 4/8 337",
        "O ID 2/2 623",
        "O C 1/99 0",
        rules="R0203",
    ),
    _seg("REF", "M ID 2/3 128", "X AN 1/30 127", "X AN 1/80 352", "O C 1/99 0", rules="R0203"),
    _seg(
        "G62",
        "X ID 2/2 432",
        "X DT 8/8 373",
        "X ID 1/2 176",
        "X TM 4/8 337",
        "O ID 2/2 623",
        rules="P0102 P0304",
    ),
    _seg(
        "DTM",
        "M ID 3/3 374",
        "X DT 8/8 373",
        "X TM 4/8 337",
        "O ID 2/2 623",
        "X ID 2/3 1250",
        "X AN 1/35 1251",
    ),
    _seg("NTE", "O ID 3/3 363", "M AN 1/80 352"),
    _seg("LX", "M N0 1/6 554"),
    _seg("CUR", "M ID 2/3 98", "M ID 3/3 100", *_any(19)),
    _seg("MEA", *_any(12)),
    _seg("FOB", "M ID 2/2 146", *_any(8)),
    _seg(
        "CTT",
        "M N0 1/6 354",
        "O R 1/10 347",
        "X R 1/10 81",
        "X ID 2/2 355",
        "X R 1/8 183",
        "X ID 2/2 355",
        "O AN 1/80 352",
    ),
    # 940 warehouse shipping order
    _seg(
        "W05",
        "M ID 1/1 473",
        "M AN 1/22 324",
        "O AN 1/22 324",
        "X N0 6/6 0",
        "X AN 1/22 0",
        "O ID 2/2 640",
        "O ID 1/2 306",
        rules="P0405",
    ),
    _seg("W09", *_any(10)),
    _seg(
        "W66",
        "M ID 2/2 146",
        "M ID 1/2 91",
        "O ID 3/3 335",
        "X ID 1/2 309",
        "O AN 1/35 387",
        *_any(4),
        "O ID 2/4 140",
        *_any(2),
    ),
    _seg(
        "W01",
        "M R 1/15 330",
        "M ID 2/2 355",
        "X AN 12/12 438",
        *_PAIR,
        *_PAIR,
        *_any(5),
        "O AN 1/30 461",
        *_any(4),
        rules="R0305 P0405 P0607",
    ),
    _seg("G69", "M AN 1/45 369"),
    _seg("W20", *_any(9)),
    _seg(
        "W76",
        "M R 1/10 347",
        "X R 1/10 81",
        "X ID 2/2 355",
        "X R 1/8 183",
        "X ID 2/2 355",
        rules="P0203 P0405",
    ),
    # 945 warehouse shipping advice, 943 stock transfer shipment advice
    _seg(
        "W06",
        "M ID 1/1 473",
        "O AN 1/22 324",
        "M DT 8/8 373",
        "O AN 1/30 145",
        "O AN 1/30 0",
        "O AN 1/22 324",
        "X AN 1/22 0",
        "X N0 6/6 0",
        "O ID 2/2 640",
        "O ID 1/2 306",
    ),
    _seg(
        "W27",
        "M ID 1/2 91",
        "X ID 2/4 140",
        "O AN 1/35 387",
        "O ID 2/2 146",
        "O ID 2/2 40",
        "O AN 1/4 206",
        "O AN 1/10 207",
        *_any(3),
    ),
    _seg("W28", *_any(12)),
    _seg("W10", *_any(8)),
    _seg("G72", *_any(12)),
    _seg("MAN", "M ID 1/2 88", "M AN 1/48 87", *_any(4)),
    _seg("PAL", *_any(14)),
    _seg(
        "W12",
        "M ID 2/2 368",
        "X R 1/15 330",
        "X R 1/10 382",
        "X R 1/15 0",
        "X ID 2/2 355",
        "O AN 12/12 438",
        *_PAIR,
        "O AN 1/30 461",
        *_any(13),
    ),
    _seg(
        "W03",
        "M R 1/10 382",
        "X R 1/10 81",
        "X ID 2/2 355",
        "X R 1/8 183",
        "X ID 2/2 355",
        *_any(2),
        rules="P0203 P0405",
    ),
    _seg(
        "W04",
        "M R 1/15 0",
        "M ID 2/2 355",
        "X AN 12/12 438",
        *_PAIR,
        *_PAIR,
        *_any(2),
        "O AN 1/30 461",
        *_any(6),
        rules="R0305",
    ),
    # 944 stock transfer receipt advice
    _seg("W17", "M ID 1/1 0", "M DT 8/8 373", "M AN 1/30 0", "O AN 1/22 324", *_any(6)),
    _seg(
        "W07",
        "M R 1/15 0",
        "M ID 2/2 355",
        "X AN 12/12 438",
        *_PAIR,
        *_PAIR,
        "O AN 1/30 461",
        *_any(6),
        rules="R0305",
    ),
    _seg("W08", *_any(6)),
    _seg("W14", "M R 1/15 0", *_any(4)),
    # 947 inventory adjustment advice
    _seg(
        "W15",
        "M DT 8/8 373",
        "X AN 1/22 0",
        "X AN 1/22 0",
        "O ID 2/2 353",
        "O ID 2/2 640",
        "O ID 1/2 306",
        rules="R0203",
    ),
    _seg(
        "W19",
        "M ID 2/2 0",
        "M R 1/10 0",
        "M ID 2/2 355",
        "X AN 12/12 438",
        *_PAIR,
        *_PAIR,
        "O AN 1/12 461",
        *_any(9),
        rules="R0406",
    ),
    # 846 inventory inquiry/advice
    _seg(
        "BIA",
        "M ID 2/2 353",
        "M ID 2/2 755",
        "M AN 1/30 127",
        "M DT 8/8 373",
        "O TM 4/8 337",
        "O ID 1/2 306",
    ),
    _seg("LIN", "O AN 1/20 350", "M ID 2/2 235", "M AN 1/48 234", *(_PAIR * 14)),
    _seg("PID", *_any(9)),
    _seg("QTY", "M ID 2/3 673", "X R 1/15 380", "O C 1/99 0", "X AN 1/30 61"),
    _seg("SCH", *_any(12)),
    # 856 ship notice/manifest
    _seg(
        "BSN",
        "M ID 2/2 353",
        "M AN 2/30 396",
        "M DT 8/8 373",
        "M TM 4/8 337",
        "O ID 4/4 1005",
        "X ID 2/2 640",
        "O ID 3/3 641",
    ),
    _seg("HL", "M AN 1/12 628", "O AN 1/12 734", "M ID 1/2 735", "O ID 1/1 736"),
    _seg(
        "SN1",
        "O AN 1/20 350",
        "M R 1/10 382",
        "M ID 2/2 355",
        "O R 1/15 646",
        "X R 1/15 330",
        "X ID 2/2 355",
        "O R 1/15 728",
        "O ID 2/2 668",
    ),
    _seg("PRF", "M AN 1/22 324", "O AN 1/8 328", "O AN 1/8 327", "O DT 8/8 373", *_any(4)),
    _seg(
        "PO4",
        "O N0 1/6 356",
        "X R 1/8 357",
        "X ID 2/2 355",
        "X AN 3/5 103",
        "O ID 1/2 187",
        "X R 1/9 384",
        "X ID 2/2 355",
        *_any(11),
    ),
    _seg("PKG", *_any(6)),
    _seg(
        "TD1",
        "O AN 3/5 103",
        "X N0 1/7 80",
        "O ID 1/1 23",
        "X AN 1/30 22",
        "O AN 1/50 79",
        "O ID 1/2 187",
        "X R 1/10 81",
        "X ID 2/2 355",
        "X R 1/8 183",
        "X ID 2/2 355",
    ),
    _seg(
        "TD5",
        "O ID 1/2 133",
        "X ID 1/2 66",
        "X AN 2/80 67",
        "X ID 1/2 91",
        "X AN 1/35 387",
        *_any(10),
    ),
    _seg("TD3", "O ID 2/2 40", "O AN 1/4 206", "X AN 1/10 207", *_any(7)),
    _seg("TD4", *_any(5)),
)

#: 005010 differences: the implementation convention reference (ST03, AK103, AK203) and the
#: eighth W05 element.
_005010_CHANGES = (
    _seg("ST", "M ID 3/3 143", "M AN 4/9 329", "O AN 1/35 1705"),
    _seg("AK1", "M ID 2/2 479", "M N0 1/9 28", "O AN 1/12 480"),
    _seg("AK2", "M ID 3/3 143", "M AN 4/9 329", "O AN 1/35 1705"),
    _seg(
        "W05",
        "M ID 1/1 473",
        "M AN 1/22 324",
        "O AN 1/22 324",
        "X N0 6/6 0",
        "X AN 1/22 0",
        "O ID 2/2 640",
        "O ID 1/2 306",
        "O ID 2/2 0",
        rules="P0405",
    ),
)


def _index(defs: tuple[SegmentDef, ...]) -> dict[str, SegmentDef]:
    return {d.tag: d for d in defs}


SEGMENTS: Mapping[str, Mapping[str, SegmentDef]] = MappingProxyType(
    {
        "004010": MappingProxyType(_index(_004010)),
        "005010": MappingProxyType(_index(_004010) | _index(_005010_CHANGES)),
    }
)
"""Release -> segment tag -> definition."""

#: Code lists checked (AK403 7), by data element reference number.
CODES: Mapping[int, frozenset[str]] = MappingProxyType(
    {
        473: frozenset("ABCDEFGLNRSTX"),  # W05-01 / W06-01 order status / reporting code
        717: frozenset("AEMRWX"),
        715: frozenset("AEMPRWX"),
    }
)
