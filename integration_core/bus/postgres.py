"""PostgreSQL store (psycopg 3): the bus's tables in one schema of a shared server.

A transaction that commits is durable (``synchronous_commit`` as the server has it, on by
default). The inbox record of an effect, the state it wrote and the messages it published
commit in one transaction, as in SQLite. Every failure of the server or the connection leaves
as `StorageError` after the transaction was rolled back (or died with its connection): the
next call reconnects, and the store carries on once the server answers again, without being
reopened.

Round trips are per batch, not per message: `append_many`, the inbox records and the state
writes of `apply_many` are one statement each over arrays (``unnest``). What cannot be batched
is an effect's read of a state key: one prepared ``SELECT`` each, unless the store was opened
with ``cache_state=True`` (see `PostgresStore`).

Log positions come from a counter row (``log_head``) updated in the appending transaction: its
row lock is held until commit, so positions are allocated in commit order and a reader that
has seen position n has seen every committed position below n (a sequence would not promise
that). Rolled-back appends leave no gap; the only gap is a message id appended by two
connections at once, where the loser's position is skipped.

psycopg is imported when a store is opened, not with this module: it is an optional
dependency (the ``postgres`` extra).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.bus.sqlite import _copy, _dumps, _loads
from integration_core.bus.store import Effect
from integration_core.envelope import Envelope
from integration_core.errors import StorageError

if TYPE_CHECKING:
    import psycopg

P = ParamSpec("P")
R = TypeVar("R")

_SCALAR = frozenset({int, float, str, bool, type(None)})
_PAGE = 5000
"""Rows per query when the log is read: memory stays bounded on a long log."""

# {s} is the schema, quoted. Text keys collate as "C": byte order makes the prefix range of
# `state` exact on any server, whatever its default collation.
_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.messages (
    position bigint PRIMARY KEY,
    message_id text COLLATE "C" NOT NULL UNIQUE,
    type text NOT NULL,
    published_at double precision NOT NULL,
    envelope text NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_time ON {s}.messages (published_at);
CREATE TABLE IF NOT EXISTS {s}.log_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    last bigint NOT NULL
);
INSERT INTO {s}.log_head (one, last) VALUES (true, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.inbox (
    consumer text COLLATE "C" NOT NULL,
    message_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
CREATE TABLE IF NOT EXISTS {s}.state (
    ns text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text NOT NULL,
    version bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS {s}.subscriptions (
    consumer text COLLATE "C" PRIMARY KEY,
    types text[],
    start bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.dead_letters (
    id text COLLATE "C" PRIMARY KEY,
    consumer text COLLATE "C" NOT NULL,
    position bigint,
    message_id text,
    envelope text,
    raw text,
    cause_type text NOT NULL,
    cause_message text NOT NULL,
    attempts integer NOT NULL,
    first_failure_at double precision NOT NULL,
    last_failure_at double precision NOT NULL,
    transient boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS dead_letters_consumer ON {s}.dead_letters (consumer, position);
"""

# One statement: new ids (not in the log) numbered in list order from the counter row, which
# this transaction then holds until it commits. ON CONFLICT covers an id another connection
# inserted after this statement's snapshot: it is reported as a duplicate.
_APPEND = """
WITH u AS (
    SELECT * FROM unnest(%(ids)b::text[], %(types)b::text[], %(envs)b::text[])
        WITH ORDINALITY AS u(message_id, type, envelope, ord)
), fresh AS (
    SELECT u.*, row_number() OVER (ORDER BY u.ord) AS rn FROM u
    WHERE NOT EXISTS (SELECT 1 FROM {s}.messages m WHERE m.message_id = u.message_id)
), head AS (
    UPDATE {s}.log_head SET last = last + (SELECT count(*) FROM fresh)
    RETURNING last - (SELECT count(*) FROM fresh) AS base
)
INSERT INTO {s}.messages (position, message_id, type, published_at, envelope)
SELECT head.base + fresh.rn, fresh.message_id, fresh.type, %(at)s, fresh.envelope
FROM fresh, head ORDER BY fresh.rn
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id, position
"""

# State writes of a batch in one statement. `expected` is the version the effect read
# (0: read as absent, -1: written without reading); a row whose new version is not
# expected + 1 was changed by another connection since: the count makes the batch fail
# instead of losing that update. The upsert's row locks hold until commit.
_FLUSH = """
WITH u AS (
    SELECT * FROM unnest(%(ns)b::text[], %(keys)b::text[], %(values)b::text[],
                         %(expected)b::bigint[]) AS u(ns, key, value, expected)
), up AS (
    INSERT INTO {s}.state AS st (ns, key, value) SELECT ns, key, value FROM u
    ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = st.version + 1
    RETURNING st.ns, st.key, st.version
)
SELECT up.ns, up.key, up.version, u.expected FROM up JOIN u USING (ns, key)
"""

_DL_COLUMNS = (
    "id, consumer, position, message_id, envelope, raw, cause_type, cause_message, "
    "attempts, first_failure_at, last_failure_at, transient"
)
_DL_REST = [c.strip() for c in _DL_COLUMNS.split(",")[1:]]


def _pg() -> Any:
    import psycopg

    return psycopg


def _failure(exc: Exception) -> StorageError:
    return StorageError(f"postgres: {type(exc).__name__}: {exc}".strip())


def guarded(method: Callable[P, R]) -> Callable[P, R]:
    """psycopg's errors as `StorageError` (cause chained), as SQLite's are in `SQLiteStore`."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except StorageError:
            raise
        except Exception as exc:
            if isinstance(exc, _pg().Error):
                raise _failure(exc) from exc
            raise

    return call


_Versions = dict[tuple[str, str], int]
"""(ns, key) -> the state row's version as last read or written (0: no row)."""


class _PgTx:
    """Reads see the database plus this batch's own writes; writes are staged and flushed
    only when the effect returns, so a failing effect leaves nothing behind."""

    __slots__ = ("_base", "_store", "staged")

    def __init__(self, store: PostgresStore, base: dict[tuple[str, str], Any]) -> None:
        self._store = store
        self._base = base
        """Writes of earlier effects in the same batch, not yet flushed."""
        self.staged: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any:
        # Copies out: an effect that mutates what it read and then fails must not change the
        # batch's pending writes.
        if (ns, key) in self.staged:
            return _copy(self.staged[(ns, key)])
        if (ns, key) in self._base:
            return _copy(self._base[(ns, key)])
        return self._store._read(ns, key)

    def put(self, ns: str, key: str, value: Any) -> None:
        self.staged[(ns, key)] = value if type(value) in _SCALAR else json.loads(json.dumps(value))


class PostgresStore:
    """The `Store` port on PostgreSQL. `schema` holds the tables (created if missing), so
    several stores (tests, tenants) can share one server.

    `cache_state=True` keeps the state values this store read or committed in memory and
    serves reads from there: an effect's read costs no round trip. That is only sound while
    no other connection writes the same state, so the store then takes a session advisory
    lock on its schema and refuses to open (StorageError) when another caching store holds
    it; a write of a key that changed anyway is still caught by the version check of every
    state write and fails the batch. The cache is dropped whenever the connection is lost
    (the lock went with it). Without the cache, several stores may share a schema: appends
    and inbox records are safe under concurrency, state writes are checked, but per-key
    ownership of the work is the caller's (see docs/postgres.md).
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "interop_bus",
        *,
        cache_state: bool = False,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.cache_state = cache_state
        self.connect_timeout_s = connect_timeout_s
        self._depth = 0
        self._doomed: StorageError | None = None
        """The open batch could not begin: everything in it fails."""
        self._versions: _Versions = {}
        """Versions read or written in the open transaction (for the flush's check)."""
        self._cache: dict[tuple[str, str], tuple[Any, int]] = {}
        """cache_state: committed (value, version) per key."""
        self._pending: dict[tuple[str, str], tuple[Any, int]] = {}
        """cache_state: what the open transaction wrote; into the cache when it commits."""
        self._sql = self._statements()
        self._conn: psycopg.Connection[tuple[Any, ...]] = self._connect()
        """The connection: replaced by a new one when it was closed or lost."""

    # -- connection --------------------------------------------------------------------------

    def _statements(self) -> dict[str, str]:
        s = '"' + self.schema.replace('"', '""') + '"'
        return {
            "schema": _SCHEMA.format(s=s),
            "append": _APPEND.format(s=s),
            "flush": _FLUSH.format(s=s),
            "find": f"SELECT envelope FROM {s}.messages WHERE message_id = %s",
            "last": f"SELECT last FROM {s}.log_head",
            "log": f"SELECT position, published_at, envelope FROM {s}.messages "
            "WHERE position >= %s AND published_at >= %s ORDER BY position LIMIT %s",
            "unfinished": (
                f"SELECT m.position, m.published_at, m.envelope FROM {s}.messages m "
                "WHERE m.position >= %(start)s "
                "AND (%(types)b::text[] IS NULL OR m.type = ANY(%(types)b::text[])) "
                f"AND NOT EXISTS (SELECT 1 FROM {s}.inbox i WHERE i.consumer = %(c)s "
                "                 AND i.message_id = m.message_id) "
                f"AND NOT EXISTS (SELECT 1 FROM {s}.dead_letters d WHERE d.consumer = %(c)s "
                "                 AND d.position = m.position) "
                "ORDER BY m.position LIMIT %(page)s"
            ),
            "inbox_add": f"INSERT INTO {s}.inbox (consumer, message_id) "
            "SELECT %s, unnest(%b::text[]) ON CONFLICT DO NOTHING "
            "RETURNING message_id",
            "inbox_mark": f"INSERT INTO {s}.inbox (consumer, message_id) "
            "SELECT %s, unnest(%b::text[]) ON CONFLICT DO NOTHING",
            "inbox_drop": f"DELETE FROM {s}.inbox WHERE consumer = %s "
            "AND message_id = ANY(%b::text[])",
            "processed": f"SELECT 1 FROM {s}.inbox WHERE consumer = %s AND message_id = %s",
            "get": f"SELECT value, version FROM {s}.state WHERE ns = %s AND key = %s",
            "state": f"SELECT key, value FROM {s}.state WHERE ns = %s",
            "state_prefix": f"SELECT key, value FROM {s}.state WHERE ns = %s "
            "AND key >= %s AND key < %s",
            "sub_put": f"INSERT INTO {s}.subscriptions (consumer, types, start) "
            "VALUES (%s, %s, %s) ON CONFLICT (consumer) DO UPDATE "
            "SET types = excluded.types, start = excluded.start",
            "sub_get": f"SELECT types, start FROM {s}.subscriptions WHERE consumer = %s",
            "dl_put": f"INSERT INTO {s}.dead_letters ({_DL_COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (id) DO UPDATE SET ({', '.join(_DL_REST)}) = "
            f"({', '.join('excluded.' + c for c in _DL_REST)})",
            "dl_del": f"DELETE FROM {s}.dead_letters WHERE id = %s",
            "dl_all": f"SELECT {_DL_COLUMNS} FROM {s}.dead_letters ORDER BY last_failure_at, id",
        }

    @guarded
    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        pg = _pg()
        self._cache.clear()  # whatever changed while we were away is not in it
        conn: psycopg.Connection[tuple[Any, ...]] = pg.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s))
        )
        try:
            with conn.transaction():
                # Two stores creating one schema at once would race on the catalog.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    ("interop-twin schema " + self.schema,),
                )
                conn.execute(self._sql["schema"])
            if self.cache_state:
                got = conn.execute(
                    "SELECT pg_try_advisory_lock(hashtext(%s))",
                    ("interop-twin cache " + self.schema,),
                ).fetchone()
                if not (got and got[0]):
                    raise StorageError(
                        f"postgres: schema {self.schema!r} is held by another "
                        "store with cache_state=True"
                    )
        except BaseException:
            conn.close()
            raise
        return conn

    def _live(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The connection; a new one if the last was lost (outside a transaction only: a
        transaction that lost its connection must fail as a whole)."""
        conn = self._conn
        if self._doomed is not None:
            raise StorageError(f"postgres: no transaction: {self._doomed}")
        if conn.closed or conn.broken:
            if self._depth:
                raise StorageError("postgres: the connection was lost in a transaction")
            conn.close()
            # Until a new one connects, the closed one stays: the next call tries again.
            conn = self._conn = self._connect()
        return conn

    def _exec(self, sql: str, args: Any = None) -> Any:
        return self._live().execute(sql, args, prepare=True)

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._depth:  # nested: the outermost batch commits or rolls back
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            conn: psycopg.Connection[tuple[Any, ...]] | None = self._begin()
        except StorageError as exc:
            # Not raised here: a caller that settles only after the commit (the bus) must
            # see the failure inside the batch, where it rolls back. Every statement of the
            # batch fails with it, and so does the commit.
            conn, self._doomed = None, exc
        self._depth = 1
        try:
            yield
            if conn is None:
                raise StorageError(f"postgres: no transaction: {self._doomed}")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn is not None:
                self._rollback(conn)
            if isinstance(exc, _pg().Error):
                raise _failure(exc) from exc
            raise
        else:
            if self.cache_state:  # settled only now that it committed
                self._cache.update(self._pending)
        finally:
            self._depth = 0
            self._doomed = None
            self._versions.clear()
            self._pending.clear()

    @guarded
    def _begin(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._live()
        conn.execute("BEGIN")
        return conn

    def _rollback(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        psycopg = _pg()
        if conn.closed or conn.broken:
            return  # the server ended the transaction with the connection
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()  # unusable: the next call reconnects

    # -- log ---------------------------------------------------------------------------------

    def append(self, envelope: Envelope, published_at: float) -> int | None:
        return self.append_many([envelope], published_at)[0]

    @guarded
    def append_many(self, envelopes: list[Envelope], published_at: float) -> list[int | None]:
        """One statement (so one transaction even outside a batch); duplicates against the
        log or earlier in the list get None."""
        first: dict[str, Envelope] = {}
        for e in envelopes:
            first.setdefault(e.message_id, e)
        if not first:
            return []
        fresh = list(first.values())
        rows = self._exec(
            self._sql["append"],
            {
                "ids": [e.message_id for e in fresh],
                "types": [e.type for e in fresh],
                "envs": [e.model_dump_json() for e in fresh],
                "at": published_at,
            },
        ).fetchall()
        positions = {mid: int(pos) for mid, pos in rows}
        out: list[int | None] = []
        for e in envelopes:
            # The first occurrence gets the position; a repeat in the list is a duplicate.
            out.append(positions.pop(e.message_id, None) if first.get(e.message_id) is e else None)
        return out

    @guarded
    def find(self, message_id: str) -> Envelope | None:
        row = self._exec(self._sql["find"], (message_id,)).fetchone()
        return None if row is None else Envelope.model_validate_json(row[0])

    @guarded
    def last_position(self) -> int:
        row = self._exec(self._sql["last"]).fetchone()
        return int(row[0]) if row else 0

    @guarded
    def _page(self, sql: str, args: Any) -> list[Any]:
        return list(self._exec(sql, args).fetchall())

    def log(self, from_position: int = 0, from_time: float | None = None) -> Iterator[LogEntry]:
        # Pages by position: each is its own query, so the caller may write in between.
        at = float("-inf") if from_time is None else from_time
        pos = from_position
        while True:
            rows = self._page(self._sql["log"], (pos, at, _PAGE))
            for p, t, e in rows:
                yield LogEntry(int(p), float(t), Envelope.model_validate_json(e))
            if len(rows) < _PAGE:
                return
            pos = int(rows[-1][0]) + 1

    def unfinished(
        self, consumer: str, types: frozenset[str] | None, start: int
    ) -> Iterator[LogEntry]:
        wanted = None if types is None else sorted(types)
        pos = start
        while True:
            rows = self._page(
                self._sql["unfinished"],
                {"start": pos, "types": wanted, "c": consumer, "page": _PAGE},
            )
            for p, t, e in rows:
                yield LogEntry(int(p), float(t), Envelope.model_validate_json(e))
            if len(rows) < _PAGE:
                return
            pos = int(rows[-1][0]) + 1

    # -- inbox and consumer state ------------------------------------------------------------

    def _read(self, ns: str, key: str) -> Any:
        """A state value inside the open transaction, its version noted for the flush."""
        k = (ns, key)
        hit = None
        if self.cache_state:
            hit = self._pending.get(k) or self._cache.get(k)
        if hit is None:
            try:
                row = self._exec(self._sql["get"], k).fetchone()
            except Exception as exc:  # not the message's fault: fails the whole batch
                if isinstance(exc, _pg().Error):
                    raise _failure(exc) from exc
                raise
            hit = (None, 0) if row is None else (_loads(row[0]), int(row[1]))
            if self.cache_state:
                self._cache[k] = hit
        self._versions.setdefault(k, hit[1])
        return _copy(hit[0])

    def _flush(self, staged: dict[tuple[str, str], Any]) -> None:
        if not staged:
            return
        keys = list(staged)
        rows = self._exec(
            self._sql["flush"],
            {
                "ns": [ns for ns, _ in keys],
                "keys": [k for _, k in keys],
                "values": [_dumps(staged[k]) for k in keys],
                "expected": [self._versions.get(k, -1) for k in keys],
            },
        ).fetchall()
        stale = [
            (ns, key)
            for ns, key, version, expected in rows
            if expected >= 0 and version != expected + 1
        ]
        if stale:
            for k in stale:
                self._cache.pop(k, None)
            raise StorageError(
                f"postgres: state changed by another connection since it was read: {stale[:3]}"
            )
        for ns, key, version, _ in rows:
            self._versions[(ns, key)] = int(version)
            if self.cache_state:
                self._pending[(ns, key)] = (staged[(ns, key)], int(version))

    @guarded
    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        result = self.apply_many(consumer, [(message_id, effect)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    @guarded
    def apply_many(self, consumer: str, items: list[tuple[str, Effect]]) -> list[bool | Exception]:
        """The inbox records first, in one statement (a second connection applying the same
        message waits for this one, then finds it recorded); then the effects; then one
        statement to drop the records of failed effects and one for the state."""
        if not items:
            return []
        with self.batch():
            ids = list(dict.fromkeys(mid for mid, _ in items))
            claimed = {r[0] for r in self._exec(self._sql["inbox_add"], (consumer, ids))}
            overlay: dict[tuple[str, str], Any] = {}
            results: list[bool | Exception] = []
            done: set[str] = set()
            for mid, effect in items:
                if mid not in claimed or mid in done:
                    results.append(False)
                    continue
                tx = _PgTx(self, overlay)
                try:
                    effect(tx)
                except StorageError:  # the store itself: the whole batch fails
                    raise
                except Exception as exc:  # reported per message; the batch goes on
                    results.append(exc)
                    continue
                overlay.update(tx.staged)
                done.add(mid)
                results.append(True)
            failed = claimed - done
            if failed:
                self._exec(self._sql["inbox_drop"], (consumer, sorted(failed)))
            self._flush(overlay)
        return results

    @guarded
    def mark_processed(self, consumer: str, message_id: str) -> None:
        self._exec(self._sql["inbox_mark"], (consumer, [message_id]))

    @guarded
    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        if message_ids:
            self._exec(self._sql["inbox_mark"], (consumer, message_ids))

    @guarded
    def processed(self, consumer: str, message_id: str) -> bool:
        return self._exec(self._sql["processed"], (consumer, message_id)).fetchone() is not None

    @guarded
    def get_state(self, ns: str, key: str) -> Any:
        row = self._exec(self._sql["get"], (ns, key)).fetchone()
        return None if row is None else _loads(row[0])

    @guarded
    def state(self, ns: str, prefix: str = "") -> dict[str, Any]:
        if prefix:  # a range on the primary key: no scan of the namespace
            rows = self._exec(
                self._sql["state_prefix"], (ns, prefix, prefix + "\U0010ffff")
            ).fetchall()
            rows = [(k, v) for k, v in rows if k.startswith(prefix)]
        else:
            rows = self._exec(self._sql["state"], (ns,)).fetchall()
        return {k: _loads(v) for k, v in rows}

    # -- subscriptions and dead letters ------------------------------------------------------

    @guarded
    def save_subscription(self, consumer: str, types: frozenset[str] | None, start: int) -> None:
        self._exec(
            self._sql["sub_put"], (consumer, None if types is None else sorted(types), start)
        )

    @guarded
    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None:
        row = self._exec(self._sql["sub_get"], (consumer,)).fetchone()
        if row is None:
            return None
        return (None if row[0] is None else frozenset(row[0])), int(row[1])

    @guarded
    def put_dead_letter(self, dl: DeadLetter) -> None:
        self._exec(
            self._sql["dl_put"],
            (
                dl.id,
                dl.consumer,
                dl.position,
                dl.message_id,
                None if dl.envelope is None else dl.envelope.model_dump_json(),
                dl.raw,
                dl.cause_type,
                dl.cause_message,
                dl.attempts,
                dl.first_failure_at,
                dl.last_failure_at,
                dl.transient,
            ),
        )

    @guarded
    def delete_dead_letter(self, dl_id: str) -> None:
        self._exec(self._sql["dl_del"], (dl_id,))

    @guarded
    def dead_letters(self) -> list[DeadLetter]:
        return [
            DeadLetter(
                id=r[0],
                consumer=r[1],
                position=r[2],
                message_id=r[3],
                envelope=None if r[4] is None else Envelope.model_validate_json(r[4]),
                raw=r[5],
                cause_type=r[6],
                cause_message=r[7],
                attempts=r[8],
                first_failure_at=r[9],
                last_failure_at=r[10],
                transient=bool(r[11]),
            )
            for r in self._exec(self._sql["dl_all"]).fetchall()
        ]

    def close(self) -> None:
        """Close the connection. Writes of an open batch are rolled back, as in a crash."""
        self._conn.close()
