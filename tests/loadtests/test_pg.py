"""The throwaway server of loadtests/pg.py: what the tests and benchmarks measure against."""

from __future__ import annotations

import psycopg

from loadtests.pg import PgServer


def test_the_throwaway_server_commits_durably_and_listens_on_loopback_only(
    pg_server: PgServer,
) -> None:
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()
            assert row is not None
            return str(row[0])

        # A benchmark on a server that may lose commits would measure something else.
        assert [show(n) for n in ("fsync", "synchronous_commit", "full_page_writes")] == [
            "on", "on", "on"]
        assert show("wal_init_zero") == "off"  # see loadtests/pg.py: commit stalls
        assert show("listen_addresses") == "127.0.0.1"
