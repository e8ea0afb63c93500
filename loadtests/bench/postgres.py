"""Bus throughput on PostgreSQL: the `PostgresStore` adapter against two ceilings, same run.

On a throwaway server (loadtests/pg.py, fsync on), N movement envelopes over 1,000 keys:

- **adapter**: the publish + process cycle of `loadtests.bench.bus` (publish_many of a batch,
  then `Bus.process` through a consumer that adds each movement to a balance per key, its
  inbox record in the same transaction), with the state cache off and on;
- **adapter, single**: the same cycle one message at a time (two commits per message);
- **COPY ceiling**: the same rows COPYed into the same `messages` table, 1,000 a transaction;
- **hand-written ceiling**: the bus cycle in SQL on the same tables and indexes: insert a
  batch of messages; then in one transaction claim them with ``FOR UPDATE SKIP LOCKED``,
  write the inbox rows ``ON CONFLICT DO NOTHING``, upsert the balances of the newly recorded
  ones, and mark them delivered (the only addition to the tables: a `delivered` column).

- **shared, N instances** (``--instances N``, N >= 1): the adapter in shared mode
  (`PostgresStore(instance=...)` and `Membership`, state cache off), in N processes on one
  schema: each owns its share of the partitions (leases taken before the clock starts),
  publishes its share of the messages and delivers its partitions' (found in the log's tail,
  fenced writes): the several-instance path without HTTP. Its rate is all messages over the
  time until the last process is done.

Each measurement is the median of `--repeat` runs, each in a fresh schema. JSON out.

    python -m loadtests.bench.postgres [--messages 20000] [--batch 500] [--repeat 3]
                                       [--instances 2]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing as mp
import time
from typing import Any

import psycopg

from integration_core.bus import Bus, PostgresStore, RetryPolicy
from integration_core.bus.membership import Membership
from integration_core.bus.partitions import fair_share, partition_of
from integration_core.envelope import Envelope
from loadtests.bench.bus import apply_movement, envelopes, run_bus
from loadtests.bench.common import machine, median_time
from loadtests.pg import PgServer, throwaway

_schemas = itertools.count()

# The hand-written consumer: one statement, one transaction per batch.
_CYCLE = """
WITH claimed AS (
    SELECT position, message_id, envelope::jsonb AS doc FROM {s}.messages
    WHERE position > %(after)s AND NOT delivered
    ORDER BY position LIMIT %(n)s FOR UPDATE SKIP LOCKED
), recorded AS (
    INSERT INTO {s}.inbox (consumer, message_id) SELECT 'erp', message_id FROM claimed
    ON CONFLICT DO NOTHING RETURNING message_id
), balances AS (
    INSERT INTO {s}.state AS st (ns, key, value)
    SELECT 'erp_balance', c.doc->>'key', sum((c.doc->'payload'->>'quantity_base')::bigint)::text
    FROM claimed c JOIN recorded r USING (message_id) GROUP BY c.doc->>'key'
    ON CONFLICT (ns, key) DO UPDATE
    SET value = (st.value::bigint + excluded.value::bigint)::text, version = st.version + 1
)
UPDATE {s}.messages m SET delivered = true FROM claimed c WHERE m.position = c.position
RETURNING m.position
"""


def _fresh_schema(dsn: str) -> str:
    """A new schema with the store's own tables and indexes (the store creates them)."""
    name = f"bench_{next(_schemas)}"
    PostgresStore(dsn, name).close()
    return name


def run_adapter(dsn: str, msgs: list[Envelope], batch: int, cache: bool) -> None:
    store = PostgresStore(dsn, _fresh_schema(dsn), cache_state=cache)
    run_bus(store, msgs, batch)
    store.close()


def run_copy(dsn: str, rows: list[tuple[int, str, str, float, str]], batch: int) -> None:
    s = _fresh_schema(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, len(rows), batch):
            with (
                conn.transaction(),
                conn.cursor().copy(
                    f"COPY {s}.messages (position, message_id, type, published_at, envelope) "
                    "FROM STDIN"
                ) as copy,
            ):
                for row in rows[start : start + batch]:
                    copy.write_row(row)


def run_handwritten(dsn: str, rows: list[tuple[int, str, str, float, str]], batch: int) -> None:
    s = _fresh_schema(dsn)
    cycle = _CYCLE.format(s=s)
    insert = (
        f"INSERT INTO {s}.messages (position, message_id, type, published_at, envelope) "
        "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::float8[], %b::text[])"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE {s}.messages ADD COLUMN delivered boolean NOT NULL DEFAULT false"
        )
        after = 0
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            conn.execute(insert, [list(col) for col in zip(*chunk, strict=True)], prepare=True)
            with conn.transaction():
                got = conn.execute(cycle, {"after": after, "n": batch}, prepare=True).fetchall()
            assert len(got) == len(chunk)
            after = max(p for (p,) in got)
        left = conn.execute(f"SELECT count(*) FROM {s}.messages WHERE NOT delivered").fetchone()
        assert left == (0,)


def _shared_instance(dsn: str, schema: str, me: int, n_inst: int, n: int, batch: int,
                     ready: Any, go: Any, done: Any) -> None:
    """One instance of `run_shared`, in its own process."""
    msgs = envelopes(n)
    store = PostgresStore(dsn, schema, instance=f"i{me}", lease_ttl_s=30.0)
    bus = Bus(store, RetryPolicy())
    bus.subscribe("erp", ["inventory.movement"], from_beginning=True)
    member = Membership(bus, store)
    share = fair_share(store.partitions, n_inst, me)  # ids i0, i1, ...: rank = me (< 10)
    while len([p for p in store.owned if p >= 0]) != share:  # all heartbeat until balanced
        member.heartbeat(0.0)
        time.sleep(0.1)
    ready.wait(timeout=120)
    mine = [m for i, m in enumerate(msgs) if i % n_inst == me]
    due = sum(1 for m in msgs if partition_of(m.key, store.partitions) in store.owned)
    go.wait(timeout=120)
    handlers = {"erp": apply_movement}
    for start in range(0, len(mine), batch):
        bus.publish_many(mine[start:start + batch], 0.0)
        member.tail(0.0)
        bus.process(handlers, 0.0, limit=batch)
    while bus.counters.acked < due:
        member.tail(0.0)
        if not bus.process(handlers, 0.0, limit=batch):
            time.sleep(0.002)
    done.put(time.monotonic())
    store.close()


def run_shared(dsn: str, n: int, batch: int, instances: int) -> float:
    """Seconds from the start until the last of `instances` processes delivered its
    partitions' messages (see the module's docstring)."""
    schema = _fresh_schema(dsn)
    ctx = mp.get_context("spawn")
    ready, go = ctx.Barrier(instances), ctx.Barrier(instances + 1)
    done: Any = ctx.Queue()
    procs = [ctx.Process(target=_shared_instance,
                         args=(dsn, schema, i, instances, n, batch, ready, go, done))
             for i in range(instances)]
    for p in procs:
        p.start()
    try:
        go.wait(timeout=120)
        t0 = time.monotonic()
        ends: list[float] = [done.get(timeout=600) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return max(ends) - t0


def _rate(n: int, seconds: float) -> int:
    return round(n / seconds)


def measure(server: PgServer, n: int, single: int, batch: int, repeat: int,
            instances: int = 0) -> dict[str, Any]:
    dsn = server.dsn
    msgs = envelopes(n)
    rows = [(i + 1, e.message_id, e.type, 0.0, e.model_dump_json()) for i, e in enumerate(msgs)]
    gc.collect()
    gc.freeze()  # the inputs belong to the producers (see loadtests.bench.bus)
    plain_s, plain_runs = median_time(lambda: run_adapter(dsn, msgs, batch, False), repeat)
    cached_s, cached_runs = median_time(lambda: run_adapter(dsn, msgs, batch, True), repeat)
    single_s, _ = median_time(lambda: run_adapter(dsn, msgs[:single], 1, False), repeat)
    copy_s, copy_runs = median_time(lambda: run_copy(dsn, rows, 1000), repeat)
    hand_s, hand_runs = median_time(lambda: run_handwritten(dsn, rows, batch), repeat)
    with psycopg.connect(dsn) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version', 'shared_buffers')"
            ).fetchall()
        )
    hand = _rate(n, hand_s)
    shared: dict[str, Any] = {}
    for k in sorted({1, instances}) if instances else []:
        runs = sorted(run_shared(dsn, n, batch, k) for _ in range(repeat))
        shared[f"{k}_instance{'s' if k > 1 else ''}"] = {
            "median_s": round(runs[len(runs) // 2], 3),
            "msg_per_s": _rate(n, runs[len(runs) // 2]),
            "runs_s": [round(r, 3) for r in runs]}
    return {
        "benchmark": "postgres",
        "messages": n,
        "batch": batch,
        "repeat": repeat,
        "adapter": {
            "median_s": round(plain_s, 3),
            "msg_per_s": _rate(n, plain_s),
            "runs_s": [round(r, 3) for r in plain_runs],
        },
        "adapter_cached_state": {
            "median_s": round(cached_s, 3),
            "msg_per_s": _rate(n, cached_s),
            "runs_s": [round(r, 3) for r in cached_runs],
        },
        "adapter_single": {
            "messages": single,
            "median_s": round(single_s, 3),
            "msg_per_s": _rate(single, single_s),
        },
        "copy_ceiling": {
            "batch": 1000,
            "median_s": round(copy_s, 3),
            "rows_per_s": _rate(n, copy_s),
            "runs_s": [round(r, 3) for r in copy_runs],
        },
        "handwritten_ceiling": {
            "median_s": round(hand_s, 3),
            "rows_per_s": hand,
            "runs_s": [round(r, 3) for r in hand_runs],
        },
        "adapter_shared": shared,
        "adapter_over_handwritten": round(_rate(n, plain_s) / hand, 3),
        "adapter_cached_over_handwritten": round(_rate(n, cached_s) / hand, 3),
        "adapter_over_copy": round(_rate(n, plain_s) / _rate(n, copy_s), 3),
        "target_ratio": 0.5,
        "server": settings,
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--single", type=int, default=1_000, help="messages of the one-by-one run")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--instances", type=int, default=0,
                   help="also the shared mode with 1 and with this many processes (0: not)")
    a = p.parse_args()
    with throwaway() as server:
        result = measure(server, a.messages, a.single, a.batch, a.repeat, a.instances)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
