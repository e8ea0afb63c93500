"""Thresholds (loadtests/thresholds.py) against handwritten files in the exact format locust
2.47 writes with ``--csv`` (the columns are checked against the installed locust, in a
subprocess: locust never runs in the test process)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.thresholds import (
    DEFAULT_THRESHOLDS,
    Check,
    Thresholds,
    ThresholdsError,
    evaluate,
    evaluate_run,
    format_table,
    load_thresholds,
    main,
    read_exception_count,
    read_failures,
    read_stats,
    status_of,
)

STATS_HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,"
                "Average Response Time,Min Response Time,Max Response Time,Average Content Size,"
                "Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%")
FAILURES_HEADER = "Method,Name,Error,Occurrences,First Seen,Last Seen"
EXCEPTIONS_HEADER = "Count,Message,Traceback,Nodes"


def stats_line(type_: str, name: str, n: int, fails: int, p95: int | str, p99: int | str) -> str:
    """A row as locust writes it: floats unrounded, percentiles as ints (N/A when empty)."""
    return (f"{type_},{name},{n},{fails},12,15.372810919117647,0.8712079999964824,"
            f"412.66512300001446,107.48,99.72093023255815,{fails / 60:.1f},12,14,16,18,25,"
            f"{p95},{p95},{p99},{p99},{p99},{p99}")


# A healthy run: every latency well under the shipped limits, no failure.
STATS = "\n".join([
    STATS_HEADER,
    stats_line("POST", "POST /v1/movements", 6000, 0, 40, 90),
    stats_line("POST", "POST /v1/movements:batch", 600, 0, 120, 300),
    stats_line("POST", "POST /v1/orders", 300, 0, 30, 80),
    stats_line("POST", "POST /v1/shipments/confirmations", 40, 0, 900, 5000),  # < min_requests
    stats_line("INTENDED", "intended: POST /v1/movements", 6000, 0, 60, 300),
    stats_line("INTENDED", "intended: POST /v1/movements:batch", 600, 0, 150, 500),
    stats_line("INTENDED", "intended: POST /v1/orders", 300, 0, 50, 250),
    stats_line("INTENDED", "intended: POST /v1/shipments/confirmations", 40, 0, 900, 5000),
    stats_line("", "Aggregated", 13880, 0, 80, 9000),  # mixes both views: never checked
]) + "\n"

FAILURES = FAILURES_HEADER + "\n"
EXCEPTIONS = EXCEPTIONS_HEADER + "\n"

# Three 503s and one refused connection on movements; each also has its intended row.
FAILURES_5XX = FAILURES_HEADER + "\n" + "\n".join([
    'POST,POST /v1/movements,"CatchResponseError(\'HTTP 503: expected (202, 200), got '
    '{""type"":""about:blank"",""status"":503}\')",3,2026-11-26T16:49:38Z,2026-11-26T16:49:41Z',
    'INTENDED,intended: POST /v1/movements,"RuntimeError(\'HTTP 503: expected (202, 200), got '
    '{""type"":""about:blank"",""status"":503}\')",3,2026-11-26T16:49:38Z,2026-11-26T16:49:41Z',
    "POST,POST /v1/movements,\"CatchResponseError('HTTP 0: expected (202, 200), got no "
    "response: ConnectionRefusedError(111, \"Connection refused\")')\",1,"
    "2026-11-26T16:49:40Z,2026-11-26T16:49:40Z",
]) + "\n"


def with_failures(stats: str, name: str, fails: int) -> str:
    """The stats with `fails` failures on one name's actual row."""
    out = []
    for line in stats.splitlines():
        row = next(csv.reader([line]))
        if row[0] != "INTENDED" and row[1] == name:
            row[3] = str(fails)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        out.append(buf.getvalue())
    return "\n".join(out) + "\n"


def run_dir(tmp_path: Path, stats: str = STATS, failures: str | None = FAILURES,
            exceptions: str | None = EXCEPTIONS) -> Path:
    (tmp_path / "locust_stats.csv").write_text(stats)
    if failures is not None:
        (tmp_path / "locust_failures.csv").write_text(failures)
    if exceptions is not None:
        (tmp_path / "locust_exceptions.csv").write_text(exceptions)
    return tmp_path / "locust"


def thresholds(**data: object) -> Thresholds:
    return Thresholds.model_validate(data)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


SHIPPED = load_thresholds(DEFAULT_THRESHOLDS)


# -- the fixtures are locust's format ------------------------------------------------------


def test_fixture_headers_are_the_installed_locusts() -> None:
    code = ("import json\nfrom locust.env import Environment\n"
            "from locust.stats import PERCENTILES_TO_REPORT, StatsCSV\n"
            "s = StatsCSV(Environment(), PERCENTILES_TO_REPORT)\n"
            "print(json.dumps([s.requests_csv_columns, s.failures_columns, "
            "s.exceptions_columns]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    columns = json.loads(done.stdout.splitlines()[-1])
    assert [",".join(c) for c in columns] == [STATS_HEADER, FAILURES_HEADER, EXCEPTIONS_HEADER]


def test_reading_the_files(tmp_path: Path) -> None:
    prefix = run_dir(tmp_path, failures=FAILURES_5XX,
                     exceptions=EXCEPTIONS + '2,ZeroDivisionError(),"Traceback...",w1\n')
    rows = read_stats(Path(f"{prefix}_stats.csv"))
    assert (rows[0].name, rows[0].requests, rows[0].percentiles) == (
        "POST /v1/movements", 6000, {"p95": 40.0, "p99": 90.0})
    assert (rows[4].view, rows[4].base_name) == ("intended", "POST /v1/movements")
    fails = read_failures(Path(f"{prefix}_failures.csv"))
    assert [(f.method, f.status, f.occurrences) for f in fails] == [
        ("POST", 503, 3), ("INTENDED", 503, 3), ("POST", 0, 1)]
    assert read_exception_count(Path(f"{prefix}_exceptions.csv")) == 2
    none = tmp_path / "none.csv"  # a run without failures may write no file
    assert read_failures(none) == [] and read_exception_count(none) == 0


@pytest.mark.parametrize(("error", "status"), [
    ("CatchResponseError('HTTP 503: expected (202,), got oops')", 503),
    ('CatchResponseError("HTTP 500: expected (202,), got it\'s down")', 500),
    ("HTTP 502: expected (202,), got bad gateway", 502),  # a plain string
    ("RuntimeError('HTTP 504: expected (200,), got ')", 504),
    ("CatchResponseError('HTTP 422: expected (202,), got HTTP 500: in the body')", 422),
    ("CatchResponseError('HTTP 0: expected (202,), got no response: timeout')", 0),
    ("ConnectionResetError(104, 'Connection reset by peer')", None),
    ("RuntimeError('status 500')", None),
    ("CatchResponseError('got HTTP 500: somewhere later')", None),
])
def test_the_status_is_read_from_the_start_of_the_message(error: str, status: int | None) -> None:
    assert status_of(error) == status


# -- the verdict ---------------------------------------------------------------------------


def test_a_healthy_run_passes_the_shipped_thresholds(tmp_path: Path) -> None:
    checks = evaluate_run(SHIPPED, run_dir(tmp_path))
    assert all(c.ok for c in checks), format_table(checks)
    got = by_name(checks)
    assert got["requests sent"].measured == "6940"
    assert got["5xx responses"].measured == "0"
    assert got["p95 from the actual send, every name"].measured == (
        "worst 40 ms (POST /v1/movements); 1 name(s) under min_requests")
    assert got["p99 from the actual send: POST /v1/movements:batch"].measured == "300 ms"


def test_any_5xx_fails_the_run_and_intended_rows_are_not_counted_twice(tmp_path: Path) -> None:
    stats = with_failures(STATS, "POST /v1/movements", 4)
    checks = by_name(evaluate_run(SHIPPED, run_dir(tmp_path, stats, FAILURES_5XX)))
    five = checks["5xx responses"]
    assert not five.ok and five.measured == "3 (HTTP 503)"  # 3, not 6; the HTTP 0 is no 5xx
    assert checks["error rate, all names"].ok  # 4 of 6940 = 0.058% < 0.1%
    assert checks["error rate, all names"].measured == "0.0576% (4 of 6940)"


def test_the_error_rate_fails_above_its_limit(tmp_path: Path) -> None:
    stats = with_failures(STATS, "POST /v1/orders", 14)  # 14 of 6940 = 0.2%
    checks = by_name(evaluate_run(SHIPPED, run_dir(tmp_path, stats)))
    assert not checks["error rate, all names"].ok
    limits = thresholds(overall={"max_error_rate": 0.01},
                        names={"POST /v1/orders": {"max_error_rate": 0.02}})
    own = by_name(evaluate_run(limits, run_dir(tmp_path, stats)))
    assert own["error rate, all names"].ok
    assert not own["error rate: POST /v1/orders"].ok  # 14 of 300 = 4.7%
    assert own["error rate: POST /v1/orders"].measured == "4.6667% (14 of 300)"


def test_exceptions_in_the_load_generator_fail_the_run(tmp_path: Path) -> None:
    exceptions = EXCEPTIONS + '1,KeyError(\'items\'),"Traceback (most recent...",local\n'
    checks = by_name(evaluate_run(SHIPPED, run_dir(tmp_path, exceptions=exceptions)))
    assert not checks["load generator exceptions"].ok


def test_no_request_at_all_fails(tmp_path: Path) -> None:
    stats = STATS_HEADER + "\n" + stats_line("", "Aggregated", 0, 0, "N/A", "N/A") + "\n"
    checks = evaluate_run(SHIPPED, run_dir(tmp_path, stats))
    assert not by_name(checks)["requests sent"].ok
    assert not all(c.ok for c in checks)


def test_missing_statistics_fail(tmp_path: Path) -> None:
    [c] = evaluate_run(SHIPPED, tmp_path / "locust")
    assert not c.ok and "missing" in c.measured


def test_the_overall_latency_limit_holds_for_every_name(tmp_path: Path) -> None:
    limits = thresholds(overall={"actual": {"p95_ms": 100, "p99_ms": 250}})
    checks = by_name(evaluate_run(limits, run_dir(tmp_path)))
    p95 = checks["p95 from the actual send, every name"]
    assert not p95.ok and p95.measured.startswith("POST /v1/movements:batch: 120 ms")
    p99 = checks["p99 from the actual send, every name"]
    assert not p99.ok and p99.measured.startswith("POST /v1/movements:batch: 300 ms")
    assert "intended" not in " ".join(checks)  # no intended limits: none checked


def test_a_names_own_limit_replaces_the_overall_one(tmp_path: Path) -> None:
    limits = thresholds(overall={"actual": {"p95_ms": 100}},
                        names={"POST /v1/movements:batch": {"actual": {"p95_ms": 110}}})
    checks = by_name(evaluate_run(limits, run_dir(tmp_path)))
    assert checks["p95 from the actual send, every name"].ok  # the batch is not held to 100
    own = checks["p95 from the actual send: POST /v1/movements:batch"]
    assert not own.ok and (own.limit, own.measured) == ("110 ms", "120 ms")


def test_intended_rows_have_limits_of_their_own(tmp_path: Path) -> None:
    limits = thresholds(overall={"actual": {"p99_ms": 400}, "intended": {"p99_ms": 400}})
    checks = by_name(evaluate_run(limits, run_dir(tmp_path)))
    assert checks["p99 from the actual send, every name"].ok
    intended = checks["p99 from the intended send time, every name"]
    assert not intended.ok and intended.measured == (
        "POST /v1/movements:batch: 500 ms; 1 name(s) under min_requests")


def test_a_names_own_intended_limit_applies_to_its_intended_row(tmp_path: Path) -> None:
    limits = thresholds(overall={"intended": {"p95_ms": 100}},
                        names={"POST /v1/movements:batch": {"intended": {"p95_ms": 200}}})
    checks = by_name(evaluate_run(limits, run_dir(tmp_path)))
    assert checks["p95 from the intended send time, every name"].ok  # batch's 150 not pooled
    own = checks["p95 from the intended send time: POST /v1/movements:batch"]
    assert own.ok and (own.limit, own.measured) == ("200 ms", "150 ms")
    assert "p95 from the actual send: POST /v1/movements:batch" not in checks


def test_names_with_few_requests_skip_the_latency_limits(tmp_path: Path) -> None:
    strict = {"actual": {"p99_ms": 1000}}  # shipments: p99 5000 ms over 40 requests
    assert all(c.ok for c in evaluate_run(
        thresholds(overall={**strict, "min_requests": 41}), run_dir(tmp_path)))
    checks = by_name(evaluate_run(thresholds(overall={**strict, "min_requests": 40}),
                                  run_dir(tmp_path)))
    assert checks["p99 from the actual send, every name"].measured == (
        "POST /v1/shipments/confirmations: 5000 ms")
    skipped = by_name(evaluate_run(thresholds(
        overall={"min_requests": 41},
        names={"POST /v1/shipments/confirmations": {"actual": {"p99_ms": 1000}}}),
        run_dir(tmp_path)))["p99 from the actual send: POST /v1/shipments/confirmations"]
    assert skipped.ok and skipped.skipped and "40 requests" in skipped.measured


def test_a_limit_for_a_name_that_never_ran_fails(tmp_path: Path) -> None:
    limits = thresholds(names={"POST /v1/movments": {"actual": {"p95_ms": 100}}})
    check = by_name(evaluate_run(limits, run_dir(tmp_path)))["requests named 'POST /v1/movments'"]
    assert not check.ok


def test_the_table_shows_every_check_and_its_result() -> None:
    table = format_table([Check("a", "1", "2", False), Check("bb", "3", "3", True),
                          Check("c", "4", "few", True, True)])
    lines = table.splitlines()
    assert lines[0].split() == ["check", "limit", "measured", "result"]
    assert [line.split()[-1] for line in lines[2:]] == ["FAIL", "pass", "skip"]


# -- the file ------------------------------------------------------------------------------


def test_the_shipped_file_has_every_kind_of_limit() -> None:
    o = SHIPPED.overall
    assert o.max_5xx == 0 and o.max_exceptions == 0 and o.max_error_rate is not None
    assert None not in (o.actual.p95_ms, o.actual.p99_ms, o.intended.p95_ms, o.intended.p99_ms)


@pytest.mark.parametrize(("text", "expected"), [
    ("[overall.actual]\np95_ms = 0\n", "overall.actual.p95_ms: must be > 0, got 0"),
    ("[overall]\nmax_error_rate = 2\n", "overall.max_error_rate: must be <= 1, got 2"),
    ("[overall]\nmax_5xx = -1\n", "overall.max_5xx: must be >= 0, got -1"),
    ("[overall]\np95 = 3\n", "overall.p95: unknown field"),
    ('[names."POST /v1/orders".intended]\np99_ms = -4\n',
     'names."POST /v1/orders".intended.p99_ms: must be > 0, got -4'),
    ('[names."intended: POST /v1/orders".actual]\np99_ms = 4\n', "put its limits under"),
    ("[overall\n", "not valid TOML"),
])
def test_errors_name_the_file_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    with pytest.raises(ThresholdsError) as e:
        load_thresholds(path)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value)


def test_evaluate_takes_parsed_rows_too(tmp_path: Path) -> None:
    prefix = run_dir(tmp_path)
    rows = read_stats(Path(f"{prefix}_stats.csv"))
    assert evaluate(SHIPPED, rows, []) == evaluate_run(SHIPPED, prefix)


def test_the_command_line_gives_the_verdict_as_exit_code(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    good = run_dir(tmp_path / "good")
    assert main([str(good)]) == 0 and capsys.readouterr().out.rstrip().endswith("PASSED")
    bad = run_dir(tmp_path / "bad", with_failures(STATS, "POST /v1/movements", 3), FAILURES_5XX)
    assert main([str(bad)]) == 1
    assert "5xx responses" in capsys.readouterr().out


def test_the_documented_thresholds_are_the_shipped_ones() -> None:
    import re
    import tomllib

    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "loadtests.md").read_text()
    (block,) = re.findall(r"## Thresholds \(`loadtests/thresholds.toml`\)\n\n```toml\n(.*?)```",
                          doc, re.S)
    shipped = tomllib.loads((root / "loadtests" / "thresholds.toml").read_text())
    assert tomllib.loads(block) == shipped
