from __future__ import annotations

from integration_core.feed import CsvLimits, digest, read_movements
from loadtests.bench.feed import catalog, csv_file, run


def test_the_generated_file_is_clean_and_deterministic() -> None:
    data = csv_file(200, seed=3)
    assert data == csv_file(200, seed=3) and data != csv_file(200, seed=4)
    parsed = read_movements(data, catalog(), digest(data), CsvLimits())
    assert parsed.refused is None and parsed.rejected == [] and len(parsed.movements) == 200


def test_run_reports_both_sides_of_the_comparison() -> None:
    out = run(300, repeat=1, seed=1)
    assert out["rows"] == 300 and out["file_rows_per_s"] > 0
    assert out["read_time_over_bare_csv"] > 1
