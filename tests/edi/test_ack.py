from __future__ import annotations

from integration_core.edi import EdiError, ElementCode, NoteCode, SetCode, parse
from integration_core.edi.ack import functional_ack, interchange_verdict

HEAD = ("ISA*00*          *00*          *ZZ*S              *ZZ*R              *260301*0930*U*"
        "00401*000000001*0*P*>~GS*IB*S*R*20260301*0930*1*X*004010~")  # fmt: skip
SET = "ST*846*{c}~BIA*00*MM*R1*20260301~LIN*1*SK*A~QTY*17*1~SE*5*{c}~"


def test_interchange_verdict_notes_padding_and_rejects_the_rest() -> None:
    pad = EdiError(NoteCode.SENDER_ID, "short")
    bad = EdiError(NoteCode.CONTROL_NUMBER_MISMATCH, "mismatch")
    assert interchange_verdict([]) == ("A", None)
    assert interchange_verdict([pad]) == ("E", NoteCode.SENDER_ID)
    assert interchange_verdict([pad, bad]) == ("R", NoteCode.CONTROL_NUMBER_MISMATCH)


def test_partial_acceptance_and_element_positions_with_components() -> None:
    ic = parse(HEAD + SET.format(c="0001") + SET.format(c="0002") + "GE*2*1~IEA*1*000000001~")
    assert ic.interchange is not None
    group = ic.interchange.groups[0]
    errors = [
        EdiError(SetCode.SEGMENT_COUNT, "count", "SE", 5, 1, group=0, set_index=0),
        EdiError(ElementCode.TOO_LONG, "long", "LIN", 3, 3, 2, 234, "ABC", "LIN", 0, 1),
    ]
    ack = functional_ack(group, 0, errors, [False, True], "0007")
    lines = ["*".join((s.tag, *s.elements)) for s in ack.segments]
    assert lines == ["ST*997*0007", "AK1*IB*1", "AK2*846*0001", "AK5*R*4", "AK2*846*0002",
                     "AK3*LIN*3*LIN*8", "AK4*3\x1f2*234*5*ABC", "AK5*E", "AK9*P*2*2*1",
                     "SE*10*0007"]  # fmt: skip
