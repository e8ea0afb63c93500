"""Calibration: fit the twin's inputs from measurements, and write them as a scenario.

From samples of a partner operation's service time, each family of `sim.distributions` that
has parameters is fitted (constant: the mean; exponential and uniform: maximum likelihood;
lognormal: maximum likelihood on the logs, written by its mean), and the one with the smallest
Kolmogorov-Smirnov statistic D (the largest gap between the samples' empirical CDF and the
fitted CDF) is chosen; every family's D is reported beside the 1% critical value
1.628 / sqrt(n). Bulk calls: the time each item adds is the least-squares slope of the duration
on the batch size, and the families are fitted to what is left (the fixed part), as the twin
serves them (`ApiConfig.bulk_per_item_s`).

Arrival rates per stage come from timestamps: counts per interval, cut into stages of constant
rate where the Poisson likelihood gains more than a BIC-like penalty by a cut (binary
segmentation), or, for a live load test, the plan's own stages with the measured rate.

Inputs: a live load test's run directory (`loadtests/run.py`: ``plan.json``, locust's
``locust_stats_history.csv``, and ``partner_calls.csv`` when the twins recorded their calls,
`sim.live.call_log`), or a team's own CSV logs in the layouts of docs/calibration.md:
``timestamp,kind,...`` movements and ``timestamp,partner,operation,duration_s,batch_size``
partner calls. Bad input raises `CalibrationError` naming the file, line and column.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from integration_core.models import MovementKind
from sim.distributions import Constant, Distribution, Exponential, Lognormal, Uniform
from sim.scenario import Scenario, ScenarioError, load

Floats = npt.NDArray[np.float64]
FAMILIES = ("constant", "exponential", "lognormal", "uniform")
MIN_SINGLE_CALLS = 30
"""Calls of one item enough to fit the fixed part of bulk calls from them alone."""
KS_CRITICAL_1PCT = 1.628
"""D above this / sqrt(n) rejects the family at the 1% level (Kolmogorov's limit; with
parameters estimated from the same samples the test is conservative)."""
MOVEMENT_COLUMNS = ("timestamp", "kind")
CALL_COLUMNS = ("timestamp", "partner", "operation", "duration_s", "batch_size")
PARTNERS = ("erp", "wms", "carrier")
# The locustfile's mix per arrival (loadtests/locustfile.py's docstring, checked by a test):
# 70% one new movement, 10% a batch of 50, 4% an order; the rest are duplicates, malformed
# movements, lookups and shipment confirmations, which offer the ERP nothing new.
LOCUST_SINGLE, LOCUST_BATCH_SHARE, LOCUST_BATCH, LOCUST_ORDER = 0.70, 0.10, 50, 0.04


class CalibrationError(ValueError):
    """Input calibration cannot use; the message names the file, line and column."""


# -- fitting one operation's service times ---------------------------------------------------


def _norm_cdf(z: Floats) -> Floats:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(z / math.sqrt(2.0)))  # type: ignore[no-any-return]


def cdf(dist: Distribution, x: Floats) -> tuple[Floats, Floats]:
    """The CDF of `dist` at `x`, and its left limit (they differ where it jumps)."""
    if isinstance(dist, Constant):
        return (x >= dist.value).astype(np.float64), (x > dist.value).astype(np.float64)
    if isinstance(dist, Exponential):
        f = 1.0 - np.exp(-np.maximum(x, 0.0) / dist.mean)
    elif isinstance(dist, Uniform):
        width = dist.high - dist.low
        if width == 0:
            return cdf(Constant(value=dist.low), x)
        f = np.clip((x - dist.low) / width, 0.0, 1.0)
    elif isinstance(dist, Lognormal):
        if dist.sigma == 0:
            return cdf(Constant(value=dist.mean), x)
        with np.errstate(divide="ignore"):
            z = (np.log(np.maximum(x, 0.0)) - dist.mu) / dist.sigma
        f = _norm_cdf(z)
    else:
        raise TypeError(f"no CDF for {dist.kind}")
    return f, f


def ks_statistic(samples: Floats, dist: Distribution) -> float:
    """Kolmogorov-Smirnov D: sup |F_n(x) - F(x)| over x, exact at the samples (ties and a
    distribution's jumps included: F_n is compared with F at each sample and with F's left
    limit just below it)."""
    x = np.sort(samples)
    n = len(x)
    f, f_left = cdf(dist, x)
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(max(np.max(i / n - f), np.max(f_left - (i - 1) / n), 0.0))


@dataclass(frozen=True)
class Fit:
    """One family fitted to the samples: the distribution and its KS statistic, or why the
    family could not be fitted (`dist` None)."""

    family: str
    dist: Distribution | None
    ks: float = math.nan
    note: str = ""


def fit_family(family: str, x: Floats) -> Fit:
    """`family` fitted to `x` (non-negative, at least one value)."""
    mean = float(np.mean(x))
    same = bool(x.min() == x.max())
    if same:  # the mean of equal values need not be that value, in floating point
        mean = float(x[0])
    dist: Distribution
    if family == "constant":
        dist = Constant(value=mean)
    elif family == "exponential":
        if mean <= 0:
            return Fit(family, None, note="mean 0")
        dist = Exponential(mean=mean)  # MLE: the sample mean
    elif family == "uniform":
        dist = Uniform(low=float(x.min()), high=float(x.max()))  # MLE: the sample range
    elif family == "lognormal":
        if np.any(x <= 0):
            return Fit(family, None, note=f"{int(np.sum(x <= 0))} sample(s) <= 0")
        logs = np.log(x)
        mu, sigma = float(np.mean(logs)), float(np.std(logs))  # MLE on the logs
        dist = (Lognormal(mean=mean, sigma=0.0) if same
                else Lognormal(mean=math.exp(mu + sigma**2 / 2), sigma=sigma))
    else:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    return Fit(family, dist, ks_statistic(x, dist))


@dataclass(frozen=True)
class ServiceFit:
    """Service times of one operation (or partner), fitted: every family, the best, and the
    time each item of a bulk call adds."""

    n: int
    mean_s: float
    fits: list[Fit]
    per_item_s: float = 0.0
    mean_batch: float = 1.0
    max_batch: int = 1
    fixed_from: str = "every call"
    """Which samples the families were fitted to: every call, the calls of one item, or the
    residuals once the per-item time is taken out."""

    @property
    def best(self) -> Fit:
        fitted = [f for f in self.fits if f.dist is not None]
        return min(fitted, key=lambda f: f.ks)

    @property
    def critical_ks(self) -> float:
        return KS_CRITICAL_1PCT / math.sqrt(self.n)

    @property
    def accepted(self) -> bool:
        """The best family passes the KS test at 1%."""
        return self.best.ks <= self.critical_ks


def fit_service_times(samples: Sequence[float] | Floats,
                      batch_sizes: Sequence[int] | npt.NDArray[Any] | None = None) -> ServiceFit:
    """Fit every family to the service times `samples` (seconds); with `batch_sizes` (items
    per call) that vary, first the per-item time (least squares, at least 0) is taken out."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise CalibrationError("no service-time samples to fit")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise CalibrationError("service times must be finite and >= 0")
    per_item, mean_batch, max_batch, fixed = 0.0, 1.0, 1, "every call"
    if batch_sizes is not None:
        b = np.asarray(batch_sizes, dtype=np.float64)
        if b.shape != x.shape:
            raise CalibrationError(f"{b.size} batch sizes for {x.size} service times")
        mean_batch, max_batch = float(b.mean()), int(b.max())
        extra = b - 1.0  # the twin: fixed part + per_item * (items - 1)
        if np.var(extra) > 0:
            slope = float(np.cov(extra, x, bias=True)[0, 1] / np.var(extra))
            per_item = max(slope, 0.0)
            single = x[b == 1]
            if single.size >= MIN_SINGLE_CALLS:  # the fixed part, measured as such
                x, fixed = single, f"the {single.size} calls of one item"
            else:  # what the items do not explain, kept above the shortest call measured
                floor = float(x[x > 0].min()) if np.any(x > 0) else 0.0
                x, fixed = np.maximum(x - per_item * extra, floor), "residuals"
    return ServiceFit(len(x), float(np.mean(x)), [fit_family(f, x) for f in FAMILIES],
                      per_item, mean_batch, max_batch, fixed)


# -- arrival rates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RateStage:
    """A stretch at one arrival rate (per second), `ramp`: linear from the previous one's."""

    duration_s: float
    rate_per_s: float
    ramp: bool = False
    count: int = 0
    """Arrivals measured in it (0: taken from a plan, not measured)."""


def counts_per_interval(times_s: Floats, interval_s: float, duration_s: float
                        ) -> npt.NDArray[np.int64]:
    """Arrivals in each [k * interval, (k + 1) * interval) from 0 to `duration_s`."""
    bins = max(1, math.ceil(duration_s / interval_s - 1e-9))
    idx = np.clip((times_s // interval_s).astype(np.int64), 0, bins - 1)
    return np.bincount(idx, minlength=bins)


def _poisson_ll(total: float, bins: int) -> float:
    """Log-likelihood of `total` arrivals in `bins` intervals at the best constant rate (the
    terms that do not depend on where the cuts are dropped)."""
    return total * math.log(total / bins) - total if total > 0 else 0.0


def changepoints(counts: npt.NDArray[np.int64], min_bins: int = 2,
                 penalty: float | None = None) -> list[int]:
    """Where the rate changes: bin indices that start a new stage (binary segmentation of
    Poisson counts; a cut is kept when it raises the log-likelihood by more than `penalty`,
    default 3 ln(bins), a BIC-like price for the cut's position and its extra rate)."""
    k = len(counts)
    pen = 3.0 * math.log(max(k, 2)) if penalty is None else penalty
    csum = np.concatenate([[0], np.cumsum(counts)]).astype(np.float64)
    cuts: list[int] = []

    def split(lo: int, hi: int) -> None:
        if hi - lo < 2 * min_bins:
            return
        whole = _poisson_ll(csum[hi] - csum[lo], hi - lo)
        best, at = -math.inf, -1
        for c in range(lo + min_bins, hi - min_bins + 1):
            gain = (_poisson_ll(csum[c] - csum[lo], c - lo)
                    + _poisson_ll(csum[hi] - csum[c], hi - c) - whole)
            if gain > best:
                best, at = gain, c
        if best > pen:
            cuts.append(at)
            split(lo, at)
            split(at, hi)

    split(0, k)
    return sorted(cuts)


def fit_stages(times_s: Floats, duration_s: float | None = None, interval_s: float | None = None
               ) -> list[RateStage]:
    """Stages of constant arrival rate from arrival times (seconds from the start)."""
    t = np.sort(np.asarray(times_s, dtype=np.float64))
    if t.size == 0:
        raise CalibrationError("no arrivals to fit a rate from")
    end = float(duration_s if duration_s is not None else t[-1])
    if end <= 0:
        end = 1.0
    # about 10 arrivals an interval on average, and no more than 1,000 intervals
    step = interval_s or max(end / 1000, 10 * end / t.size)
    counts = counts_per_interval(t, step, end)
    edges = [0, *changepoints(counts), len(counts)]
    stages = []
    for lo, hi in itertools.pairwise(edges):
        length = min(hi * step, end) - lo * step
        n = int(counts[lo:hi].sum())
        stages.append(RateStage(length, n / length, count=n))
    return stages


# -- reading CSV logs --------------------------------------------------------------------------


def _timestamp(text: str) -> float:
    """Seconds: a number (Unix time or seconds from any origin) or ISO 8601 (a date-time
    without a zone is taken as UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        from datetime import UTC
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _rows(path: Path, columns: tuple[str, ...], optional: int = 0
          ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line number, fields) of a CSV log whose header starts with
    `columns` (the last `optional` of them may be missing); blank lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rows = [(n, r) for n, r in enumerate(csv.reader(text.splitlines()), 1) if r]
    if not rows:
        raise CalibrationError(f"{path}: empty; expected a header {','.join(columns)}")
    line, header = rows[0]
    header = [h.strip() for h in header]
    need = columns[: len(columns) - optional]
    for i, name in enumerate(need):
        if i >= len(header) or header[i] != name:
            got = header[i] if i < len(header) else "nothing"
            raise CalibrationError(f"{path}:{line}: column {i + 1}: header must start with "
                                   f"{','.join(need)}; got {got!r} for {name!r}")
    if len(rows) == 1:
        raise CalibrationError(f"{path}: a header and no rows")
    return header, rows[1:]


def _field(path: Path, line: int, col: int, name: str, fields: list[str]) -> str:
    if col >= len(fields) or not fields[col].strip():
        raise CalibrationError(f"{path}:{line}: column {col + 1} ({name}): missing")
    return fields[col].strip()


def _bad(path: Path, line: int, col: int, name: str, why: str, got: str) -> CalibrationError:
    return CalibrationError(f"{path}:{line}: column {col + 1} ({name}): {why}, got {got!r}")


@dataclass
class Movements:
    """A movement log: times (seconds from its first movement) and the kinds' counts."""

    times_s: Floats
    kinds: Counter[str]
    start: float
    """The first timestamp, as read (Unix seconds for ISO dates)."""


def read_movements(path: str | Path) -> Movements:
    """``timestamp,kind[,...]``: one movement a row (further columns are ignored)."""
    path = Path(path)
    _, rows = _rows(path, MOVEMENT_COLUMNS)
    kinds = {k.value for k in MovementKind}
    times, seen = [], Counter[str]()
    for line, f in rows:
        raw = _field(path, line, 0, "timestamp", f)
        try:
            times.append(_timestamp(raw))
        except ValueError:
            raise _bad(path, line, 0, "timestamp", "expected seconds or an ISO 8601 date-time",
                       raw) from None
        kind = _field(path, line, 1, "kind", f)
        if kind not in kinds:
            raise _bad(path, line, 1, "kind", "expected one of " + ", ".join(sorted(kinds)),
                       kind)
        seen[kind] += 1
    t = np.asarray(times, dtype=np.float64)
    start = float(t.min())
    return Movements(t - start, seen, start)


@dataclass
class Calls:
    """Partner calls: per (partner, operation), durations and batch sizes."""

    durations: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    batches: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    source: str = ""

    def of(self, partner: str) -> tuple[Floats, npt.NDArray[np.int64], dict[str, int]]:
        """Every call of `partner`: durations, batch sizes, and calls per operation."""
        keys = sorted(k for k in self.durations if k[0] == partner)
        d = [x for k in keys for x in self.durations[k]]
        b = [x for k in keys for x in self.batches[k]]
        return (np.asarray(d, dtype=np.float64), np.asarray(b, dtype=np.int64),
                {k[1]: len(self.durations[k]) for k in keys})


def read_calls(path: str | Path) -> Calls:
    """``timestamp,partner,operation,duration_s[,batch_size]``: one partner call a row."""
    path = Path(path)
    header, rows = _rows(path, CALL_COLUMNS, optional=1)
    has_batch = len(header) > 4 and header[4] == "batch_size"
    calls = Calls(source=str(path))
    for line, f in rows:
        raw = _field(path, line, 0, "timestamp", f)
        try:
            _timestamp(raw)
        except ValueError:
            raise _bad(path, line, 0, "timestamp", "expected seconds or an ISO 8601 date-time",
                       raw) from None
        partner = _field(path, line, 1, "partner", f)
        if partner not in PARTNERS:
            raise _bad(path, line, 1, "partner", "expected one of " + ", ".join(PARTNERS),
                       partner)
        op = _field(path, line, 2, "operation", f)
        raw = _field(path, line, 3, "duration_s", f)
        try:
            duration = float(raw)
        except ValueError:
            duration = math.nan
        if not (math.isfinite(duration) and duration >= 0):
            raise _bad(path, line, 3, "duration_s", "expected seconds, a number >= 0", raw)
        batch = 1
        if has_batch and len(f) > 4 and f[4].strip():
            raw = f[4].strip()
            if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
                raise _bad(path, line, 4, "batch_size", "expected a whole number >= 1", raw)
            batch = int(raw)
        calls.durations.setdefault((partner, op), []).append(duration)
        calls.batches.setdefault((partner, op), []).append(batch)
    return calls


# -- load plans --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanFault:
    """A load plan's fault: a partner's switch (`system`, `mode`) or a toxic on a `link`."""

    at_s: float
    for_s: float
    system: str | None = None
    mode: str | None = None
    latency_s: float | None = None
    failure_rate: float | None = None
    link: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class PlanInput:
    """What the twin takes from a load plan (`loadtests/plan.py` validates the whole plan;
    the twin reads its stages and faults itself, so it needs no load-test code installed)."""

    description: str
    stages: list[RateStage]
    faults: list[PlanFault]
    users: int = 30

    @property
    def duration_s(self) -> float:
        return math.fsum(s.duration_s for s in self.stages)

    def expected_arrivals(self, until_s: float) -> float:
        """Requests offered from the start up to `until_s` (the integral of the rate)."""
        total, start = 0.0, 0.0
        for i, s in enumerate(self.stages):
            if until_s <= start:
                break
            length = min(s.duration_s, until_s - start)
            r0 = self.stages[i - 1].rate_per_s if i > 0 else 0.0
            r1 = r0 + (s.rate_per_s - r0) * length / s.duration_s if s.ramp else s.rate_per_s
            total += ((r0 + r1) / 2 if s.ramp else s.rate_per_s) * length
            start += s.duration_s
        return total


def _number(path: Path, where: str, v: Any, low: float, strict: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (
            v <= low if strict else v < low):
        raise CalibrationError(f"{path}: {where}: expected a number {'>' if strict else '>='} "
                               f"{low:g}, got {v!r}")
    return float(v)


def read_plan(path: str | Path) -> PlanInput:
    """A load plan: ``.toml`` (loadtests/shapes) or the ``plan.json`` a run writes."""
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise CalibrationError(f"{path}: not a readable plan: {e}") from None
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages:
        raise CalibrationError(f"{path}: stages: a plan needs at least one stage")
    out = []
    for i, st in enumerate(stages):
        if not isinstance(st, dict):
            raise CalibrationError(f"{path}: stages[{i}]: expected a table")
        out.append(RateStage(_number(path, f"stages[{i}].duration_s", st.get("duration_s"), 0,
                                     True),
                             _number(path, f"stages[{i}].rate_per_s", st.get("rate_per_s"), 0,
                                     True), bool(st.get("ramp", False))))
    faults = []
    for i, f in enumerate(data.get("faults") or []):
        if not isinstance(f, dict):
            raise CalibrationError(f"{path}: faults[{i}]: expected a table")
        at = _number(path, f"faults[{i}].at_s", f.get("at_s"), 0, False)
        length = _number(path, f"faults[{i}].for_s", f.get("for_s"), 0, True)
        if f.get("link") in ("erp", "wms"):
            faults.append(PlanFault(at, length, link=f["link"], kind=str(f.get("kind"))))
        elif f.get("system") in ("erp", "wms") and f.get("mode") in ("down", "slow", "flaky"):
            faults.append(PlanFault(at, length, f["system"], f["mode"], f.get("latency_s"),
                                    f.get("failure_rate")))
        else:
            raise CalibrationError(f"{path}: faults[{i}]: expected system = erp|wms with mode "
                                   "= down|slow|flaky, or link = erp|wms with a kind")
    users = data.get("users", 30)
    if isinstance(users, bool) or not isinstance(users, int) or users < 1:
        raise CalibrationError(f"{path}: users: expected a whole number >= 1, got {users!r}")
    return PlanInput(str(data.get("description", "")), out, faults, users)


# -- a live run directory ------------------------------------------------------------------------


@dataclass
class LiveRun:
    """What calibration takes from a load test's run directory."""

    path: Path
    plan: PlanInput
    stages: list[RateStage]
    """The plan's stages, their rates (requests/s) as measured by locust where it could."""
    measured_requests: int
    calls: Calls | None


def _locust_history(path: Path) -> tuple[Floats, Floats]:
    """(seconds from the first sample, cumulative requests) of locust's aggregated history."""
    t, total = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for line, row in enumerate(reader, 2):
            if row.get("Name") != "Aggregated":
                continue
            try:
                t.append(float(row["Timestamp"]))
                total.append(float(row["Total Request Count"]))
            except (KeyError, TypeError, ValueError):
                raise CalibrationError(f"{path}:{line}: expected locust's Timestamp and Total "
                                       "Request Count columns") from None
    a, b = np.asarray(t), np.asarray(total)
    started = np.nonzero(b > 0)[0]
    if started.size == 0:
        return np.zeros(0), np.zeros(0)
    first = max(int(started[0]) - 1, 0)  # the last sample before any request
    return a[first:] - a[first], b[first:]


def _arrivals_per_request(path: Path) -> float:
    """Locust's aggregated count holds the requests and one ``INTENDED`` entry per arrival
    (the locustfile's intended-time latency): arrivals / that count, from the final stats
    (a half when they are missing: one request per arrival)."""
    if not path.is_file():
        return 0.5
    intended, aggregated = 0.0, 0.0
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                n = float(row.get("Request Count") or 0)
            except ValueError:
                raise CalibrationError(f"{path}: Request Count: expected a number, got "
                                       f"{row.get('Request Count')!r}") from None
            if row.get("Type") == "INTENDED":
                intended += n
            elif row.get("Name") == "Aggregated":
                aggregated = n
    return intended / aggregated if aggregated > 0 and intended > 0 else 0.5


def read_run(run_dir: str | Path) -> LiveRun:
    """A load test's run directory: ``plan.json`` (required), ``locust_stats_history.csv``
    (the measured request rate per stage) and ``partner_calls.csv`` (service times)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise CalibrationError(f"{path}: not a directory (a load test's --out)")
    plan = read_plan(path / "plan.json")
    stages, measured = [], 0
    history = path / "locust_stats_history.csv"
    t, total = _locust_history(history) if history.is_file() else (np.zeros(0), np.zeros(0))
    total = total * _arrivals_per_request(path / "locust_stats.csv")
    start = 0.0
    for s in plan.stages:
        end = start + s.duration_s
        if t.size > 1 and t[-1] >= end - 1:
            got = float(np.interp(end, t, total) - np.interp(start, t, total))
            planned = plan.expected_arrivals(end) - plan.expected_arrivals(start)
            scale = got / planned if planned > 0 else 1.0
            stages.append(RateStage(s.duration_s, s.rate_per_s * scale, s.ramp, round(got)))
            measured += round(got)
        else:  # no history that covers it: the plan's own rate
            stages.append(RateStage(s.duration_s, s.rate_per_s, s.ramp))
        start = end
    calls_path = path / "partner_calls.csv"
    calls = read_calls(calls_path) if calls_path.is_file() else None
    return LiveRun(path, plan, stages, measured, calls)


# -- the scenario ------------------------------------------------------------------------------


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(float(f"{v:.10g}"))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if hasattr(v, "model_dump"):
        d = v.model_dump(by_alias=True)
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in d.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def describe(dist: Distribution | None) -> str:
    if dist is None:
        return "-"
    d = dist.model_dump()
    kind: str = d.pop("kind")
    return kind + "(" + ", ".join(f"{k}={v:.4g}" for k, v in d.items()) + ")"


def _fit_comments(what: str, fit: ServiceFit, ops: dict[str, int]) -> list[str]:
    said = ", ".join(f"{op} {n}" for op, n in ops.items())
    lines = [f"# {what}: {sum(ops.values())} calls ({said}); fixed part: mean "
             f"{fit.mean_s:.4g} s"]
    if fit.per_item_s or fit.max_batch > 1:
        lines.append(f"#   batches: mean {fit.mean_batch:.4g} items, largest {fit.max_batch}; "
                     f"each item beyond the first adds {fit.per_item_s:.4g} s (least squares); "
                     f"the fixed part fitted to {fit.fixed_from} ({fit.n})")
    lines.append(f"#   Kolmogorov-Smirnov D per family (1% critical value "
                 f"{fit.critical_ks:.4f}):")
    for f in sorted(fit.fits, key=lambda f: (f.dist is None, f.ks)):
        chosen = "  <- chosen" if f is fit.best else ""
        shown = f"D = {f.ks:.4f}  {describe(f.dist)}" if f.dist else f"not fitted: {f.note}"
        lines.append(f"#     {f.family:<12}{shown}{chosen}")
    if not fit.accepted:
        lines.append("#   (no family passes the test at 1%: the chosen one is the closest)")
    return lines


@dataclass
class Calibration:
    """Everything fitted, ready to be written as a scenario."""

    name: str
    description: str
    duration_s: float
    movement_stages: list[RateStage] = field(default_factory=list)
    """Movements per second over time."""
    orders_per_s: float = 0.0
    mix: Counter[str] | None = None
    service: dict[str, tuple[ServiceFit, dict[str, int]]] = field(default_factory=dict)
    outages: list[dict[str, Any]] = field(default_factory=list)
    bus: dict[str, Any] = field(default_factory=dict)
    """`bus` fields taken from the live service's settings."""
    erp_workers: int | None = None
    producers: int | None = None
    """A load test's users: the warehouse's workers, posting at once (no staff time)."""
    notes: list[str] = field(default_factory=list)


def plan_calibration(plan: PlanInput, stages: list[RateStage] | None = None,
                     name: str = "calibrated") -> Calibration:
    """A load plan as twin input: its stages (requests/s; `stages` overrides with measured
    rates) turned into movements and orders by the locustfile's mix, its faults into the
    twin's outages."""
    stages = stages if stages is not None else plan.stages
    per_request = LOCUST_SINGLE + LOCUST_BATCH_SHARE * LOCUST_BATCH
    cal = Calibration(name, plan.description or "from a load plan", plan.duration_s)
    cal.movement_stages = [RateStage(s.duration_s, s.rate_per_s * per_request, s.ramp, s.count)
                           for s in stages]
    total = sum(_stage_integral(stages, i) for i in range(len(stages)))
    cal.orders_per_s = LOCUST_ORDER * total / plan.duration_s
    cal.notes.append(f"movements per request {per_request:g} and orders {LOCUST_ORDER:g} per "
                     "request: the locustfile's mix (duplicates and malformed ones add none)")
    cal.producers = plan.users
    cal.notes.append(f"the warehouse's workers: the plan's {plan.users} users, posting at once; "
                     "links: loopback, 1 ms (not measured)")
    cal.outages, skipped = plan_outages(plan)
    cal.notes.extend(skipped)
    return cal


def _stage_integral(stages: list[RateStage], i: int) -> float:
    s = stages[i]
    if not s.ramp:
        return s.rate_per_s * s.duration_s
    before = stages[i - 1].rate_per_s if i > 0 else 0.0
    return (before + s.rate_per_s) / 2 * s.duration_s


LINK_OUTAGE = {"erp": "core_erp", "wms": "wms_core"}


def plan_outages(plan: PlanInput) -> tuple[list[dict[str, Any]], list[str]]:
    """The plan's faults as the twin's ``faults.outages``, and a note per fault the twin has
    no counterpart for."""
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    for i, f in enumerate(plan.faults):
        window = {"start_h": f.at_s / 3600, "duration_h": f.for_s / 3600}
        if f.system is not None:
            if f.mode == "down":
                out.append({"system": f.system, **window, "kind": "down"})
            elif f.mode == "slow":
                out.append({"system": f.system, **window, "kind": "slow",
                            "slow_latency_s": f.latency_s})
            else:
                notes.append(f"faults[{i}] ({f.system} flaky, {f.failure_rate} of calls "
                             "fail): not modelled (the twin's failure_probability holds for "
                             "the whole run)")
        elif f.kind == "down" and f.link is not None:
            out.append({"system": LINK_OUTAGE[f.link], **window, "kind": "down"})
        else:
            notes.append(f"faults[{i}] (toxic {f.kind} on link {f.link}): not modelled")
    return out, notes


def from_run(run: LiveRun, name: str = "calibrated") -> Calibration:
    cal = plan_calibration(run.plan, run.stages, name)
    cal.description = f"calibrated from the load test in {run.path.name}"
    measured = "measured by locust" if run.measured_requests else "the plan's (no history)"
    cal.notes.insert(0, f"arrival rates: the plan's stages, rates {measured} "
                     f"({run.measured_requests} requests)")
    service_settings(cal)
    if run.calls is not None:
        add_calls(cal, run.calls)
    else:
        cal.notes.append("service times: not measured (no partner_calls.csv; set "
                         "TWIN_PARTNER_CALLS_CSV for the run): the twin's defaults")
    return cal


def service_settings(cal: Calibration) -> None:
    """The live service's retry policy, ERP concurrency and partner timeout (its defaults,
    which `loadtests.run` does not change), and the twins' one call at a time."""
    from integration_core.service.config import Settings

    d = {k: f.default for k, f in Settings.model_fields.items()}
    cal.bus = {"max_attempts": d["retry_max_attempts"],
               "initial_delay_s": d["retry_initial_delay_s"],
               "max_delay_s": d["retry_max_delay_s"], "call_timeout_s": d["partner_timeout_s"],
               "erp_batch_calls": d["erp_concurrency"], "erp_batch_wait_s": d["coalesce_s"]}
    cal.erp_workers = 1
    cal.notes.append("retry, timeout, ERP concurrency and batch wait (its coalescing): the live "
                     "service's settings "
                     "(integration_core/service/config.py); ERP workers 1: the live twins "
                     "serve one call at a time on their event loop")


def add_calls(cal: Calibration, calls: Calls) -> None:
    for partner in PARTNERS:
        d, b, ops = calls.of(partner)
        if d.size:
            cal.service[partner] = (fit_service_times(d, b), ops)


def from_logs(movements: str | Path | None, calls: str | Path | None,
              name: str = "calibrated") -> Calibration:
    """A team's own logs (either or both)."""
    cal = Calibration(name, "calibrated from logs", 3600.0)
    if movements is not None:
        mv = read_movements(movements)
        span = float(mv.times_s.max()) or 1.0
        cal.duration_s = span
        cal.movement_stages = fit_stages(mv.times_s, span)
        cal.mix = mv.kinds
        cal.notes.append(f"movements: {int(mv.times_s.size)} in {span:g} s from {movements}, "
                         f"{len(cal.movement_stages)} stage(s) of constant rate (changepoints "
                         "of the counts per interval); orders: not in the logs, the twin's "
                         "default")
    if calls is not None:
        add_calls(cal, read_calls(calls))
    return cal


def _api_lines(fit: ServiceFit, bulk: bool) -> list[str]:
    lines = [f"service_time_s = {_toml(fit.best.dist)}"]
    if bulk and fit.max_batch > 1:
        lines += [f"bulk_max_items = {fit.max_batch}",
                  f"bulk_per_item_s = {_toml(fit.per_item_s)}"]
    return lines


def scenario_text(cal: Calibration, source: str) -> str:
    """The calibration as scenario TOML, with comments on what was fitted and how well."""
    out = [f"# Written by `twin calibrate` from {source}.",
           *[f"# {n}" for n in cal.notes], "",
           f"name = {_toml(cal.name)}", f"description = {_toml(cal.description)}",
           f"duration_h = {_toml(cal.duration_s / 3600)}",
           f"drain_h = {_toml(max(cal.duration_s, 120.0) / 3600)}",
           f"sample_interval_s = {_toml(max(cal.duration_s / 600, 1.0))}", ""]
    erp = cal.service.get("erp")
    bus = dict(cal.bus)
    if erp is not None or cal.erp_workers is not None:
        out.append("[erp.api]")
        if cal.erp_workers is not None:
            out.append(f"workers = {cal.erp_workers}")
        if erp is not None:
            out += [*_fit_comments("ERP calls", erp[0], erp[1]), *_api_lines(erp[0], True)]
            if erp[0].max_batch > 1:  # as many movements a call as the largest batch measured
                bus["erp_batch_size"] = erp[0].max_batch
        out.append("")
    if bus:
        out += ["[bus]", *[f"{k} = {_toml(v)}" for k, v in bus.items()], ""]
    carrier = cal.service.get("carrier")
    if carrier is not None:
        fit, ops = carrier
        out += ["[carrier]", *_fit_comments("carrier calls", fit, ops),
                f"label_latency_s = {_toml(fit.best.dist)}", ""]
    if cal.producers is not None:
        loopback = '{ kind = "constant", value = 0.001 }'
        out += [f"[links.{k}]\nlatency_s = {loopback}\n" for k in ("wms_core", "core_erp")]
    if cal.orders_per_s:
        out += ["[shop]", f"orders_per_hour = {_toml(cal.orders_per_s * 3600)}", ""]
    out += ["[[warehouses]]", 'id = "WH1"']
    if cal.movement_stages:
        mean = (sum(_stage_integral(cal.movement_stages, i)
                    for i in range(len(cal.movement_stages))) / cal.duration_s)
        out.append(f"movements_per_hour = {_toml(mean * 3600)}  # the stages' mean")
    if cal.producers is not None:
        out += [f"workers = {cal.producers}",
                'posting_time_s = { kind = "constant", value = 0.0 }']
    wms = cal.service.get("wms")
    if wms is not None:
        fit, ops = wms
        out += ["[warehouses.api]", *_fit_comments("WMS calls", fit, ops),
                *_api_lines(fit, False)]
    if cal.mix:
        total = sum(cal.mix.values())
        out += ["[warehouses.mix]", f"# the kinds' shares of {total} movements"]
        for kind in MovementKind:
            out.append(f"{json.dumps(kind.value)} = {_toml(cal.mix.get(kind.value, 0) / total)}")
    for s in cal.movement_stages:
        counted = f"  # {s.count} arrivals measured" if s.count else ""
        out += ["[[warehouses.rate_stages]]" + counted, f"duration_s = {_toml(s.duration_s)}",
                f"movements_per_hour = {_toml(s.rate_per_s * 3600)}"]
        if s.ramp:
            out.append("ramp = true")
    for o in cal.outages:
        out += ["", "[[faults.outages]]"]
        latency = o.pop("slow_latency_s", None)
        if latency is not None and erp is not None:
            o["factor"] = max(1.0, 1.0 + latency / max(erp[0].mean_s, 1e-9))
        out += [f"{k} = {_toml(v)}" for k, v in o.items()]
        if latency is not None and erp is None:
            out.append("# slow by a fixed latency: factor left at the twin's default "
                       "(no measured service time to scale)")
    return "\n".join(out) + "\n"


def write_scenario(cal: Calibration, path: str | Path, source: str) -> Scenario:
    """Write the calibration to `path` as a scenario, after `sim.scenario.load` accepted it."""
    path = Path(path)
    text = scenario_text(cal, source)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    try:
        scenario = load(tmp, name=cal.name)
    except ScenarioError as exc:
        tmp.unlink()
        raise CalibrationError(f"the calibrated scenario does not validate (a bug): {exc}") \
            from None
    tmp.replace(path)
    return scenario


def calibrate(run_dir: str | Path | None = None, *, plan: str | Path | None = None,
              movements: str | Path | None = None, calls: str | Path | None = None,
              name: str = "calibrated") -> tuple[Calibration, str]:
    """The calibration from a run directory, a plan alone, or logs; and what it came from."""
    if run_dir is not None:
        cal = from_run(read_run(run_dir), name)
        if calls is not None:
            add_calls(cal, read_calls(calls))
        return cal, str(run_dir)
    if plan is not None:
        cal = plan_calibration(read_plan(plan), name=name)
        if calls is not None:
            add_calls(cal, read_calls(calls))
        return cal, str(plan)
    if movements is None and calls is None:
        raise CalibrationError("nothing to calibrate from: give a run directory, --plan, "
                               "--movements or --calls")
    return from_logs(movements, calls, name), ", ".join(
        str(p) for p in (movements, calls) if p is not None)
