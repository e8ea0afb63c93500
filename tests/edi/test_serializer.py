from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_core.edi import Delimiters, Interchange, parse, serialize
from integration_core.edi.document import COMPONENT, Segment, TransactionSet
from integration_core.edi.envelope import make_set, wrap
from tests.edi.conftest import fixture

DELIMS = [Delimiters("*", ">", "", "~"), Delimiters("|", ":", "^", "\n"),
          Delimiters("^", "\\", "", "'"), Delimiters("*", "`", "{", "\r")]  # fmt: skip
# Values in the X12 basic character set minus every delimiter above.
TEXT = st.text(alphabet="ABCXYZ0129 -.,&()/", min_size=0, max_size=8)
VALUE = st.one_of(TEXT, st.lists(TEXT, min_size=2, max_size=3).map(COMPONENT.join))
SEGMENT = st.builds(
    lambda tag, els: Segment(tag, tuple(els)),
    st.sampled_from(["N1", "W01", "REF", "LX", "G62"]),
    st.lists(VALUE, min_size=1, max_size=6).filter(lambda e: e[-1] != ""),
)


@st.composite
def interchanges(draw: st.DrawFn) -> tuple[Interchange, Delimiters]:
    sets = [make_set("940", f"{i:04d}", draw(st.lists(SEGMENT, min_size=1, max_size=6)))
            for i in range(draw(st.integers(1, 3)))]  # fmt: skip
    ic = wrap(
        sets,
        functional_id="OW",
        sender=("ZZ", "A"),
        receiver=("ZZ", "B"),
        control=draw(st.integers(1, 999_999_999)),
        when=datetime(2026, 3, 1, tzinfo=UTC),
    )
    return ic, draw(st.sampled_from(DELIMS))


@settings(max_examples=150, deadline=None)
@given(interchanges())
def test_serialize_then_parse_gives_the_same_document_with_any_delimiters(
    case: tuple[Interchange, Delimiters],
) -> None:
    ic, d = case
    raw = serialize(ic, d, line_break="" if d.segment in "\r\n" else "\r\n")
    p = parse(raw)
    assert p.errors == ()
    assert p.interchange is not None
    assert p.interchange.groups == ic.groups
    assert p.interchange.delimiters.component == d.component
    assert parse(serialize(p.interchange)).interchange == p.interchange


def test_our_fixtures_round_trip_byte_for_byte() -> None:
    for name in ("846_snapshot.edi", "947_adjustments.edi", "940_005010.edi"):
        raw = fixture(name)
        ic = parse(raw).interchange
        assert ic is not None
        assert serialize(ic, line_break="\n") == raw


def test_a_value_holding_a_delimiter_is_refused() -> None:
    ts = make_set("940", "0001", [Segment("N9", ("ZZ", "A~B"))])
    ic = wrap(
        [ts],
        functional_id="OW",
        sender=("ZZ", "A"),
        receiver=("ZZ", "B"),
        control=1,
        when=datetime(2026, 3, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="delimiter"):
        serialize(ic)
    assert isinstance(ts, TransactionSet)
