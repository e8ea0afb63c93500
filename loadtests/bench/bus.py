"""Bus throughput: publish -> deliver -> handle (durable inbox) -> ack, per store.

Baseline measured in the same run: the raw SQLite ceiling, the same rows inserted with
executemany into a table with a unique index, one transaction per batch.

    python -m loadtests.bench.bus [--messages 200000] [--sqlite-messages 50000] [--table]
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integration_core.bus import Bus, MemoryStore, RetryPolicy, SQLiteStore, Store, Tx
from integration_core.envelope import Envelope
from loadtests.bench.common import machine, median_time

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def envelopes(n: int) -> list[Envelope]:
    """Movement-sized messages over 1,000 ordering keys (built before timing starts)."""
    return [
        Envelope(
            message_id=f"mv-{i}", type="inventory.movement", schema_version=2, source="wms",
            occurred_at=T0, correlation_id=f"mv-{i}", key=f"SKU-{i % 1000}@WH1",
            payload={"movement_id": f"mv-{i}", "kind": "pick", "sku": f"SKU-{i % 1000}",
                     "location": "WH1", "quantity": "1", "quantity_base": -1,
                     "occurred_at": "2026-01-05T00:00:00Z"},
        )
        for i in range(n)
    ]


def apply_movement(e: Envelope, tx: Tx) -> None:
    """The consumer's effect: an ERP balance per key, written with the inbox record."""
    tx.put("erp_balance", e.key, (tx.get("erp_balance", e.key) or 0) + e.payload["quantity_base"])


def run_bus(store: Store, msgs: list[Envelope], batch: int) -> None:
    bus = Bus(store, RetryPolicy())
    bus.subscribe("erp", ["inventory.movement"])
    handlers = {"erp": apply_movement}
    now = 0.0
    for start in range(0, len(msgs), batch):
        bus.publish_many(msgs[start:start + batch], now)
        bus.process(handlers, now)
        now += 1.0
    assert bus.backlog("erp") == 0 and bus.counters.acked == len(msgs)


def run_raw(path: Path, rows: list[tuple[str, str, float, str]], batch: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE m (position INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE,"
                 " type TEXT, published_at REAL, envelope TEXT)")
    for start in range(0, len(rows), batch):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO m (message_id, type, published_at, envelope) "
                         "VALUES (?, ?, ?, ?)", rows[start:start + batch])
        conn.execute("COMMIT")
    conn.close()


def measure(n_mem: int, n_sql: int, batch: int, repeat: int) -> dict[str, Any]:
    mem_msgs = envelopes(n_mem)
    sql_msgs = mem_msgs[:n_sql] if n_sql <= n_mem else envelopes(n_sql)
    rows = [(e.message_id, e.type, 0.0, e.model_dump_json()) for e in sql_msgs]
    # The inputs belong to the producers: keep the cyclic GC from rescanning them on every
    # collection during the timed runs (what gc.freeze() after start-up does in a service).
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory() as d:
        counter = iter(range(10**6))

        def fresh(name: str) -> Path:
            return Path(d) / f"{name}-{next(counter)}.db"

        mem_s, _ = median_time(lambda: run_bus(MemoryStore(), mem_msgs, batch), repeat)

        def sqlite_run() -> None:
            store = SQLiteStore(fresh("bus"))
            run_bus(store, sql_msgs, batch)
            store.close()

        sql_s, _ = median_time(sqlite_run, repeat)
        raw_s, _ = median_time(lambda: run_raw(fresh("raw"), rows, batch), repeat)
    mem_rate, sql_rate, raw_rate = n_mem / mem_s, n_sql / sql_s, n_sql / raw_s
    return {
        "benchmark": "bus",
        "batch": batch,
        "repeat": repeat,
        "memory": {"messages": n_mem, "median_s": round(mem_s, 3),
                   "msg_per_s": round(mem_rate), "target_msg_per_s": 100_000},
        "sqlite": {"messages": n_sql, "median_s": round(sql_s, 3),
                   "msg_per_s": round(sql_rate), "target_msg_per_s": 15_000},
        "raw_sqlite_ceiling": {"rows": n_sql, "median_s": round(raw_s, 3),
                               "rows_per_s": round(raw_rate)},
        "sqlite_over_raw_ratio": round(sql_rate / raw_rate, 3),
        "target_ratio": 0.25,
        "machine": machine(),
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"{'path':<34}{'messages':>10}{'median s':>10}{'msg/s':>10}{'target':>10}",
        f"{'memory store (publish->ack)':<34}{r['memory']['messages']:>10}"
        f"{r['memory']['median_s']:>10}{r['memory']['msg_per_s']:>10}{100_000:>10}",
        f"{'sqlite store (publish->ack)':<34}{r['sqlite']['messages']:>10}"
        f"{r['sqlite']['median_s']:>10}{r['sqlite']['msg_per_s']:>10}{15_000:>10}",
        f"{'raw sqlite executemany':<34}{r['raw_sqlite_ceiling']['rows']:>10}"
        f"{r['raw_sqlite_ceiling']['median_s']:>10}{r['raw_sqlite_ceiling']['rows_per_s']:>10}"
        f"{'':>10}",
        f"sqlite / raw ceiling ratio: {r['sqlite_over_raw_ratio']} (target >= 0.25)",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--sqlite-messages", type=int, default=50_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--table", action="store_true", help="also print a human-readable table")
    a = p.parse_args()
    result = measure(a.messages, a.sqlite_messages, a.batch, a.repeat)
    print(json.dumps(result, indent=2))
    if a.table:
        print()
        print(table(result))


if __name__ == "__main__":
    main()
