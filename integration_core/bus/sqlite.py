"""SQLite store: one file in WAL mode. A committed write survives the process being killed.

With ``synchronous=NORMAL`` (the default here) WAL commits survive a process crash; the last
transactions before an OS crash or power loss may be lost. ``synchronous="FULL"`` survives those
too, at the cost of an fsync per commit.

Every SQLite failure (disk full, I/O error, locked) leaves as `StorageError`, after the open
transaction was rolled back: the connection stays usable, and the next write succeeds as soon
as the cause is gone (space freed), without reopening the file.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.bus.store import Effect
from integration_core.envelope import Envelope
from integration_core.errors import StorageError

P = ParamSpec("P")
R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    position INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    published_at REAL NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_time ON messages (published_at);
CREATE TABLE IF NOT EXISTS inbox (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    PRIMARY KEY (consumer, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
    consumer TEXT PRIMARY KEY,
    types TEXT,
    start INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    position INTEGER,
    message_id TEXT,
    envelope TEXT,
    raw TEXT,
    cause_type TEXT NOT NULL,
    cause_message TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failure_at REAL NOT NULL,
    last_failure_at REAL NOT NULL,
    transient INTEGER NOT NULL DEFAULT 0
);
"""
_MIGRATIONS = (
    # Files written before dead letters said whether their cause was transient.
    ("dead_letters", "transient", "ALTER TABLE dead_letters ADD COLUMN transient INTEGER "
                                  "NOT NULL DEFAULT 0"),
)


_SCALAR = frozenset({int, float, str, bool, type(None)})


def _failure(exc: sqlite3.Error) -> StorageError:
    return StorageError(f"sqlite: {exc}")


def guarded(method: Callable[P, R]) -> Callable[P, R]:
    """SQLite's errors as `StorageError` (its cause chained): callers see one error type for
    "the store failed", whatever the adapter."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise _failure(exc) from exc

    return call


def _copy(value: Any) -> Any:
    return value if type(value) in _SCALAR else json.loads(json.dumps(value))


def _dumps(value: Any) -> str:
    # Integers (stock rows, counters) are most of the state: str() is their JSON, faster.
    return str(value) if type(value) is int else json.dumps(value)


def _loads(text: str) -> Any:
    digits = text[1:] if text[:1] == "-" else text
    if digits.isdigit() and digits.isascii():  # an integer, as `_dumps` wrote it
        return int(text)
    return json.loads(text)


class _SQLiteTx:
    """Reads see the database plus this effect's own writes; writes are staged and flushed
    only when the effect returns, so a failing effect leaves nothing behind."""

    __slots__ = ("_base", "_conn", "_store", "staged")

    def __init__(
        self, conn: sqlite3.Connection, base: dict[tuple[str, str], Any] | None = None,
        store: SQLiteStore | None = None,
    ) -> None:
        self._conn = conn
        self._base = base if base is not None else {}
        """Writes of earlier effects in the same batch, not yet flushed."""
        self._store = store
        """With its state cache: read through it (inside the store's open transaction)."""
        self.staged: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any:
        # Staged values are copied out: an effect that mutates what it read and then fails
        # must not change the batch's pending writes.
        k = (ns, key)
        if k in self.staged:
            return _copy(self.staged[k])
        if k in self._base:
            return _copy(self._base[k])
        store = self._store
        if store is not None:
            # This transaction's values first (flushed, not committed), then committed ones.
            if k in store._pending:
                return _copy(store._pending[k])
            if k in store._cache:
                return _copy(store._cache[k])
        try:
            row = self._conn.execute(
                "SELECT value FROM state WHERE ns = ? AND key = ?", k
            ).fetchone()
        except sqlite3.Error as exc:  # not the message's fault: fails the whole batch
            raise _failure(exc) from exc
        if row is None:
            return None
        value = _loads(row[0])
        if store is None:
            return value
        store._pending[k] = value  # cached once this transaction commits
        return _copy(value)

    def put(self, ns: str, key: str, value: Any) -> None:
        # Round-trip non-scalars through JSON now: the effect sees what will be stored and
        # cannot mutate it afterwards.
        self.staged[(ns, key)] = value if type(value) in _SCALAR else json.loads(json.dumps(value))


def _flush(conn: sqlite3.Connection, staged: dict[tuple[str, str], Any],
           store: SQLiteStore | None = None) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO state (ns, key, value) VALUES (?, ?, ?)",
        [(ns, key, _dumps(v)) for (ns, key), v in staged.items()],
    )
    if store is not None:
        store._pending.update(staged)


CACHE_MAX = 200_000
"""State values a caching store keeps (the oldest go first): a stock row each, in the service."""


class SQLiteStore:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL",
                 autocheckpoint: bool = True, cache_state: bool = False) -> None:
        """`autocheckpoint=False`: commits never checkpoint the log; a `wal.Checkpointer` on
        the same file must, or the log grows without end.

        `cache_state=True` keeps up to `CACHE_MAX` state values in memory, as read or
        written by committed transactions, and serves the effects' reads from them (a stock
        row is read once a movement). Sound only while this store is the one writer of the
        file's state, as in the service, which owns its file; values enter the cache only
        after their transaction commits, so a failed commit leaves it as it was."""
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        # Autocommit mode: transactions are opened explicitly by batch() and apply().
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        if not autocheckpoint:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.executescript(_SCHEMA)
        for table, column, ddl in _MIGRATIONS:
            columns = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._conn.execute(ddl)
        self._depth = 0
        self.cache_state = cache_state
        self._cache: dict[tuple[str, str], Any] = {}
        """cache_state: committed values by (ns, key), oldest first."""
        self._pending: dict[tuple[str, str], Any] = {}
        """cache_state: what the open transaction read or wrote; cached when it commits."""

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
            # IMMEDIATE: the write lock is taken up front, where SQLite waits for another
            # connection holding it (a checkpointer's RESTART). A deferred transaction that
            # has read first gets "database is locked" at once instead (waiting could deadlock).
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _failure(exc) from exc
        self._depth = 1
        try:
            yield
            self._conn.execute("COMMIT")
            if self._pending:
                self._settle_cache()
        except BaseException as exc:
            # A failed COMMIT (SQLITE_FULL, IOERR) may leave the transaction open: roll it
            # back, or every later BEGIN fails and the store never recovers.
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise _failure(exc) from exc
            raise
        finally:
            self._depth = 0
            self._pending.clear()

    def _settle_cache(self) -> None:
        cache = self._cache
        for k, v in self._pending.items():
            cache.pop(k, None)  # re-inserted last: the recently used stay longest
            cache[k] = v
        for k in list(islice(cache, max(0, len(cache) - CACHE_MAX))):
            del cache[k]

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # SQLite rolled back by itself already
                self._conn.execute("ROLLBACK")

    # -- log ---------------------------------------------------------------------------------

    @guarded
    def append(self, envelope: Envelope, published_at: float) -> int | None:
        # A lone statement is its own transaction in autocommit mode.
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO messages (message_id, type, published_at, envelope) "
            "VALUES (?, ?, ?, ?)",
            (envelope.message_id, envelope.type, published_at, envelope.model_dump_json()),
        )
        return cur.lastrowid if cur.rowcount == 1 else None

    @guarded
    def append_many(self, envelopes: list[Envelope], published_at: float) -> list[int | None]:
        """Append in one transaction with one executemany; duplicates (against the log or
        earlier in the list) get None."""
        with self.batch():
            known: set[str] = set()
            ids = [e.message_id for e in envelopes]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                known.update(r[0] for r in self._conn.execute(
                    f"SELECT message_id FROM messages WHERE message_id IN ({marks})", chunk))
            fresh: list[Envelope] = []
            for e in envelopes:
                if e.message_id not in known:
                    known.add(e.message_id)
                    fresh.append(e)
            first = self.last_position() + 1
            self._conn.executemany(
                "INSERT INTO messages (message_id, type, published_at, envelope) "
                "VALUES (?, ?, ?, ?)",
                [(e.message_id, e.type, published_at, e.model_dump_json()) for e in fresh],
            )
        # Rowids of an INTEGER PRIMARY KEY grow by one from max + 1 in a single transaction.
        positions = iter(range(first, first + len(fresh)))
        fresh_ids = {id(e) for e in fresh}
        return [next(positions) if id(e) in fresh_ids else None for e in envelopes]

    @guarded
    def find(self, message_id: str) -> Envelope | None:
        row = self._conn.execute("SELECT envelope FROM messages WHERE message_id = ?",
                                 (message_id,)).fetchone()
        return None if row is None else Envelope.model_validate_json(row[0])

    @guarded
    def last_position(self) -> int:
        row = self._conn.execute("SELECT max(position) FROM messages").fetchone()
        return int(row[0] or 0)

    def log(self, from_position: int = 0, from_time: float | None = None) -> Iterator[LogEntry]:
        sql = "SELECT position, published_at, envelope FROM messages WHERE position >= ?"
        args: list[Any] = [from_position]
        if from_time is not None:
            sql += " AND published_at >= ?"
            args.append(from_time)
        for pos, at, env in self._rows(sql + " ORDER BY position", args):
            yield LogEntry(pos, at, Envelope.model_validate_json(env))

    @guarded
    def _rows(self, sql: str, args: Any) -> list[Any]:
        return self._conn.execute(sql, args).fetchall()

    def unfinished(
        self, consumer: str, types: frozenset[str] | None, start: int
    ) -> Iterator[LogEntry]:
        rows = self._rows(
            "SELECT m.position, m.published_at, m.type, m.envelope FROM messages m "
            "WHERE m.position >= ? "
            "AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = ? "
            "                AND i.message_id = m.message_id) "
            "AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.consumer = ? "
            "                AND d.position = m.position) "
            "ORDER BY m.position",
            (start, consumer, consumer),
        )
        for pos, at, typ, env in rows:
            if types is None or typ in types:
                yield LogEntry(pos, at, Envelope.model_validate_json(env))

    # -- inbox and consumer state ------------------------------------------------------------

    @guarded
    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        conn = self._conn
        with self.batch():
            cur = conn.execute(
                "INSERT OR IGNORE INTO inbox (consumer, message_id) VALUES (?, ?)",
                (consumer, message_id),
            )
            if cur.rowcount == 0:
                return False
            cached = self if self.cache_state else None
            tx = _SQLiteTx(conn, None, cached)
            try:
                effect(tx)
            except BaseException:
                # The effect's writes were only staged; undo the inbox record alone.
                conn.execute(
                    "DELETE FROM inbox WHERE consumer = ? AND message_id = ?",
                    (consumer, message_id),
                )
                raise
            _flush(conn, tx.staged, cached)
        return True

    @guarded
    def apply_many(
        self, consumer: str, items: list[tuple[str, Effect]]
    ) -> list[bool | Exception]:
        """`apply` for a batch: one inbox lookup, one executemany each for the inbox records
        and the state, all in one transaction. A failing effect's writes are never flushed."""
        conn = self._conn
        with self.batch():
            done: set[str] = set()
            ids = [mid for mid, _ in items]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                done.update(r[0] for r in conn.execute(
                    f"SELECT message_id FROM inbox WHERE consumer = ? AND message_id IN ({marks})",
                    [consumer, *chunk]))
            overlay: dict[tuple[str, str], Any] = {}
            cached = self if self.cache_state else None
            results: list[bool | Exception] = []
            recorded: list[tuple[str, str]] = []
            for mid, effect in items:
                if mid in done:
                    results.append(False)
                    continue
                tx = _SQLiteTx(conn, overlay, cached)
                try:
                    effect(tx)
                except StorageError:  # the store itself: the whole batch fails
                    raise
                except Exception as exc:  # reported per message; the batch goes on
                    results.append(exc)
                    continue
                overlay.update(tx.staged)
                done.add(mid)
                recorded.append((consumer, mid))
                results.append(True)
            conn.executemany("INSERT INTO inbox (consumer, message_id) VALUES (?, ?)", recorded)
            _flush(conn, overlay, cached)
        return results

    @guarded
    def mark_processed(self, consumer: str, message_id: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO inbox (consumer, message_id) VALUES (?, ?)",
            (consumer, message_id),
        )

    @guarded
    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        with self.batch():
            self._conn.executemany(
                "INSERT OR IGNORE INTO inbox (consumer, message_id) VALUES (?, ?)",
                [(consumer, mid) for mid in message_ids],
            )

    @guarded
    def processed(self, consumer: str, message_id: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM inbox WHERE consumer = ? AND message_id = ?", (consumer, message_id)
        ).fetchone()
        return row is not None

    @guarded
    def get_state(self, ns: str, key: str) -> Any:
        return _SQLiteTx(self._conn).get(ns, key)

    @guarded
    def state(self, ns: str, prefix: str = "") -> dict[str, Any]:
        if prefix:  # a range on the primary key: no scan of the namespace
            rows = self._conn.execute(
                "SELECT key, value FROM state WHERE ns = ? AND key >= ? AND key < ?",
                (ns, prefix, prefix + "\U0010ffff")).fetchall()
            rows = [(k, v) for k, v in rows if k.startswith(prefix)]
        else:
            rows = self._conn.execute("SELECT key, value FROM state WHERE ns = ?",
                                      (ns,)).fetchall()
        return {k: _loads(v) for k, v in rows}

    # -- subscriptions and dead letters ------------------------------------------------------

    @guarded
    def save_subscription(self, consumer: str, types: frozenset[str] | None, start: int) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO subscriptions (consumer, types, start) VALUES (?, ?, ?)",
                (consumer, None if types is None else json.dumps(sorted(types)), start),
            )

    @guarded
    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None:
        row = self._conn.execute(
            "SELECT types, start FROM subscriptions WHERE consumer = ?", (consumer,)
        ).fetchone()
        if row is None:
            return None
        return (None if row[0] is None else frozenset(json.loads(row[0]))), int(row[1])

    @guarded
    def put_dead_letter(self, dl: DeadLetter) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO dead_letters (id, consumer, position, message_id, "
                "envelope, raw, cause_type, cause_message, attempts, first_failure_at, "
                "last_failure_at, transient) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dl.id, dl.consumer, dl.position, dl.message_id,
                    None if dl.envelope is None else dl.envelope.model_dump_json(),
                    dl.raw, dl.cause_type, dl.cause_message, dl.attempts,
                    dl.first_failure_at, dl.last_failure_at, int(dl.transient),
                ),
            )

    @guarded
    def delete_dead_letter(self, dl_id: str) -> None:
        with self.batch():
            self._conn.execute("DELETE FROM dead_letters WHERE id = ?", (dl_id,))

    @guarded
    def dead_letters(self) -> list[DeadLetter]:
        rows = self._conn.execute(
            "SELECT id, consumer, position, message_id, envelope, raw, cause_type, "
            "cause_message, attempts, first_failure_at, last_failure_at, transient "
            "FROM dead_letters ORDER BY last_failure_at, id"
        ).fetchall()
        return [
            DeadLetter(
                id=r[0], consumer=r[1], position=r[2], message_id=r[3],
                envelope=None if r[4] is None else Envelope.model_validate_json(r[4]),
                raw=r[5], cause_type=r[6], cause_message=r[7], attempts=r[8],
                first_failure_at=r[9], last_failure_at=r[10], transient=bool(r[11]),
            )
            for r in rows
        ]

    def close(self) -> None:
        """Close the file. Writes of an open batch are rolled back, as in a crash."""
        self._conn.close()
