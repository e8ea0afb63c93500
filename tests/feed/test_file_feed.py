"""Files carried out on the engine: exactly once per content, per interchange and across a
crash between two chunks of a file."""

from __future__ import annotations

from pathlib import Path

from integration_core.bus import SQLiteStore
from integration_core.clock import ManualClock
from integration_core.engine import Engine
from integration_core.feed import (
    CsvLimits,
    EdiInbox,
    FileFeed,
    FileKind,
    FileOutcome,
    FileVerdict,
    digest,
    read_movements,
)
from integration_core.models import Catalog, Item, UnitConversion
from tests.edi.documents import x940, x944

SKU = "SKU-00001"
CATALOG = Catalog(Item(sku=f"SKU-{i:05d}", conversions=(UnitConversion(unit="CS", factor=12),))
                  for i in range(5))
HEADER = "movement_id,kind,sku,location,quantity,occurred_at\n"


def open_feed(db: Path, chunk_rows: int = 1000) -> tuple[Engine, FileFeed]:
    engine = Engine(SQLiteStore(db), ManualClock(1000.0), CATALOG)
    return engine, FileFeed(engine, EdiInbox(engine), chunk_rows=chunk_rows)


def csv_rows(n: int, prefix: str = "m", quantity: int = 1) -> bytes:
    return (HEADER + "".join(f"{prefix}{i},receipt,{SKU},A-01,{quantity},"
                             "2026-01-05T08:00:00Z\n" for i in range(n))).encode()


def run_csv(feed: FileFeed, name: str, data: bytes) -> FileOutcome:
    d = digest(data)
    return feed.known(name, d) or feed.process_csv(
        name, d, read_movements(data, feed.engine.catalog, d, CsvLimits()))


def on_hand(engine: Engine) -> int:
    while engine.pump(engine.clock.now()):
        pass
    return engine.wms.rows(engine.store, SKU).get((SKU, "A-01", None), 0)


def test_a_good_csv_file_is_carried_out_and_its_repeat_changes_nothing(tmp_path: Path) -> None:
    engine, feed = open_feed(tmp_path / "t.db")
    data = csv_rows(3, quantity=2)
    got = run_csv(feed, "mv-1.csv", data)
    assert (got.verdict, got.folder, got.carried_out, got.duplicates) == (
        FileVerdict.PROCESSED, "processed", 3, 0)
    assert on_hand(engine) == 6
    again = run_csv(feed, "mv-1-again.csv", data)  # same content under another name
    assert again.repeat_of == "mv-1.csv" and again.verdict is FileVerdict.PROCESSED
    # other content, same movement ids (a producer's resend): the bus dedupes the rows
    resend = run_csv(feed, "mv-2.csv", data + b"\n")
    assert resend.repeat_of is None and resend.duplicates == 3
    assert on_hand(engine) == 6


def test_bad_rows_are_dead_lettered_with_line_and_raw_text_the_rest_carried_out(
        tmp_path: Path) -> None:
    engine, feed = open_feed(tmp_path / "t.db")
    bad = f"m2,receipt,{SKU},A-01,many,2026-01-05T08:00:00Z"
    data = (HEADER + f"m1,receipt,{SKU},A-01,4,2026-01-05T08:00:00Z\n{bad}\n"
            f"m3,receipt,{SKU},A-01,1,2026-01-05T08:00:00Z\n").encode()
    got = run_csv(feed, "mv.csv", data)
    assert got.verdict is FileVerdict.FAILED and got.carried_out == 2
    assert [(p.line, p.field, p.raw) for p in got.problems] == [(3, "quantity", bad)]
    assert on_hand(engine) == 5
    (dl,) = engine.dead_letters("ingress")
    assert dl.raw == bad and dl.cause_message.startswith("mv.csv line 3: quantity:")
    assert dl.cause_type == "FeedRowRejected"
    # a conflicting row (a movement id stored before with other content) is rejected too
    other = (HEADER + f"m1,receipt,{SKU},A-01,9,2026-01-05T08:00:00Z\n").encode()
    conflict = run_csv(feed, "other.csv", other)
    assert [(p.line, p.field) for p in conflict.problems] == [(2, "movement_id")]
    assert conflict.carried_out == 0 and on_hand(engine) == 5
    assert len(engine.dead_letters("ingress")) == 2


def test_x12_files_a_940_places_an_order_a_944_moves_stock_a_resent_isa13_is_a_duplicate(
        tmp_path: Path) -> None:
    engine, feed = open_feed(tmp_path / "t.db")
    receipt = x944("R-1", [(SKU, 7)])
    got = feed.x12("944-1.x12", digest(receipt), receipt)
    assert got.kind is FileKind.X12 and got.verdict is FileVerdict.PROCESSED
    assert got.carried_out == 1 and got.ack is not None and b"AK5*A" in got.ack
    assert on_hand(engine) == 7
    order = x940("O-F1", SKU)
    placed = feed.x12("940-1.x12", digest(order), order)
    assert placed.verdict is FileVerdict.PROCESSED and placed.carried_out == 1
    on_hand(engine)
    assert engine.order("O-F1")["status"] != "received"
    # the same interchange (sender + ISA13) in a file that differs by a trailing line feed
    resent = order + b"\n"
    dup = feed.x12("940-again.x12", digest(resent), resent)
    assert dup.verdict is FileVerdict.PROCESSED and dup.carried_out == 0
    assert "duplicate of interchange" in dup.detail
    assert feed.known("x", digest(resent)) is not None  # and recorded as a file


def test_a_rejected_interchange_fails_naming_the_segment(tmp_path: Path) -> None:
    engine, feed = open_feed(tmp_path / "t.db")
    bad = x944("R-2", [(SKU, 7)]).replace(b"W14*7", b"W14*8")  # the total disagrees
    got = feed.x12("944-bad.x12", digest(bad), bad)
    assert got.verdict is FileVerdict.FAILED and got.folder == "failed"
    assert got.ack is not None and b"AK5*R" in got.ack
    assert any(p.segment == "W14" for p in got.problems), got.problems
    assert got.dead_letters == 1 and on_hand(engine) == 0


def test_a_crash_between_two_chunks_is_repaired_by_processing_the_file_again(
        tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    data = csv_rows(10, quantity=1) + f"bad,receipt,{SKU},A-01,0,x\n".encode()
    d = digest(data)
    engine, feed = open_feed(db, chunk_rows=4)
    steps = feed.csv_steps("big.csv", d, read_movements(data, CATALOG, d, CsvLimits()))
    assert next(steps) == 4  # the first chunk committed ...
    steps.close()  # ... and the process dies before the second
    assert feed.known("big.csv", d) is None  # the file is not recorded: it is taken again
    engine.store.close()

    engine, feed = open_feed(db, chunk_rows=4)  # restart on the same store
    assert on_hand(engine) == 4
    got = run_csv(feed, "big.csv", data)
    assert got.carried_out == 10 and got.duplicates == 4 and len(got.problems) == 1
    assert on_hand(engine) == 10  # each row applied once
    assert len(engine.dead_letters("ingress")) == 1
    assert run_csv(feed, "big.csv", data).repeat_of == "big.csv"
    engine.store.close()
