from __future__ import annotations

from integration_core.edi import Limits, NoteCode, parse
from integration_core.edi.document import COMPONENT, REPETITION
from integration_core.edi.errors import AppCode, GroupCode, SetCode

ISA = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260301*0930*U*"
       "00401*000000007*0*P*>~")  # fmt: skip
GS = "GS*AR*SENDER*RECEIVER*20260301*0930*7*X*004010~"
SET = "ST*943*0001~W06*F*DO1*20260301~W27*M*SCAC~W04*5*EA**VN*A>B~W03*5~SE*6*0001~"


def doc(body: str = GS + SET + "GE*1*7~", iea: str = "IEA*1*000000007~") -> str:
    return ISA + body + iea


def codes(text: str) -> list[str]:
    return [e.code.value for e in parse(text).errors]


def test_well_formed_interchange_has_no_errors_and_its_structure() -> None:
    p = parse(doc())
    assert p.errors == ()
    assert p.interchange is not None
    (group,) = p.interchange.groups
    (ts,) = group.sets
    assert (group.functional_id, group.control, ts.code, ts.control) == ("AR", "7", "943", "0001")
    assert [s.tag for s in ts.segments] == ["ST", "W06", "W27", "W04", "W03", "SE"]
    assert ts.segments[3].get(5) == "A" + COMPONENT + "B"  # components kept apart


def test_crlf_after_terminators_and_bytes_input() -> None:
    crlf = doc().replace("~", "~\r\n").encode()
    assert parse(crlf).interchange == parse(doc()).interchange
    assert parse(crlf).errors == ()


def test_repetition_separator_splits_in_005010() -> None:
    text = doc().replace("*U*00401*", "*^*00501*").replace("VN*A>B", "VN*A^B")
    p = parse(text)
    assert p.interchange is not None
    assert p.interchange.groups[0].sets[0].segments[3].get(5) == "A" + REPETITION + "B"


def test_each_control_number_and_count_mismatch_is_named() -> None:
    bad = doc(GS + SET.replace("SE*6*0001", "SE*7*0002") + "GE*2*8~", "IEA*2*000000009~")
    errors = parse(bad).errors
    found = {(e.code, e.segment_id, e.element_position, e.segment_position) for e in errors}
    assert found == {
        (SetCode.SEGMENT_COUNT, "SE", 1, 6), (SetCode.CONTROL_NUMBER_MISMATCH, "SE", 2, 6),
        (GroupCode.SET_COUNT, "GE", 1, 9), (GroupCode.CONTROL_NUMBER_MISMATCH, "GE", 2, 9),
        (NoteCode.GROUP_COUNT, "IEA", 1, 10), (NoteCode.CONTROL_NUMBER_MISMATCH, "IEA", 2, 10),
    }  # fmt: skip
    assert {(e.group, e.set_index) for e in errors if isinstance(e.code, SetCode)} == {(0, 0)}


def test_missing_trailers_are_reported_not_raised() -> None:
    assert codes(doc(GS + SET.replace("SE*6*0001~", ""), "")) == ["2", "3", "023"]
    assert codes(doc(GS + SET, "IEA*1*000000007~")) == ["3"]


def test_stray_segments_outside_sets() -> None:
    assert codes(doc("N1*WH*X~" + GS + SET + "GE*1*7~")) == ["024"]
    assert codes(doc(GS + SET + "GE*1*7~") + "GS*AR~") == ["022"]


def test_duplicate_set_control_number_in_a_group() -> None:
    p = parse(doc(GS + SET + SET + "GE*2*7~"))
    assert [(e.code, e.set_index) for e in p.errors] == [(SetCode.CONTROL_NUMBER_NOT_UNIQUE, 1)]


def test_isa_fields_are_checked_with_their_ta1_codes() -> None:
    bad = doc().replace("*260301*0930*", "*261301*0990*").replace("*0*P*", "*2*X*")
    assert codes(bad) == ["014", "015", "019", "020"]


def test_limits_come_before_parsing() -> None:
    assert codes(doc()) == []
    too_big = parse(doc(), Limits(max_bytes=50))
    assert too_big.interchange is None and too_big.errors[0].code is AppCode.TOO_LARGE
    too_many = parse(doc(), Limits(max_segments=5))
    assert too_many.interchange is None and too_many.errors[0].code is AppCode.TOO_LARGE


def test_garbage_never_raises() -> None:
    for junk in (b"", b"hello", b"ISA*", b"\xff\xfe" * 100, (ISA + "\x1f").encode()):
        p = parse(junk)
        assert p.interchange is None and p.errors
