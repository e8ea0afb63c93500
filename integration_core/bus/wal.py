"""WAL checkpoints of a SQLite file from their own thread, so the writer never waits for one.

By default SQLite checkpoints inside the commit that takes the write-ahead log past 1,000 pages:
that commit copies the pages into the database file and syncs it, and under 20,000 movements a
second that is a 5 to 15 ms stall of the service's event loop several times a second. Here the
writer's connections turn automatic checkpoints off (``autocheckpoint=False``) and a
`Checkpointer` runs them on its own connection: a PASSIVE checkpoint copies pages while the
writer goes on committing (sqlite3 releases the GIL while it works).

A passive checkpoint cannot rewind the log while commits keep arriving, so the log could grow
without end under steady load; past `restart_frames` the checkpointer asks for a RESTART, which
holds new writers for the short tail the passive passes left, and the next commit starts the
log from the beginning. Durability is unchanged: a commit is in the log either way.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("interop_twin.wal")


@dataclass
class CheckpointStats:
    checkpoints: int = 0
    restarts: int = 0
    failures: int = 0
    log_frames: int = 0
    """Frames (pages) in the log at the last checkpoint."""
    longest_s: float = 0.0


class Checkpointer:
    """Checkpoints `path` every `interval_s` on a daemon thread; `run_once` is one round."""

    def __init__(self, path: str | Path, interval_s: float = 0.2,
                 restart_frames: int = 16_384, synchronous: str = "NORMAL") -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.path = Path(path)
        self.interval_s = interval_s
        self.restart_frames = restart_frames
        self.synchronous = synchronous
        self.stats = CheckpointStats()
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _checkpoint(self, mode: str) -> int:
        """Frames in the log. fetchall: a statement left unfinished would keep a read lock,
        and a reader on the log stops every later commit from rewinding it."""
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA synchronous={self.synchronous}")
        _busy, frames, _copied = self._conn.execute(
            f"PRAGMA wal_checkpoint({mode})").fetchall()[0]
        return int(frames)

    def run_once(self) -> None:
        """Passive checkpoints, then a restart if the log is still over `restart_frames`."""
        t0 = time.perf_counter()
        self._checkpoint("PASSIVE")
        # Again at once: this pass copies only what was committed during the first, quickly
        # enough that usually nothing commits meanwhile, and then the next commit can rewind
        # the log.
        frames = self._checkpoint("PASSIVE")
        if frames > self.restart_frames:
            frames = self._checkpoint("RESTART")
            self.stats.restarts += 1
        self.stats.checkpoints += 1
        self.stats.log_frames = frames
        self.stats.longest_s = max(self.stats.longest_s, time.perf_counter() - t0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except sqlite3.Error:  # counted and retried: the writer's commits are unaffected
                self.stats.failures += 1
                log.exception("WAL checkpoint of %s failed; retrying", self.path)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("checkpointer already started")
        self._thread = threading.Thread(target=self._run, name=f"wal-{self.path.name}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (after the round in progress) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
