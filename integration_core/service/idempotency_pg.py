"""Idempotency-Key records on PostgreSQL: what `idempotency.IdempotencyStore` does on SQLite,
in the service's schema of the bus's database.

The same contract and the same order of commits (see `integration_core.service.idempotency`):
a record is written on a connection of its own *after* the request's effect committed in the
bus's transaction, so a crash between the two leaves the effect without a record, and the
client's retry is deduped by message id instead. Every failure is a `StorageError` (psycopg's
errors, via the bus store's `guarded`): before the effect the request answers 503, after it the
effect stands and the response goes out without a record. The next call after a lost
connection opens a new one: a database restart is ridden out without reopening the store.

psycopg is imported when a store is opened (the ``postgres`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integration_core.bus.postgres import guarded
from integration_core.service.idempotency import Recorded

if TYPE_CHECKING:
    import psycopg

_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.idempotency (
    system text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    fingerprint text NOT NULL,
    status integer NOT NULL,
    body bytea NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (system, key)
);
CREATE INDEX IF NOT EXISTS idempotency_created ON {s}.idempotency (created_at);
"""


class PgIdempotencyStore:
    """The ``idempotency`` table in `schema` (created if missing), on its own connection."""

    def __init__(self, dsn: str, schema: str, connect_timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        s = '"' + schema.replace('"', '""') + '"'
        self._sql = {
            "schema": _SCHEMA.format(s=s),
            "get": f"SELECT fingerprint, status, body FROM {s}.idempotency "
            "WHERE system = %s AND key = %s",
            # DO NOTHING: the first response stays the one replayed.
            "put": f"INSERT INTO {s}.idempotency VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            "prune": f"DELETE FROM {s}.idempotency WHERE created_at < %s",
        }
        self._conn: psycopg.Connection[tuple[Any, ...]] = self._connect()
        self.replays = 0
        self.conflicts = 0

    @guarded
    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True,
                               connect_timeout=max(1, round(self.connect_timeout_s)))
        try:
            with conn.transaction():
                # Two stores creating one schema at once would race on the catalog (the bus
                # store takes the same lock for its tables).
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             ("interop-twin schema " + self.schema,))
                conn.execute(self._sql["schema"])
        except BaseException:
            conn.close()
            raise
        return conn

    def _exec(self, sql: str, args: tuple[Any, ...]) -> Any:
        conn = self._conn
        if conn.closed or conn.broken:  # lost (the server restarted): a new connection
            conn.close()
            conn = self._conn = self._connect()
        return conn.execute(sql, args, prepare=True)

    @guarded
    def get(self, system: str, key: str) -> Recorded | None:
        row = self._exec(self._sql["get"], (system, key)).fetchone()
        return None if row is None else Recorded(row[0], int(row[1]), bytes(row[2]))

    @guarded
    def put(self, system: str, key: str, fp: str, status: int, body: bytes, now: float) -> None:
        self._exec(self._sql["put"], (system, key, fp, status, body, now))

    @guarded
    def prune(self, older_than: float) -> int:
        return int(self._exec(self._sql["prune"], (older_than,)).rowcount)

    def close(self) -> None:
        self._conn.close()
