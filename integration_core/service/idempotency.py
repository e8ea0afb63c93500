"""Idempotency-Key: the same key with the same request replays the first response; the same
key with a different request is a 409.

Records live in the bus's SQLite file, table ``idempotency``, written through a second
connection *after* the request's own effect committed. A crash between the two commits leaves
the effect without a record: the client's retry runs the request again, and the bus dedupes it
by message id (the answer then says ``duplicate``), so the effect still happens once. The
reverse order could acknowledge a request whose effect was lost, so it is not used.

A failure of this table (disk full) is a `StorageError`: before the effect, the request
answers 503; after it, the effect stands and the response is sent without a record (as after
a crash between the two commits).

Keys are scoped per calling system; only 2xx responses are recorded, so a client may fix a
rejected body and retry under the same key.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from integration_core.bus.sqlite import guarded

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    system TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (system, key)
) WITHOUT ROWID;
"""
MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Recorded:
    fingerprint: str
    status: int
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    h = hashlib.sha256()
    h.update(f"{method} {path}\n".encode())
    h.update(body)
    return h.hexdigest()


class IdempotencyStore:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL",
                 autocheckpoint: bool = True) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        if not autocheckpoint:  # the engine's checkpointer does it (integration_core/bus/wal.py)
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.executescript(_SCHEMA)
        self.replays = 0
        self.conflicts = 0

    @guarded
    def get(self, system: str, key: str) -> Recorded | None:
        row = self._conn.execute(
            "SELECT fingerprint, status, body FROM idempotency WHERE system = ? AND key = ?",
            (system, key),
        ).fetchone()
        return None if row is None else Recorded(row[0], int(row[1]), bytes(row[2]))

    @guarded
    def put(self, system: str, key: str, fp: str, status: int, body: bytes, now: float) -> None:
        # OR IGNORE: the first response stays the one replayed.
        self._conn.execute(
            "INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
            (system, key, fp, status, body, now),
        )

    @guarded
    def prune(self, older_than: float) -> int:
        return self._conn.execute(
            "DELETE FROM idempotency WHERE created_at < ?", (older_than,)
        ).rowcount

    def close(self) -> None:
        self._conn.close()
