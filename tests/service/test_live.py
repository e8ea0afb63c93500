"""The engine as the service runs it: on SQLite, with background WAL checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

from integration_core.models import Movement
from integration_core.service import LiveEngine
from tests.service.helpers import make_settings, movement


def test_wal_checkpoints_run_on_their_own_thread_unless_turned_off(tmp_path: Path) -> None:
    engine = LiveEngine(make_settings(tmp_path / "t.db", checkpoint_interval_s=0.01))
    try:
        # The engine's own connections never checkpoint: a commit on the loop never copies
        # the log into the database file.
        pragma = "PRAGMA wal_autocheckpoint"
        assert engine.store._conn.execute(pragma).fetchall() == [(0,)]
        assert engine.idempotency._conn.execute(pragma).fetchall() == [(0,)]
        batch = [engine.catalog.parse(Movement, movement(f"m{i}")) for i in range(200)]
        engine.accept_movements(batch, "wms")
        assert engine.checkpointer is not None
        deadline = time.monotonic() + 5.0
        while engine.checkpointer.stats.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = engine.status()["wal_checkpoints"]
        assert status["checkpoints"] >= 1 and status["failures"] == 0
    finally:
        engine.close()
    assert not (tmp_path / "t.db-wal").exists()  # the last connection folded the log in

    engine = LiveEngine(make_settings(tmp_path / "u.db", checkpoint_interval_s=0))
    try:
        assert engine.checkpointer is None and engine.status()["wal_checkpoints"] is None
        assert engine.store._conn.execute("PRAGMA wal_autocheckpoint").fetchall() == [(1000,)]
    finally:
        engine.close()
