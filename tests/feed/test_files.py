"""The drop folder's protocol: which names are ready, their kind, where they go."""

from __future__ import annotations

from collections.abc import Callable

from integration_core.feed import (
    FileKind,
    FileOutcome,
    FileVerdict,
    NameState,
    Problem,
    destination,
    file_kind,
    name_state,
    ready,
)


def test_only_complete_visible_files_are_ready_in_name_order() -> None:
    names = ["b.csv", "a.x12.part", "a.csv", ".hidden.csv", "c.edi", "x.csv.error.json",
             "y.x12.ack.x12", "z.txt"]
    assert ready(names) == ["a.csv", "b.csv", "c.edi", "z.txt"]
    assert name_state("a.x12.part") is NameState.PARTIAL
    assert name_state(".hidden.csv") is NameState.IGNORED
    assert name_state("x.csv.error.json") is NameState.IGNORED


def test_the_kind_comes_from_the_suffix() -> None:
    assert file_kind("M-1.CSV") is FileKind.CSV
    assert file_kind("940.x12") is FileKind.X12 and file_kind("in.edi") is FileKind.X12
    assert file_kind("notes.txt") is FileKind.UNSUPPORTED


def test_a_taken_name_gets_the_digest_before_its_suffix() -> None:
    d = "0123456789abcdef" * 4
    def taken(*names: str) -> Callable[[str], bool]:
        return set(names).__contains__

    assert destination("a.csv", d, taken("b.csv")) == "a.csv"
    assert destination("a.csv", d, taken("a.csv")) == "a.0123456789ab.csv"
    assert destination("README", d, taken("README")) == "README.0123456789ab"
    assert destination("a.csv", d, taken("a.csv", "a.0123456789ab.csv")) == (
        "a.0123456789ab-2.csv")


def test_a_repeat_is_answered_with_the_first_verdict_and_its_problems() -> None:
    first = FileOutcome("m1.csv", "d" * 64, FileKind.CSV, FileVerdict.FAILED,
                        (Problem("quantity: bad", line=3, raw="x,y", field="quantity"),),
                        carried_out=1, ack=b"ISA*..~", detail="1 rows")
    again = FileOutcome.repeat("m1-again.csv", "d" * 64, first.ledger())
    assert again.verdict is FileVerdict.FAILED and again.folder == "failed"
    assert again.repeat_of == "m1.csv" and again.problems == first.problems
    assert again.ack == b"ISA*..~" and again.carried_out == 0
    assert again.report()["problems"] == [{"line": 3, "field": "quantity",
                                           "cause": "quantity: bad", "raw": "x,y"}]
