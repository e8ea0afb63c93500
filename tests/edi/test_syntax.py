from __future__ import annotations

from integration_core.edi import ElementCode, SegmentCode, parse
from integration_core.edi.document import Segment, TransactionSet
from integration_core.edi.segments import SEGMENTS
from integration_core.edi.syntax import check_elements, check_interchange, check_set
from integration_core.edi.tables import SETS


def ts(*segments: str) -> TransactionSet:
    segs = [Segment(s.split("*")[0], tuple(s.split("*")[1:])) for s in segments]
    return TransactionSet(tuple(segs))


def found(t: TransactionSet) -> list[tuple[str, str, int, int]]:
    return [(e.code.value, e.segment_id, e.segment_position, e.element_position)
            for e in check_set(t, SETS[t.code], "004010")]  # fmt: skip


def test_a_clean_945_has_no_findings() -> None:
    assert found(ts("ST*945*0001", "W06*F*O1*20260301", "LX*1", "W12*CC*1*1**EA**SK*A",
                    "W03*1", "SE*6*0001")) == []  # fmt: skip


def test_structure_codes() -> None:
    assert found(ts("ST*945*0001", "W06*F*O1*20260301", "LX*1", "W12*CC*1*1**EA**SK*A",
                    "SE*5*0001")) == [("3", "W03", 5, 0)]  # fmt: skip
    assert found(
        ts(
            "ST*945*0001",
            "W06*F*O1*20260301",
            "W06*F*O1*20260301",
            "LX*1",
            "W12*CC*1*1**EA**SK*A",
            "W03*1",
            "SE*7*0001",
        )
    ) == [("5", "W06", 3, 0)]
    assert found(
        ts(
            "ST*945*0001",
            "W06*F*O1*20260301",
            "ZZZ*1",
            "LX*1",
            "W12*CC*1*1**EA**SK*A",
            "W03*1",
            "SE*7*0001",
        )
    ) == [("1", "ZZZ", 3, 0)]
    assert found(
        ts(
            "ST*945*0001",
            "W06*F*O1*20260301",
            "LX*1",
            "W12*CC*1*1**EA**SK*A",
            "W03*1",
            "BSN*00*SH1*20260301*1200",
            "SE*7*0001",
        )
    ) == [("6", "BSN", 6, 0)]
    assert found(
        ts(
            "ST*945*0001",
            "W06*F*O1*20260301",
            "LX*1",
            "W12*CC*1*1**EA**SK*A",
            "W03*1",
            "G62*11*20260301",
            "SE*7*0001",
        )
    ) == [("7", "G62", 6, 0)]


def test_loops_repeat_by_their_trigger() -> None:
    lines = [f"LX*{i}" if k == 0 else "W12*CC*1*1**EA**SK*A" for i in range(1, 4)
             for k in range(2)]  # fmt: skip
    assert found(ts("ST*945*0001", "W06*F*O1*20260301", "N1*ST*A", "N1*SF*B", *lines,
                    "W03*3", "SE*13*0001")) == []  # fmt: skip
    ak = ts("ST*997*0001", "AK1*SW*1", *("AK2*945*0001", "AK3*W12*4", "AK4*1**1", "AK5*R")
            * 2, "AK9*R*2*2*0", "SE*12*0001")  # fmt: skip
    assert found(ak) == []


def check(seg: str) -> list[tuple[str, int, str]]:
    s = Segment(seg.split("*")[0], tuple(seg.split("*")[1:]))
    return [(e.code.value, e.element_position, e.value)
            for e in check_elements(s, SEGMENTS["004010"][s.tag], 4)]  # fmt: skip


def test_element_codes() -> None:
    assert check("W01*12*CA*000100000010*VN*000100") == []
    assert check("W01**CA*000100000010") == [("1", 1, "")]
    assert check("W01*1*E*000100000010") == [("4", 2, "E")]
    assert check("W01*1*EAX*000100000010") == [("5", 2, "EAX")]
    assert check("W01*1X*EA*000100000010") == [("6", 1, "1X")]
    assert check("G62*10*20261301") == [("8", 2, "20261301")]
    assert check("G62*10*20260101*W*2561") == [("9", 4, "2561")]
    assert check("W05*Q*ORD1") == [("7", 1, "Q")]
    assert check("N1*ST*A*92") == [("2", 4, "")]
    assert check("N1*ST") == [("2", 2, "")]
    assert check("LX*1*2") == [("3", 2, "")]
    assert check("W01*1*EA") == [("2", 3, "")]  # neither U.P.C. nor product id (R0305)


def test_trailing_empty_elements_are_not_extra() -> None:
    assert check("LX*1**") == []


def test_group_version_and_set_support_are_checked() -> None:
    head = ("ISA*00*          *00*          *ZZ*S              *ZZ*R              *260301*0930*U*"
            "00401*000000001*0*P*>~")  # fmt: skip
    text = head + "GS*OW*S*R*20260301*0930*1*X*003030~ST*940*0001~SE*2*0001~GE*1*1~IEA*1*1~"
    ic = parse(text).interchange
    assert ic is not None
    assert [e.code.value for e in check_interchange(ic)] == ["2"]
    wrong_group = text.replace("003030", "004010").replace("GS*OW", "GS*SW")
    ic = parse(wrong_group).interchange
    assert ic is not None
    assert [(e.code.value, e.group, e.set_index) for e in check_interchange(ic)] == [("6", 0, 0)]
    unknown = wrong_group.replace("GS*SW", "GS*OW").replace("ST*940", "ST*850")
    ic = parse(unknown).interchange
    assert ic is not None
    assert [e.code.value for e in check_interchange(ic)] == ["1"]
    assert SegmentCode.UNRECOGNIZED.value == "1" and ElementCode.EXCLUSION.value == "10"
