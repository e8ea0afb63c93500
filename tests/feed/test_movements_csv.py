"""CSV movement files -> canonical movements, with the line and raw text of every bad row."""

from __future__ import annotations

from decimal import Decimal

from integration_core.feed import CsvFile, CsvLimits, digest, read_movements
from integration_core.models import Catalog, Item, MovementKind, UnitConversion

CATALOG = Catalog(Item(sku=f"SKU-{i:05d}", conversions=(UnitConversion(unit="CS", factor=12),))
                  for i in range(3))
HEADER = "movement_id,kind,sku,location,quantity,unit,occurred_at\n"


def read(text: str, limits: CsvLimits | None = None) -> CsvFile:
    data = text.encode()
    return read_movements(data, CATALOG, digest(data), limits or CsvLimits())


def test_a_good_file_gives_one_movement_a_row_in_base_units() -> None:
    got = read(HEADER + "m1,receipt,SKU-00001,A-01,2,CS,2026-01-05T08:00:00Z\r\n"
               "m2,adjustment,SKU-00002,A-01,-3,,2026-01-05T09:00:00Z\n")
    assert got.refused is None and got.rejected == [] and got.rows == 2
    (l1, m1), (l2, m2) = got.movements
    assert (l1, m1.movement_id, m1.quantity_base) == (2, "m1", 24)
    assert (l2, m2.kind, m2.quantity, m2.quantity_base) == (
        3, MovementKind.ADJUSTMENT, Decimal(-3), -3)


def test_columns_in_any_order_optional_ones_left_out_and_lists() -> None:
    text = ("sku,quantity,kind,location,occurred_at,serials,references\n"
            "SKU-00000,1,pick,B-02,2026-01-05T08:00:00Z,,ORD-1|ASN-2\n\n")
    got = read(text)
    ((line, m),) = got.movements
    assert m.references == ("ORD-1", "ASN-2") and m.kind is MovementKind.PICK
    assert m.quantity_base == -1
    # no movement_id: the file's digest and the line name it, the same on every reading
    assert m.movement_id == f"{digest(text.encode())[:16]}-2" and line == 2
    assert read(text).movements[0][1].movement_id == m.movement_id


def test_bad_rows_are_rejected_with_line_field_and_raw_text_and_the_rest_read() -> None:
    rows = ["m1,receipt,SKU-00001,A-01,2,,2026-01-05T08:00:00Z",
            "m2,receipt,SKU-99999,A-01,2,,2026-01-05T08:00:00Z",   # unknown SKU
            "m3,pick,SKU-00001,A-01,-1,,2026-01-05T08:00:00Z",     # sign given by the kind
            "m4,receipt,SKU-00001,A-01,2,,yesterday",              # not a time
            "m5,receipt,SKU-00001,A-01,2",                         # too few fields
            'm6,receipt,SKU-00001,"A-\n01",1,,2026-01-05T08:00:00Z',  # a quoted line feed
            "m7,receipt,SKU-00001,A-01,1,PL,2026-01-05T08:00:00Z",  # unknown unit
            "m8,receipt,SKU-00002,A-02,5,,2026-01-05T08:00:00Z"]
    got = read(HEADER + "\n".join(rows) + "\n")
    assert [(line, m.movement_id) for line, m in got.movements] == [(2, "m1"), (10, "m8")]
    bad = {p.line or 0: p for p in got.rejected}
    assert sorted(bad) == [3, 4, 5, 6, 7, 9]
    assert bad[3].field == "sku" and "unknown SKU 'SKU-99999'" in bad[3].cause
    assert bad[3].raw == rows[1]
    assert bad[4].field == "quantity" and "positive" in bad[4].cause
    assert bad[5].field == "occurred_at"
    assert bad[6].cause == "5 fields, the header has 7"
    assert bad[7].raw == rows[5] and bad[7].field == "location"  # both lines, one record
    assert "unknown unit 'PL'" in bad[9].cause
    assert got.rows == 8


def test_a_wrong_header_refuses_the_file_naming_the_column() -> None:
    got = read("movement_id,kind,sku,location,qty,occurred_at\nm1,receipt,SKU-00001,A,1,x\n")
    assert got.refused is not None and got.refused.line == 1
    assert "unknown column(s) ['qty']" in got.refused.cause and got.movements == []
    missing = read("kind,sku,location,occurred_at\n")
    assert missing.refused is not None and "['quantity'] missing" in missing.refused.cause
    twice = read("kind,sku,sku,location,quantity,occurred_at\n")
    assert twice.refused is not None and "['sku'] named twice" in twice.refused.cause
    assert read("").refused is not None


def test_limits_refuse_before_parsing_and_encoding_is_checked() -> None:
    body = HEADER + "m1,receipt,SKU-00001,A-01,2,,2026-01-05T08:00:00Z\n" * 5
    over_rows = read(body, CsvLimits(max_rows=4))
    assert over_rows.refused is not None and "over the limit of 4 rows" in over_rows.refused.cause
    over_bytes = read(body, CsvLimits(max_bytes=100))
    assert over_bytes.refused is not None and "over the limit of 100" in over_bytes.refused.cause
    assert read(body, CsvLimits(max_rows=5)).refused is None
    latin = (HEADER + "m1,receipt,SKU-00001,Zürich,2,,2026-01-05T08:00:00Z\n").encode("latin-1")
    got = read_movements(latin, CATALOG, digest(latin))
    assert got.refused is not None and got.refused.line == 2
    assert "not UTF-8: byte 0xfc" in got.refused.cause
    bom = b"\xef\xbb\xbf" + (HEADER + "m1,receipt,SKU-00001,A-01,2,,2026-01-05T08:00:00Z\n"
                             ).encode()
    assert len(read_movements(bom, CATALOG, digest(bom)).movements) == 1
