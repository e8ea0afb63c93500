from __future__ import annotations

import pytest

from integration_core.edi.delimiters import Delimiters, sniff
from integration_core.edi.errors import EdiError, NoteCode

ISA = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *260301*0930*U*"
       "00401*000000001*0*P*>~")  # fmt: skip


def test_fixed_width_isa_gives_all_four_delimiters() -> None:
    assert len(ISA) == 106
    assert sniff(ISA + "GS*") == (Delimiters("*", ">", "", "~"), 106)


def test_repetition_separator_from_00402_only() -> None:
    v5010 = ISA.replace("*U*00401*", "*^*00501*")
    assert sniff(v5010) == (Delimiters("*", ">", "^", "~"), 106)
    v4010_caret = ISA.replace("*U*00401*", "*^*00401*")
    assert sniff(v4010_caret) == (Delimiters("*", ">", "", "~"), 106)


def test_newline_terminator_and_other_separators() -> None:
    text = ISA.replace("*", "|").replace(">~", "`\n")
    assert sniff(text) == (Delimiters("|", "`", "", "\n"), 106)


def test_short_padding_still_sniffed_by_splitting() -> None:
    short = ISA.replace("SENDER         ", "SENDER")
    d, end = sniff(short)  # type: ignore[misc]
    assert d == Delimiters("*", ">", "", "~") and short[end - 1] == "~" and end == 97


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ISA", NoteCode.PREMATURE_END),
        ("ISA0000", NoteCode.ELEMENT_SEPARATOR),
        (ISA[:60], NoteCode.PREMATURE_END),
        (ISA.replace(">~", "A~"), NoteCode.COMPONENT_SEPARATOR),
        (ISA.replace(">~", ">*"), NoteCode.SEGMENT_TERMINATOR),
    ],
)
def test_unreadable_isa_is_an_error_naming_the_ta1_code(text: str, code: NoteCode) -> None:
    found = sniff(text)
    assert isinstance(found, EdiError) and found.code is code and found.segment_id == "ISA"


def test_delimiters_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Delimiters("*", "*", "", "~")
