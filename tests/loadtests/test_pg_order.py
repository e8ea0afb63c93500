"""The load test's per-key order check (`loadtests.run.key_order`) against a real schema: it
counts a message applied after a later one of its key, and only then; and the verdict lines
built from it and from the process faults' records."""

from __future__ import annotations

from integration_core.bus import PostgresStore
from loadtests.pg import PgServer
from loadtests.pg_faults import FaultRecord
from loadtests.run import fault_checks, key_order, order_checks
from tests.factories import env


def test_key_order_counts_what_was_applied_out_of_log_order(pg_server: PgServer,
                                                            pg_schema: str) -> None:
    store = PostgresStore(pg_server.dsn, pg_schema, instance="a", partitions=4)
    try:
        store.heartbeat()
        store.append_many([env(1, key="k"), env(2, key="k"), env(3, key="j")], 0.0)
        store.mark_processed_many("wms", ["m1", "m2", "m3"])  # in log order
        store.mark_processed_many("erp", ["m2"])  # m2 before m1: out of order for k
        store.mark_processed_many("erp", ["m3", "m1"])
    finally:
        store.close()
    order = key_order(pg_server, pg_schema)
    assert order == {"erp": {"applied": 3, "out_of_order": 1},
                     "wms": {"applied": 3, "out_of_order": 0}}
    assert not order_checks(order)[0].ok
    order["erp"]["out_of_order"] = 0
    assert order_checks(order)[0].ok


def test_fault_checks_hold_each_takeover_to_its_bound() -> None:
    ok = [FaultRecord("SIGKILL instance 2", 12.0, takeover_s=7.0),
          FaultRecord("SIGSTOP instance 3 for 11 s", 27.0, takeover_s=5.0, rejoin_s=2.0),
          FaultRecord("database crash and restart", 45.0, takeover_s=5.0, down_s=4.0)]
    assert all(c.ok for c in fault_checks(ok, 5.0, expected=True))
    slow = [FaultRecord("SIGKILL instance 2", 12.0, takeover_s=12.0), *ok[1:]]
    assert fault_checks(slow, 5.0, expected=True)[0].ok is False  # > 11.67 s
    never = [ok[0], FaultRecord("SIGSTOP instance 3 for 11 s", 27.0, takeover_s=5.0), ok[2]]
    assert not all(c.ok for c in fault_checks(never, 5.0, expected=True))  # did not rejoin
    assert not all(c.ok for c in fault_checks(ok[:1], 5.0, expected=True))  # 2 never ran
