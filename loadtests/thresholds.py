"""Pass/fail limits for a load test, checked after the run against locust's CSV files.

``loadtests/thresholds.toml`` holds the limits (validated by `Thresholds`); `evaluate_run`
reads ``<prefix>_stats.csv``, ``<prefix>_failures.csv`` and ``<prefix>_exceptions.csv`` (what
``locust --csv <prefix>`` writes; in distributed mode the master writes them for all workers)
and returns one `Check` per limit. Any failed check fails the run.

- **Latency** (p95, p99 in ms) in two views: from the actual send (the request's own row) and
  from the intended send time (its ``intended: <name>`` row, type ``INTENDED``). Locust's CSV
  has percentiles per request name only (its ``Aggregated`` row mixes both views), so the
  ``[overall]`` limits apply to *every* request name, which bounds the pooled percentile too:
  if each name's p95 is under the limit, so is the p95 of all requests together.
  ``[names."<name>"]`` replaces them for one name. A name with fewer than ``min_requests``
  requests is not checked (its p99 would be its slowest request or two).
- **Error rate**: failed / sent requests over all names (intended rows excluded), and per name.
- **5xx**: failures whose message starts ``HTTP 5xx:`` (the locustfile words every unexpected
  status that way), intended rows excluded. Requests that got no answer are ``HTTP 0``: they
  count as errors, not as 5xx.
- **Exceptions** raised in the load generator itself.

Never imports locust.
"""

from __future__ import annotations

import csv
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loadtests.plan import format_errors

DEFAULT_THRESHOLDS = Path(__file__).resolve().parent / "thresholds.toml"
INTENDED_TYPE = "INTENDED"
INTENDED_PREFIX = "intended: "
AGGREGATED = "Aggregated"
PERCENTILES = ("p95", "p99")
View = Literal["actual", "intended"]
_STATUS = re.compile(r"^(?:\w+\()?['\"]?HTTP (\d+)\b")
"""The status at the start of a failure message; in the CSV a CatchResponseError's message
may be wrapped as ``CatchResponseError('HTTP 503: ...')``."""


class ThresholdsError(ValueError):
    """A thresholds file that cannot be read or is invalid; the message names file and field."""


class Latency(BaseModel):
    """Percentile limits in milliseconds; a missing one is not checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    p95_ms: float | None = Field(None, gt=0, description="95th percentile limit, ms.")
    p99_ms: float | None = Field(None, gt=0, description="99th percentile limit, ms.")


class Limits(BaseModel):
    """Limits for one request name (its actual-send row and its `intended:` row)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_error_rate: float | None = Field(
        None, ge=0, le=1, description="Largest allowed failed / sent fraction.")
    actual: Latency = Field(default_factory=Latency, description="From the actual send.")
    intended: Latency = Field(default_factory=Latency, description="From the intended time.")


class Overall(Limits):
    """The run's limits; the latency ones apply to every request name."""

    max_5xx: int | None = Field(0, ge=0, description="Largest allowed number of 5xx answers.")
    max_exceptions: int | None = Field(
        0, ge=0, description="Largest allowed number of exceptions in the load generator.")
    min_requests: int = Field(
        100, ge=0, description="Request names with fewer requests skip the latency limits.")


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    overall: Overall = Field(default_factory=Overall)
    names: dict[str, Limits] = Field(
        default_factory=dict, description="Per request name (as locust reports it, e.g. "
                                          "`POST /v1/movements:batch`), replacing `overall`.")

    @field_validator("names")
    @classmethod
    def _not_intended(cls, names: dict[str, Limits]) -> dict[str, Limits]:
        for name in names:
            if name.startswith(INTENDED_PREFIX):
                raise ValueError(f"{name!r}: use the name without {INTENDED_PREFIX!r} and put "
                                 "its limits under .intended")
        return names


def load_thresholds(path: str | Path) -> Thresholds:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ThresholdsError(f"{path}: cannot read the thresholds: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ThresholdsError(f"{path}: not valid TOML: {e}") from e
    try:
        return Thresholds.model_validate(data)
    except ValidationError as e:
        raise ThresholdsError(format_errors(str(path), e)) from e


# -- locust's CSV files --------------------------------------------------------------------


@dataclass(frozen=True)
class StatsRow:
    """One row of ``*_stats.csv``."""

    type: str
    name: str
    requests: int
    failures: int
    percentiles: dict[str, float | None] = field(hash=False)
    """``p95`` / ``p99`` in ms (None when locust wrote N/A)."""

    @property
    def view(self) -> View:
        return "intended" if self.type == INTENDED_TYPE else "actual"

    @property
    def base_name(self) -> str:
        return self.name.removeprefix(INTENDED_PREFIX) if self.view == "intended" else self.name


@dataclass(frozen=True)
class FailureRow:
    """One row of ``*_failures.csv``."""

    method: str
    name: str
    error: str
    occurrences: int

    @property
    def status(self) -> int | None:
        return status_of(self.error)


def status_of(error: str) -> int | None:
    """The HTTP status a failure message starts with (``HTTP 503: ...``), if any."""
    m = _STATUS.match(error)
    return int(m.group(1)) if m else None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:  # "N/A"
        return None
    return value if math.isfinite(value) else None


def read_stats(path: Path) -> list[StatsRow]:
    with path.open(newline="") as f:
        return [StatsRow(type=r["Type"], name=r["Name"], requests=int(r["Request Count"]),
                         failures=int(r["Failure Count"]),
                         percentiles={"p95": _number(r["95%"]), "p99": _number(r["99%"])})
                for r in csv.DictReader(f)]


def read_failures(path: Path) -> list[FailureRow]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [FailureRow(method=r["Method"], name=r["Name"], error=r["Error"],
                           occurrences=int(r["Occurrences"])) for r in csv.DictReader(f)]


def read_exception_count(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(newline="") as f:
        return sum(int(r["Count"]) for r in csv.DictReader(f))


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One line of the verdict: what was checked, the limit, what was measured, pass/fail."""

    check: str
    limit: str
    measured: str
    ok: bool
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(v: float) -> str:
    return f"{v:g} ms"


def _latency_checks(th: Thresholds, rows: list[StatsRow]) -> list[Check]:
    checks: list[Check] = []
    minimum = th.overall.min_requests
    for view in ("actual", "intended"):
        label = "from the actual send" if view == "actual" else "from the intended send time"
        for pct in PERCENTILES:
            key = f"{pct}_ms"
            default: float | None = getattr(getattr(th.overall, view), key)
            pooled: list[tuple[float, str]] = []  # (value, name) of names held to `default`
            skipped = 0
            for row in (r for r in rows if r.view == view):
                own = th.names.get(row.base_name)
                limit: float | None = getattr(getattr(own, view), key) if own else None
                value = row.percentiles[pct]
                few = row.requests < minimum or value is None
                if limit is not None:  # the name's own limit: a line of its own
                    title = f"{pct} {label}: {row.base_name}"
                    if few or value is None:
                        checks.append(Check(title, _ms(limit), f"{row.requests} requests < "
                                            f"min_requests {minimum}", True, True))
                    else:
                        checks.append(Check(title, _ms(limit), _ms(value), value <= limit))
                elif default is not None:
                    if few or value is None:
                        skipped += 1
                    else:
                        pooled.append((value, row.base_name))
            if default is None:
                continue
            title = f"{pct} {label}, every name"
            note = f"; {skipped} name(s) under min_requests" if skipped else ""
            if not pooled:
                checks.append(Check(title, _ms(default), f"no name checked{note}", True, True))
                continue
            over = sorted(((v, n) for v, n in pooled if v > default), reverse=True)
            worst = max(pooled)
            listed = ", ".join(f"{n}: {_ms(v)}" for v, n in over[:3])
            more = f" and {len(over) - 3} more" if len(over) > 3 else ""
            measured = (listed + more if over else f"worst {_ms(worst[0])} ({worst[1]})") + note
            checks.append(Check(title, _ms(default), measured, not over))
    return checks


def evaluate(th: Thresholds, stats: list[StatsRow], failures: list[FailureRow],
             exceptions: int = 0) -> list[Check]:
    """Every check of `th` against a run's parsed CSV rows."""
    rows = [r for r in stats if r.name != AGGREGATED or r.type]  # the Aggregated row has no type
    actual = [r for r in rows if r.view == "actual"]
    sent = sum(r.requests for r in actual)
    failed = sum(r.failures for r in actual)
    checks = [Check("requests sent", "> 0", f"{sent}", sent > 0)]
    o = th.overall
    if o.max_error_rate is not None:
        rate = failed / sent if sent else 0.0
        checks.append(Check("error rate, all names", f"{o.max_error_rate:.4%}",
                            f"{rate:.4%} ({failed} of {sent})", sent > 0
                            and rate <= o.max_error_rate))
    if o.max_5xx is not None:
        server = [f for f in failures
                  if f.method != INTENDED_TYPE and (f.status or 0) >= 500]
        n = sum(f.occurrences for f in server)
        codes = sorted({f.status for f in server if f.status is not None})
        checks.append(Check("5xx responses", f"<= {o.max_5xx}",
                            f"{n}" + (f" (HTTP {', '.join(map(str, codes))})" if codes else ""),
                            n <= o.max_5xx))
    if o.max_exceptions is not None:
        checks.append(Check("load generator exceptions", f"<= {o.max_exceptions}",
                            f"{exceptions}", exceptions <= o.max_exceptions))
    by_name = {r.name: r for r in actual}
    for name, limits in th.names.items():
        row = by_name.get(name)
        if row is None:
            checks.append(Check(f"requests named {name!r}", "present", "none", False))
            continue
        if limits.max_error_rate is not None:
            rate = row.failures / row.requests if row.requests else 0.0
            checks.append(Check(f"error rate: {name}", f"{limits.max_error_rate:.4%}",
                                f"{rate:.4%} ({row.failures} of {row.requests})",
                                rate <= limits.max_error_rate))
    return checks + _latency_checks(th, rows)


def evaluate_run(th: Thresholds, csv_prefix: Path) -> list[Check]:
    """Check a run from the files ``locust --csv <csv_prefix>`` wrote."""
    stats_csv = Path(f"{csv_prefix}_stats.csv")
    if not stats_csv.exists():
        return [Check("locust statistics", "written", f"{stats_csv} missing", False)]
    return evaluate(th, read_stats(stats_csv), read_failures(Path(f"{csv_prefix}_failures.csv")),
                    read_exception_count(Path(f"{csv_prefix}_exceptions.csv")))


def format_table(checks: list[Check]) -> str:
    """The verdict as a plain-text table, one check a line."""
    head = ("check", "limit", "measured", "result")
    body = [(c.check, c.limit, c.measured, "skip" if c.skipped else "pass" if c.ok else "FAIL")
            for c in checks]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(3)]
    lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(r[:3], widths, strict=True)) + "  " + r[3]
             for r in [head, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m loadtests.thresholds PREFIX [--thresholds FILE]``: the verdict on the CSV
    files of a locust run made by hand (``locust --csv PREFIX ...``); exit 1 on any breach."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("prefix", type=Path, help="the --csv prefix of the run")
    ap.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS)
    args = ap.parse_args(argv)
    try:
        th = load_thresholds(args.thresholds)
    except ThresholdsError as e:
        print(e)
        return 2
    checks = evaluate_run(th, args.prefix)
    ok = all(c.ok for c in checks)
    print(f"{format_table(checks)}\n\n{'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
