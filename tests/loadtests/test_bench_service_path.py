"""The service path that `loadtests.bench.instructions --path service` counts (run natively
here: callgrind takes a minute)."""

from __future__ import annotations

from pathlib import Path

from loadtests.bench.instructions import SERVICE_PATH, command
from loadtests.bench.service_path import BATCH, run


def test_every_movement_is_stored_answered_posted_and_settled(tmp_path: Path) -> None:
    out = run(3, tmp_path / "a.db")
    assert out["movements"] == out["posted"] == 3 * BATCH
    assert out["drained"] == 1  # nothing left for the WMS view or the ERP
    assert out == run(3, tmp_path / "b.db")  # the same work every time


def test_the_service_path_runs_by_its_file_with_a_number_of_batches() -> None:
    assert command("service", 10.0) == [str(SERVICE_PATH), "10"]
    assert SERVICE_PATH.is_file()
    assert command("twin", 0.25)[0] == "-c"
