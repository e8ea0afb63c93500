"""SQLite store: one file in WAL mode. A committed write survives the process being killed.

With ``synchronous=NORMAL`` (the default here) WAL commits survive a process crash; the last
transactions before an OS crash or power loss may be lost. ``synchronous="FULL"`` survives those
too, at the cost of an fsync per commit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.bus.store import Effect
from integration_core.envelope import Envelope

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
    last_failure_at REAL NOT NULL
);
"""


class _SQLiteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, ns: str, key: str) -> Any:
        row = self._conn.execute(
            "SELECT value FROM state WHERE ns = ? AND key = ?", (ns, key)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, ns: str, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO state (ns, key, value) VALUES (?, ?, ?)",
            (ns, key, json.dumps(value)),
        )


class SQLiteStore:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        # Autocommit mode: transactions are opened explicitly by batch() and apply().
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.executescript(_SCHEMA)
        self._depth = 0

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._depth == 0:
            self._conn.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._conn.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._conn.execute("COMMIT")

    # -- log ---------------------------------------------------------------------------------

    def append(self, envelope: Envelope, published_at: float) -> int | None:
        with self.batch():
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO messages (message_id, type, published_at, envelope) "
                "VALUES (?, ?, ?, ?)",
                (envelope.message_id, envelope.type, published_at, envelope.model_dump_json()),
            )
        return cur.lastrowid if cur.rowcount == 1 else None

    def last_position(self) -> int:
        row = self._conn.execute("SELECT max(position) FROM messages").fetchone()
        return int(row[0] or 0)

    def log(self, from_position: int = 0, from_time: float | None = None) -> Iterator[LogEntry]:
        sql = "SELECT position, published_at, envelope FROM messages WHERE position >= ?"
        args: list[Any] = [from_position]
        if from_time is not None:
            sql += " AND published_at >= ?"
            args.append(from_time)
        for pos, at, env in self._conn.execute(sql + " ORDER BY position", args).fetchall():
            yield LogEntry(pos, at, Envelope.model_validate_json(env))

    def unfinished(
        self, consumer: str, types: frozenset[str] | None, start: int
    ) -> Iterator[LogEntry]:
        rows = self._conn.execute(
            "SELECT m.position, m.published_at, m.type, m.envelope FROM messages m "
            "WHERE m.position >= ? "
            "AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.consumer = ? "
            "                AND i.message_id = m.message_id) "
            "AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.consumer = ? "
            "                AND d.position = m.position) "
            "ORDER BY m.position",
            (start, consumer, consumer),
        ).fetchall()
        for pos, at, typ, env in rows:
            if types is None or typ in types:
                yield LogEntry(pos, at, Envelope.model_validate_json(env))

    # -- inbox and consumer state ------------------------------------------------------------

    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        conn = self._conn
        with self.batch():
            conn.execute("SAVEPOINT apply")
            try:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO inbox (consumer, message_id) VALUES (?, ?)",
                    (consumer, message_id),
                )
                if cur.rowcount == 1:
                    effect(_SQLiteTx(conn))
            except BaseException:
                conn.execute("ROLLBACK TO apply")
                conn.execute("RELEASE apply")
                raise
            conn.execute("RELEASE apply")
        return cur.rowcount == 1

    def processed(self, consumer: str, message_id: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM inbox WHERE consumer = ? AND message_id = ?", (consumer, message_id)
        ).fetchone()
        return row is not None

    def get_state(self, ns: str, key: str) -> Any:
        return _SQLiteTx(self._conn).get(ns, key)

    def state(self, ns: str) -> dict[str, Any]:
        rows = self._conn.execute("SELECT key, value FROM state WHERE ns = ?", (ns,)).fetchall()
        return {k: json.loads(v) for k, v in rows}

    # -- subscriptions and dead letters ------------------------------------------------------

    def save_subscription(self, consumer: str, types: frozenset[str] | None, start: int) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO subscriptions (consumer, types, start) VALUES (?, ?, ?)",
                (consumer, None if types is None else json.dumps(sorted(types)), start),
            )

    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None:
        row = self._conn.execute(
            "SELECT types, start FROM subscriptions WHERE consumer = ?", (consumer,)
        ).fetchone()
        if row is None:
            return None
        return (None if row[0] is None else frozenset(json.loads(row[0]))), int(row[1])

    def put_dead_letter(self, dl: DeadLetter) -> None:
        with self.batch():
            self._conn.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dl.id, dl.consumer, dl.position, dl.message_id,
                    None if dl.envelope is None else dl.envelope.model_dump_json(),
                    dl.raw, dl.cause_type, dl.cause_message, dl.attempts,
                    dl.first_failure_at, dl.last_failure_at,
                ),
            )

    def delete_dead_letter(self, dl_id: str) -> None:
        with self.batch():
            self._conn.execute("DELETE FROM dead_letters WHERE id = ?", (dl_id,))

    def dead_letters(self) -> list[DeadLetter]:
        rows = self._conn.execute(
            "SELECT * FROM dead_letters ORDER BY last_failure_at, id"
        ).fetchall()
        return [
            DeadLetter(
                id=r[0], consumer=r[1], position=r[2], message_id=r[3],
                envelope=None if r[4] is None else Envelope.model_validate_json(r[4]),
                raw=r[5], cause_type=r[6], cause_message=r[7], attempts=r[8],
                first_failure_at=r[9], last_failure_at=r[10],
            )
            for r in rows
        ]

    def close(self) -> None:
        """Close the file. Writes of an open batch are rolled back, as in a crash."""
        self._conn.close()
