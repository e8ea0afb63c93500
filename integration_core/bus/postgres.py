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
with ``cache_state=True`` (see `PostgresStore`). A batch's ``BEGIN`` is not sent on its own: it
travels in one pipeline with the batch's first statement, and a statement whose result nothing
reads (the inbox records of acks) waits for the next one or for the ``COMMIT``. On a busy
machine each round trip costs a wake-up of the server process and one of ours, and the
service's event loop waits for every one: an ack of 250 messages is one round trip, not three.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from integration_core.bus.partitions import PARTITIONS, fair_share, partition_of
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

# -- shared mode: several instances on one schema (docs/postgres.md, "Several instances") --

# The database's MD5 hash of a key, as `partition_of` computes it in Python.
_PARTITION_SQL = "(('x' || substr(md5({k}), 1, 8))::bit(32)::bigint %% {n})"

# Columns added to tables that exist, each only when missing: an ALTER TABLE locks the table
# against every reader and writer, even when it turns out to have nothing to do.
_ADDED = {
    "messages.partition": "ALTER TABLE {s}.messages ADD COLUMN partition integer",
    "inbox.seq": "ALTER TABLE {s}.inbox ADD COLUMN seq bigint GENERATED BY DEFAULT AS IDENTITY",
    "messages_partition": "CREATE INDEX messages_partition ON {s}.messages (partition, position)",
}
_HAVE = """
SELECT table_name || '.' || column_name FROM information_schema.columns
WHERE table_schema = %(schema)s AND column_name IN ('partition', 'seq')
UNION ALL SELECT 'messages_partition' FROM pg_indexes
WHERE schemaname = %(schema)s AND indexname = 'messages_partition'
"""

_SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.leases (
    partition integer PRIMARY KEY,
    owner text COLLATE "C",
    token bigint NOT NULL DEFAULT 0,
    expires_at timestamptz
);
CREATE TABLE IF NOT EXISTS {s}.instances (
    id text COLLATE "C" PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.partition_starts (
    consumer text COLLATE "C" NOT NULL,
    partition integer NOT NULL,
    start bigint NOT NULL,
    PRIMARY KEY (consumer, partition)
);
"""

# Per partition and consumer, the first position that may not be done: everything of the
# partition below it is in the consumer's inbox or dead. Written by the partition's owner
# (a lease it still holds); a takeover's recovery scans the partition from there.
_STARTS_PUT = """
INSERT INTO {s}.partition_starts AS ps (consumer, partition, start)
SELECT %(c)s, u.partition, u.start
FROM unnest(%(parts)b::int4[], %(starts)b::int8[], %(tokens)b::int8[])
    AS u(partition, start, token)
JOIN {s}.leases l ON l.partition = u.partition AND l.owner = %(me)s AND l.token = u.token
ON CONFLICT (consumer, partition) DO UPDATE SET start = excluded.start
"""

# Partition -1 is the singletons' lease (the reconciler, the pruning of old records).
_LEASE_ROWS = "INSERT INTO {s}.leases (partition) SELECT generate_series(-1, %s - 1) " \
    "ON CONFLICT DO NOTHING"

# What `_APPEND` does, with each message's partition.
_APPEND_SHARED = _APPEND.replace(
    "%(envs)b::text[])", "%(envs)b::text[], %(parts)b::int4[])"
).replace(
    "AS u(message_id, type, envelope, ord)", "AS u(message_id, type, envelope, partition, ord)"
).replace(
    "(position, message_id, type, published_at, envelope)",
    "(position, message_id, type, published_at, envelope, partition)",
).replace("%(at)s, fresh.envelope", "%(at)s, fresh.envelope, fresh.partition")

# The fence: the leases of the partitions of these messages, locked until the commit (a
# takeover's UPDATE waits for it), so the transaction commits under the tokens it checked.
_FENCE = """
SELECT l.partition, l.owner, l.token FROM {s}.leases l
WHERE l.partition IN (SELECT m.partition FROM {s}.messages m
                      WHERE m.message_id = ANY(%(ids)b::text[]))
FOR SHARE OF l
"""

# New messages of the partitions owned, and the log's head, in one snapshot: every position
# up to the head has committed (positions are handed out in commit order).
_TAIL = """
SELECT h.last, m.position, m.published_at, m.envelope FROM {s}.log_head h
LEFT JOIN LATERAL (
    SELECT position, published_at, envelope FROM {s}.messages
    WHERE position > %(after)s AND partition = ANY(%(parts)b::int4[])
    ORDER BY position LIMIT %(n)s
) m ON true ORDER BY m.position
"""

_RENEW = """
UPDATE {s}.leases l SET expires_at = now() + %(ttl)s * interval '1 second'
FROM unnest(%(parts)b::int4[], %(tokens)b::int8[]) AS h(partition, token)
WHERE l.partition = h.partition AND l.owner = %(me)s AND l.token = h.token
RETURNING l.partition
"""

# Free, expired, or ours from an earlier life of this instance id (not held now: its
# messages were never recovered here). A lease another transaction holds is skipped.
_CLAIM = """
UPDATE {s}.leases l SET owner = %(me)s, token = l.token + 1,
       expires_at = now() + %(ttl)s * interval '1 second'
WHERE l.partition IN (
    SELECT partition FROM {s}.leases
    WHERE partition >= %(lowest)s AND partition <= %(highest)s
      AND NOT (partition = ANY(%(held)b::int4[]))
      AND (owner IS NULL OR expires_at < now() OR owner = %(me)s)
    ORDER BY (owner IS NULL) DESC, partition LIMIT %(n)s FOR UPDATE SKIP LOCKED)
RETURNING l.partition, l.token
"""


@dataclass
class LeaseChange:
    """What one `PostgresStore.heartbeat` changed: partitions (and the singletons' lease,
    -1) newly owned, lost to another instance, or given up to make room for one."""

    claimed: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    released: set[int] = field(default_factory=set)
    live: int = 1
    """Instances alive (heartbeat within the lease's time to live), this one included."""


class WriteConflict(StorageError):
    """A state row this transaction read was written by another connection before it
    committed (optimistic concurrency: with several instances, e.g. two orders of different
    partitions reserving one SKU's stock): nothing was written; the deliveries are due again
    and read the new value."""


class Fenced(StorageError):
    """A transaction touched a partition whose lease this instance no longer holds (it was
    paused or cut off past the lease, and another instance took over): nothing of it was
    written. The instance must re-read its leases (`heartbeat`) and drop what it lost."""


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

    `instance` (an id unique among the instances sharing the schema) opens the store in
    shared mode: the ordering keys fall into partitions (`partitions`, fixed when the schema
    is made), each owned by one instance at a time under a lease with a fencing token. The
    instance's `heartbeat` renews, claims and releases leases (a fair share of the live
    instances'); every write of a delivery (inbox records, state, acks, dead letters) first
    checks, in its own transaction, that this instance holds the leases of the messages'
    partitions with the tokens it was given (`Fenced` if not: nothing is written).
    `unfinished` returns the owned partitions' messages only, `tail` the new ones. Appends
    (publishing) need no lease. The state cache is off in this mode.
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "interop_bus",
        *,
        cache_state: bool = False,
        connect_timeout_s: float = 5.0,
        instance: str | None = None,
        lease_ttl_s: float = 5.0,
        partitions: int = PARTITIONS,
    ) -> None:
        if instance is not None and cache_state:
            raise ValueError("cache_state needs one writer per schema: not with `instance`")
        if not 1 <= partitions <= 4096:
            raise ValueError(f"partitions: 1 to 4096, not {partitions}")
        self.instance = instance
        self.lease_ttl_s = lease_ttl_s
        self.partitions = partitions
        """The schema's number of partitions (read from it when it already has leases)."""
        self.owned: dict[int, int] = {}
        """Shared mode: partition -> the fencing token of its lease, held by this instance."""
        self.tailed = 0
        """Shared mode: `tail` has read every committed position up to here."""
        self.fenced = 0
        """Shared mode: transactions refused by the fence."""
        self._fence_pending = False
        self.dsn = dsn
        self.schema = schema
        self.cache_state = cache_state
        self.connect_timeout_s = connect_timeout_s
        self._depth = 0
        self._isolation = ""
        self._unsent_begin: str | None = None
        """The open batch's BEGIN, until its first statement carries it to the server."""
        self._unsent: list[tuple[str, Any]] = []
        """Statements of the open batch whose results nothing reads, not sent yet."""
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
        if instance is not None:
            # What was in the log before this instance came is recovered partition by
            # partition when their leases are claimed; `tail` reads what comes after.
            self.tailed = self.last_position()

    # -- connection --------------------------------------------------------------------------

    def _statements(self) -> dict[str, str]:
        s = '"' + self.schema.replace('"', '""') + '"'
        return {
            "schema": _SCHEMA.format(s=s),
            "shared_schema": _SHARED_SCHEMA.format(s=s),
            **{f"add {k}": v.format(s=s) for k, v in _ADDED.items()},
            "lease_rows": _LEASE_ROWS.format(s=s),
            "backfill": f"UPDATE {s}.messages SET partition = "
            + _PARTITION_SQL.format(k="(envelope::json->>'key')", n="%s")
            + " WHERE partition IS NULL",
            "append": (_APPEND_SHARED if self.instance is not None else _APPEND).format(s=s),
            "fence": _FENCE.format(s=s),
            "starts_put": _STARTS_PUT.format(s=s),
            "starts_get": f"SELECT partition, start FROM {s}.partition_starts "
            "WHERE consumer = %s",
            "starts_reset": f"DELETE FROM {s}.partition_starts "
            "WHERE consumer = %s AND partition = %s",
            "tail": _TAIL.format(s=s),
            "renew": _RENEW.format(s=s),
            "claim": _CLAIM.format(s=s),
            "beat": f"INSERT INTO {s}.instances (id, heartbeat_at) VALUES (%s, now()) "
            "ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
            "live": f"SELECT id FROM {s}.instances "
            "WHERE heartbeat_at > now() - %s * interval '1 second' ORDER BY id",
            "forget_dead": f"DELETE FROM {s}.instances "
            "WHERE heartbeat_at < now() - %s * interval '1 second'",
            "release": f"UPDATE {s}.leases SET owner = NULL, expires_at = NULL "
            "WHERE partition = ANY(%b::int4[]) AND owner = %s",
            "leave": f"DELETE FROM {s}.instances WHERE id = %s",
            "leases": f"SELECT partition, owner, token, expires_at < now() FROM {s}.leases "
            "ORDER BY partition",
            "unowned": f"SELECT count(*) FROM {s}.leases "
            "WHERE partition >= 0 AND (owner IS NULL OR expires_at < now())",
            "n_partitions": f"SELECT count(*) FROM {s}.leases WHERE partition >= 0",
            "flush": _FLUSH.format(s=s),
            "find": f"SELECT envelope FROM {s}.messages WHERE message_id = %s",
            "last": f"SELECT last FROM {s}.log_head",
            "log": f"SELECT position, published_at, envelope FROM {s}.messages "
            "WHERE position >= %s AND published_at >= %s ORDER BY position LIMIT %s",
            "unfinished": (
                f"SELECT m.position, m.published_at, m.envelope FROM {s}.messages m "
                "WHERE m.position >= %(start)s "
                "AND (%(types)b::text[] IS NULL OR m.type = ANY(%(types)b::text[])) "
                "AND (%(parts)b::int4[] IS NULL OR m.partition = ANY(%(parts)b::int4[])) "
                "AND m.position <= %(upto)s "
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
                have = {r[0] for r in conn.execute(_HAVE, {"schema": self.schema})}
                if "messages.partition" not in have:  # a schema made before partitions
                    conn.execute(self._sql["add messages.partition"])
                if self.instance is not None:
                    for what in ("inbox.seq", "messages_partition"):
                        if what not in have:
                            conn.execute(self._sql[f"add {what}"])
                    self._open_shared(conn)
            if self.instance is not None:
                # A paused instance must not hold locks (the log's head, a lease's fence)
                # past its lease: the server ends a transaction left idle that long.
                idle_ms = max(100, int(self.lease_ttl_s * 600))
                conn.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")
            lock = ("pg_try_advisory_lock_shared" if self.instance is not None
                    else "pg_try_advisory_lock")
            if self.cache_state or self.instance is not None:
                # One caching store, or any number of shared ones: never both.
                got = conn.execute(
                    f"SELECT {lock}(hashtext(%s))",
                    ("interop-twin cache " + self.schema,),
                ).fetchone()
                if not (got and got[0]):
                    raise StorageError(
                        f"postgres: schema {self.schema!r} is held by another "
                        + ("store with cache_state=True (a single instance)"
                           if self.instance is not None else
                           "store (with cache_state=True, or instances sharing it)")
                    )
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_shared(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """The shared mode's tables, under the schema lock; a schema that has leases keeps
        its number of partitions."""
        conn.execute(self._sql["shared_schema"])
        row = conn.execute(self._sql["n_partitions"]).fetchone()
        have = int(row[0]) if row else 0
        if have:
            self.partitions = have
        else:
            conn.execute(self._sql["lease_rows"], (self.partitions,))
        # A log written by single instances has no partitions yet (an index scan when none
        # is missing).
        conn.execute(self._sql["backfill"], (self.partitions,))

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
        conn = self._live()
        if self._unsent_begin is None and not self._unsent:
            return conn.execute(sql, args, prepare=True)
        with conn.pipeline():  # one round trip: the batch's BEGIN and what waited, then this
            self._send_unsent(conn)
            cur = conn.execute(sql, args, prepare=True)
        return cur

    def _exec_later(self, sql: str, args: Any) -> None:
        """In a batch: sent with its next statement or its COMMIT (a failure fails the
        batch there); outside one: now."""
        if self._depth:
            self._unsent.append((sql, args))
        else:
            self._exec(sql, args)

    def _send_unsent(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        if self._unsent_begin is not None:
            conn.execute(self._unsent_begin)
            self._unsent_begin = None
        for sql, args in self._unsent:
            conn.execute(sql, args, prepare=True)
        self._unsent.clear()

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
            self._commit(conn)
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
            self._unsent_begin = None
            self._unsent.clear()
            self._versions.clear()
            self._pending.clear()

    def _commit(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        if self._unsent_begin is not None and not self._unsent:
            return  # nothing was sent: there is no transaction on the server to commit
        if self._unsent_begin is None and not self._unsent:
            conn.execute("COMMIT")
            return
        with conn.pipeline():
            self._send_unsent(conn)
            conn.execute("COMMIT")

    @guarded
    def _begin(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = self._live()  # a lost connection is replaced here, outside the transaction
        self._unsent_begin = "BEGIN" + self._isolation
        return conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one instant of the database (a REPEATABLE READ, read-only
        transaction), e.g. the WMS view and the messages not yet applied to it. Inside a
        batch already open it is that batch."""
        self._isolation = "" if self._depth else " ISOLATION LEVEL REPEATABLE READ READ ONLY"
        try:
            with self.batch():
                self._isolation = ""
                yield
        finally:
            self._isolation = ""

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
                **({} if self.instance is None else
                   {"parts": [partition_of(e.key, self.partitions) for e in fresh]}),
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
        """In shared mode: of the partitions owned, up to what `tail` has read (the rest
        comes from `tail`)."""
        if self.instance is None:
            return self.unfinished_in(consumer, types, start)
        return self.unfinished_in(consumer, types, start, set(self.owned), self.tailed)

    def unfinished_in(
        self, consumer: str, types: frozenset[str] | None, start: int,
        partitions: set[int] | None = None, upto: int | None = None,
    ) -> Iterator[LogEntry]:
        """`unfinished`, of these partitions only (None: all) and up to position `upto`."""
        wanted = None if types is None else sorted(types)
        parts = None if partitions is None else sorted(partitions)
        pos, last = start, (2**63 - 1) if upto is None else upto
        while True:
            rows = self._page(
                self._sql["unfinished"],
                {"start": pos, "types": wanted, "c": consumer, "page": _PAGE,
                 "parts": parts, "upto": last},
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
            raise WriteConflict(
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
            self._fence(ids)
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
                self._exec_later(self._sql["inbox_drop"], (consumer, sorted(failed)))
            self._flush(overlay)
        return results

    def mark_processed(self, consumer: str, message_id: str) -> None:
        self.mark_processed_many(consumer, [message_id])

    @guarded
    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        if not message_ids:
            return
        if self.instance is None:
            self._exec_later(self._sql["inbox_mark"], (consumer, message_ids))
            return
        with self.batch():  # the fence's locks last until the commit
            self._fence(message_ids)
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
        if self.instance is not None and dl.position is not None and dl.message_id:
            with self.batch():
                self._fence([dl.message_id])
                self._put_dead_letter(dl)
            return
        self._put_dead_letter(dl)

    def _put_dead_letter(self, dl: DeadLetter) -> None:
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

    # -- shared mode: leases, the fence, the tail ------------------------------------------

    def _fence(self, message_ids: list[str]) -> None:
        """In shared mode, inside the open transaction: the leases of these messages'
        partitions are this instance's, with the tokens it holds, and stay locked until the
        commit; `Fenced` otherwise. Messages not in the log (an opening balance) have no
        partition and need no lease."""
        if self.instance is None:
            return
        rows = self._exec(self._sql["fence"], {"ids": message_ids}).fetchall()
        stale = sorted(int(p) for p, owner, token in rows
                       if owner != self.instance or self.owned.get(int(p)) != int(token))
        if stale:
            self.fenced += 1
            raise Fenced(f"postgres: instance {self.instance!r} no longer holds the lease of "
                         f"partition(s) {stale[:8]}: nothing written")

    def owns(self, key: str) -> bool:
        """Shared mode: whether the key's partition is owned here (single mode: always)."""
        return self.instance is None or partition_of(key, self.partitions) in self.owned

    @guarded
    def tail(self, limit: int = _PAGE) -> list[LogEntry]:
        """Shared mode: the owned partitions' messages committed since the last call, in log
        order (`tailed` moves on over the other partitions' too)."""
        rows = self._exec(self._sql["tail"], {"after": self.tailed,
                                              "parts": sorted(self.owned), "n": limit}
                          ).fetchall()
        out = [LogEntry(int(p), float(t), Envelope.model_validate_json(e))
               for _, p, t, e in rows if p is not None]
        head = int(rows[0][0]) if rows else self.tailed
        self.tailed = out[-1].position if len(out) >= limit else max(self.tailed, head)
        return out

    @guarded
    def heartbeat(self) -> LeaseChange:
        """Shared mode, one transaction: say this instance is alive, renew the leases it
        holds, give up those over its fair share of the live instances', and claim free or
        expired ones up to it (and the singletons' lease, -1, when nobody holds it). The
        database's clock decides expiry, never the instance's. On return `owned` is what this
        instance holds; the caller drops what was lost or released and recovers what was
        claimed (its messages up to `tailed`)."""
        assert self.instance is not None, "heartbeat: shared mode only"
        me, ttl = self.instance, self.lease_ttl_s
        change = LeaseChange()
        held = dict(self.owned)
        with self.batch():
            self._exec("SET LOCAL lock_timeout = '2s'")
            self._exec(self._sql["beat"], (me,))
            live = [r[0] for r in self._exec(self._sql["live"], (ttl,)).fetchall()]
            change.live = max(1, len(live))
            rank = live.index(me) if me in live else 0
            kept = {int(r[0]) for r in self._exec(self._sql["renew"], {
                "ttl": ttl, "me": me, "parts": sorted(held),
                "tokens": [held[p] for p in sorted(held)]}).fetchall()}
            change.lost = set(held) - kept
            mine = sorted(p for p in kept if p >= 0)
            share = fair_share(self.partitions, change.live, rank)
            if len(mine) > share:  # make room for a newcomer: the highest ones go
                change.released = set(mine[share:])
                self._exec(self._sql["release"], (sorted(change.released), me))
            need = share - (len(mine) - len(change.released))
            claims: list[tuple[int, int]] = []
            if need > 0:
                claims += self._exec(self._sql["claim"], {
                    "me": me, "ttl": ttl, "held": sorted(kept), "lowest": 0,
                    "highest": self.partitions - 1, "n": need}).fetchall()
            if -1 not in kept:
                claims += self._exec(self._sql["claim"], {
                    "me": me, "ttl": ttl, "held": sorted(kept), "lowest": -1,
                    "highest": -1, "n": 1}).fetchall()
            self._exec(self._sql["forget_dead"], (ttl * 100,))
        # Settled only now that it committed.
        for p in change.lost | change.released:
            self.owned.pop(p, None)
        for p, token in claims:
            self.owned[int(p)] = int(token)
            change.claimed.add(int(p))
        return change

    @guarded
    def save_partition_starts(self, consumer: str, starts: dict[int, int]) -> None:
        """Shared mode: per partition owned, the consumer's first position that may not be
        done (everything of the partition below it is processed or dead)."""
        parts = sorted(p for p in starts if p in self.owned)
        if parts:
            self._exec(self._sql["starts_put"], {
                "c": consumer, "me": self.instance, "parts": parts,
                "starts": [starts[p] for p in parts], "tokens": [self.owned[p] for p in parts]})

    @guarded
    def partition_starts(self, consumer: str) -> dict[int, int]:
        """Shared mode: the starts saved per partition (a partition without one starts at
        the consumer's subscription start)."""
        return {int(p): int(st) for p, st in
                self._exec(self._sql["starts_get"], (consumer,)).fetchall()}

    @guarded
    def reset_partition_start(self, consumer: str, partition: int) -> None:
        """Shared mode: the partition starts at the subscription's start again (a dead
        letter of it was requeued: it is no longer done)."""
        self._exec(self._sql["starts_reset"], (consumer, partition))

    @guarded
    def leave(self) -> None:
        """Shared mode: give up every lease at once (a clean stop), so the others take over
        at their next heartbeat instead of after the leases' time to live."""
        if self.instance is None:
            return
        with self.batch():
            self._exec(self._sql["release"], (sorted(self.owned), self.instance))
            self._exec(self._sql["leave"], (self.instance,))
        self.owned.clear()

    @guarded
    def leases(self) -> list[tuple[int, str | None, int, bool]]:
        """Every lease: (partition, owner, token, expired); partition -1 is the
        singletons'."""
        return [(int(p), o, int(t), bool(x))
                for p, o, t, x in self._exec(self._sql["leases"]).fetchall()]

    @guarded
    def unowned(self) -> int:
        """Partitions without a live owner (free, or their lease expired)."""
        row = self._exec(self._sql["unowned"]).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection. Writes of an open batch are rolled back, as in a crash."""
        self._conn.close()
