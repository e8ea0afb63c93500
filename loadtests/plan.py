"""Load plans: the offered arrival rate over time and the fault schedule, read from a TOML file.

A plan is data (like the twin's scenarios): a list of ``[[stages]]``, each holding an arrival
rate for some seconds, either flat or as a linear ramp from the previous stage's rate, and an
optional list of ``[[faults]]`` that take a downstream twin down (or slow, or flaky) for a
while. ``loadtests/shapes/*.toml`` are the shipped ones::

    users = 30        # locust users sharing the rate (a fixed pool)
    seed = 0          # each user's arrival schedule is a pure function of (seed, worker, user)

    [[stages]]
    duration_s = 60
    rate_per_s = 300

    [[stages]]        # then 300 -> 900 requests/s, linearly, over 30 s
    duration_s = 30
    rate_per_s = 900
    ramp = true

    [[faults]]        # ERP down from 20 s to 28 s after the start
    at_s = 20
    for_s = 8
    system = "erp"
    mode = "down"

    [[faults]]        # the TCP link core <-> WMS resets 30% of the requests, 40 s to 46 s
    at_s = 40
    for_s = 6
    link = "wms"
    kind = "reset_peer"
    toxicity = 0.3
    scope = "exchange"

A fault with ``system`` flips a partner twin's own fault switch (it answers 503, slowly, or
loses answers); one with ``link`` puts a toxic of the fault proxy (`loadtests.proxy`: latency,
bandwidth, timeout, reset_peer, close_after_forward, limit_data, down; its fields beside
``kind``) on the TCP link between the core and that partner, so the core's HTTP client breaks
the way it does on a real network.

The load stays an *open model*: the plan says how many requests per second arrive, whatever
the server does. Each of the ``users`` users draws its own non-homogeneous Poisson schedule of
intended send times with rate ``rate(t) / users`` (by thinning, see `arrivals`), seeded per
user, so a run's offered load is reproducible.

This module never imports locust (which monkey-patches the process with gevent): the tests,
`loadtests.run` and the notebooks use it directly; the locustfile imports it too.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from loadtests.proxy import KINDS, Toxic, ToxicKind, parse_toxic

SHAPES = Path(__file__).resolve().parent / "shapes"
DEFAULT_PLAN = SHAPES / "default.toml"
PLAN_ENV = "TWIN_LOAD_PLAN"
"""The environment variable that gives the locustfile the plan's path."""
LINKS_ENV = "TWIN_LOAD_LINKS"
"""The environment variable that gives the locustfile the fault proxies' control endpoints, as
JSON: ``{"erp": "http://127.0.0.1:<port>", "wms": ...}`` (one per link the plan faults)."""
LINKS = ("erp", "wms")


class PlanError(ValueError):
    """A plan file that cannot be read or is invalid; the message names the file and field."""


class Stage(BaseModel):
    """A stretch of the run with one arrival rate (or a linear ramp to it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    duration_s: float = Field(gt=0, description="Length of the stage, seconds.")
    rate_per_s: float = Field(
        gt=0, description="Requests per second offered (at the end of the stage if `ramp`).")
    ramp: bool = Field(
        False, description="Ramp linearly from the previous stage's rate (0 before the first "
                           "stage) to `rate_per_s` over the stage; otherwise jump to it.")


class Fault(BaseModel):
    """A downstream twin put into a fault mode at `at_s` and back `up` after `for_s`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    at_s: float = Field(ge=0, description="Start, seconds after the load starts.")
    for_s: float = Field(gt=0, description="Length, seconds; the system is set `up` after it.")
    system: Literal["erp", "wms"] = Field(description="Which downstream twin.")
    mode: Literal["down", "slow", "flaky"] = Field(
        description="`down`: refuses every call; `slow`: answers after `latency_s`; "
                    "`flaky`: fails a fraction `failure_rate` of calls.")
    latency_s: float | None = Field(
        None, gt=0, le=60, description="Added latency per call, s (mode `slow`).")
    failure_rate: float | None = Field(
        None, ge=0, le=1, description="Fraction of calls that fail (mode `flaky`).")

    @model_validator(mode="after")
    def _mode_fields(self) -> Self:
        needs = {"slow": "latency_s", "flaky": "failure_rate"}
        for mode, field in needs.items():
            given = getattr(self, field) is not None
            if self.mode == mode and not given:
                raise ValueError(f"{field}: required when mode = {mode!r}")
            if self.mode != mode and given:
                raise ValueError(f"{field}: only allowed when mode = {mode!r}")
        return self

    @property
    def until_s(self) -> float:
        return self.at_s + self.for_s

    def body(self) -> dict[str, Any]:
        """The JSON body of ``PUT /v1/admin/faults/{system}`` that starts this fault."""
        body: dict[str, Any] = {"mode": self.mode}
        if self.latency_s is not None:
            body["latency_s"] = self.latency_s
        if self.failure_rate is not None:
            body["failure_rate"] = self.failure_rate
        return body


class LinkFault(BaseModel):
    """A toxic of the fault proxy on the TCP link between the core and a partner, switched on
    at `at_s` and off after `for_s`. Beside `kind`, the toxic's own fields (`toxicity`,
    `scope`, `stream`, `latency_ms`, ...: see `loadtests.proxy`) are given flat."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    at_s: float = Field(ge=0, description="Start, seconds after the load starts.")
    for_s: float = Field(gt=0, description="Length, seconds; the toxic is removed after it.")
    link: Literal["erp", "wms"] = Field(
        description="Which link: the core's connections to that partner twin.")
    kind: ToxicKind = Field(description="The toxic: " + ", ".join(KINDS) + ".")
    _toxic: Toxic = PrivateAttr()

    @model_validator(mode="after")
    def _the_toxic(self) -> Self:
        try:
            self._toxic = parse_toxic({"kind": self.kind, **(self.model_extra or {})})
        except ValidationError as e:
            raise ValueError("; ".join(
                f"{_loc(tuple(err['loc'][1:]))}: {_message(err)}" for err in e.errors())
            ) from None
        return self

    @property
    def toxic(self) -> Toxic:
        """The toxic to switch on (validated: the fields not of this kind are refused)."""
        return self._toxic

    @property
    def until_s(self) -> float:
        return self.at_s + self.for_s


def _fault_tag(value: Any) -> str:
    link = "link" in value if isinstance(value, dict) else isinstance(value, LinkFault)
    return "<link>" if link else "<system>"


AnyFault = Annotated[Annotated[Fault, Tag("<system>")] | Annotated[LinkFault, Tag("<link>")],
                     Discriminator(_fault_tag)]
"""A ``[[faults]]`` entry: with ``link``, a `LinkFault`; otherwise a partner `Fault`."""


@dataclass(frozen=True)
class FaultEvent:
    """One call to make: at `at_s` seconds after the start, PUT `body` for `system`."""

    at_s: float
    system: str
    body: dict[str, Any]


@dataclass(frozen=True)
class LinkEvent:
    """At `at_s`, switch `toxic` on as `name` on `link`'s proxy (`toxic` None: off)."""

    at_s: float
    link: str
    name: str
    toxic: Toxic | None


class Plan(BaseModel):
    """A load scenario: offered arrival rate over time, users, seed and faults."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    description: str = Field("", description="What this plan is for (free text).")
    users: int = Field(
        30, gt=0, description="Locust users sharing the rate. Each sends one request at a time, "
                              "so keep users >= peak rate x worst latency you want to see, or "
                              "the users fall behind (the intended-time latency shows it).")
    seed: int = Field(0, ge=0, description="Seed of the users' arrival schedules.")
    stages: list[Stage] = Field(min_length=1, description="The rate over time, in order.")
    faults: list[AnyFault] = Field(
        default_factory=list, description="Fault windows: a partner twin's fault switch "
                                          "(`system`) or a toxic on a link (`link`).")

    @model_validator(mode="after")
    def _faults_fit(self) -> Self:
        end = self.duration_s
        for i, f in enumerate(self.faults):
            if f.until_s > end + 1e-9:
                raise ValueError(f"faults[{i}]: ends at {f.until_s:g} s, after the plan "
                                 f"({end:g} s); shorten for_s or lengthen the stages")
            for j, g in enumerate(self.faults[:i]):
                overlap = f.at_s < g.until_s and g.at_s < f.until_s
                if isinstance(f, Fault) and isinstance(g, Fault):
                    if g.system == f.system and overlap:
                        raise ValueError(f"faults[{i}]: overlaps faults[{j}] on system "
                                         f"{f.system!r} ({g.at_s:g}-{g.until_s:g} s)")
                elif isinstance(f, LinkFault) and isinstance(g, LinkFault):
                    if g.link == f.link and g.kind == f.kind and overlap:
                        raise ValueError(f"faults[{i}]: overlaps faults[{j}], the same kind "
                                         f"{f.kind!r} on link {f.link!r} ({g.at_s:g}-"
                                         f"{g.until_s:g} s)")
                else:  # a twin's fault switch is a call over the link to that twin
                    switch, link = (f, g) if isinstance(f, Fault) else (g, f)
                    assert isinstance(switch, Fault) and isinstance(link, LinkFault)
                    k, n = (i, j) if switch is f else (j, i)
                    for t in (switch.at_s, switch.until_s):
                        if switch.system == link.link and link.at_s <= t <= link.until_s:
                            raise ValueError(
                                f"faults[{k}]: the switch of system {switch.system!r} at "
                                f"{t:g} s is a call over link {link.link!r}, which faults[{n}] "
                                f"({link.kind}) breaks from {link.at_s:g} to "
                                f"{link.until_s:g} s; move one of them")
        return self

    @property
    def partner_faults(self) -> list[Fault]:
        """The faults that flip a partner twin's own fault switch."""
        return [f for f in self.faults if isinstance(f, Fault)]

    @property
    def link_faults(self) -> list[LinkFault]:
        """The faults on the TCP links (toxics of the fault proxy)."""
        return [f for f in self.faults if isinstance(f, LinkFault)]

    @property
    def links(self) -> list[str]:
        """The links the plan puts toxics on (each needs a fault proxy), in `LINKS` order."""
        faulted = {f.link for f in self.link_faults}
        return [link for link in LINKS if link in faulted]

    # -- the rate over time ----------------------------------------------------------------

    @cached_property
    def _starts(self) -> list[float]:
        starts, t = [], 0.0
        for s in self.stages:
            starts.append(t)
            t += s.duration_s
        return starts

    @property
    def duration_s(self) -> float:
        """Total length of the run, seconds."""
        return math.fsum(s.duration_s for s in self.stages)

    @property
    def peak_rate_per_s(self) -> float:
        return max(s.rate_per_s for s in self.stages)

    @property
    def mean_rate_per_s(self) -> float:
        return self.expected_arrivals() / self.duration_s

    def _from_rate(self, i: int) -> float:
        """The rate a ramp in stage `i` starts from: the previous stage's (0 for the first)."""
        return self.stages[i - 1].rate_per_s if i > 0 else 0.0

    def rate(self, t: float) -> float:
        """Requests per second offered `t` seconds after the start (0 outside the plan).
        A stage covers [start, start + duration_s)."""
        if t < 0 or t >= self.duration_s:
            return 0.0
        i = bisect.bisect_right(self._starts, t) - 1
        stage = self.stages[i]
        if not stage.ramp:
            return stage.rate_per_s
        r0 = self._from_rate(i)
        return r0 + (stage.rate_per_s - r0) * (t - self._starts[i]) / stage.duration_s

    def expected_arrivals(self, until_s: float | None = None) -> float:
        """Requests offered in total from the start up to `until_s` (the integral of rate)."""
        until = self.duration_s if until_s is None else min(max(until_s, 0.0), self.duration_s)
        total = 0.0
        for i, (start, stage) in enumerate(zip(self._starts, self.stages, strict=True)):
            if until <= start:
                break
            length = min(stage.duration_s, until - start)
            if stage.ramp:
                r0 = self._from_rate(i)
                r1 = r0 + (stage.rate_per_s - r0) * length / stage.duration_s
                total += (r0 + r1) / 2 * length
            else:
                total += stage.rate_per_s * length
        return total

    # -- faults ----------------------------------------------------------------------------

    def fault_events(self) -> list[FaultEvent]:
        """Every partner fault call, in time order: the fault at `at_s`, `up` at its end."""
        events = []
        for f in self.partner_faults:
            events.append(FaultEvent(f.at_s, f.system, f.body()))
            events.append(FaultEvent(f.until_s, f.system, {"mode": "up"}))
        # at a tie, an `up` first: back-to-back windows on one system end in the later fault
        return sorted(events, key=lambda e: (e.at_s, e.body["mode"] != "up"))

    def link_events(self) -> list[LinkEvent]:
        """Every toxic switched on or off, in time order (named by its kind; at a tie, the
        removals first, so back-to-back windows of one kind end in the later one)."""
        events = []
        for f in self.link_faults:
            events.append(LinkEvent(f.at_s, f.link, f.kind, f.toxic))
            events.append(LinkEvent(f.until_s, f.link, f.kind, None))
        return sorted(events, key=lambda e: (e.at_s, e.toxic is not None))

    # -- overrides (the run's command-line flags) -------------------------------------------

    def with_overrides(self, *, duration_s: float | None = None,
                       rate_per_s: float | None = None, users: int | None = None,
                       seed: int | None = None,
                       outage: tuple[float | None, float | None] | None = None) -> Plan:
        """This plan with the run's command-line overrides applied, validated again.

        `duration_s` / `rate_per_s`: one flat stage replaces the stages (a missing one is this
        plan's length / peak rate). `outage` = (at_s, for_s): one ERP `down` window replaces
        all the faults (link faults too), none when for_s is 0 (a missing value is taken from
        the plan's first ERP outage, else 20 s / 8 s)."""
        data = self.model_dump()
        if duration_s is not None or rate_per_s is not None:
            data["stages"] = [{
                "duration_s": self.duration_s if duration_s is None else duration_s,
                "rate_per_s": self.peak_rate_per_s if rate_per_s is None else rate_per_s}]
        if outage is not None:
            first = next((f for f in self.partner_faults
                          if f.system == "erp" and f.mode == "down"), None)
            at_s = outage[0] if outage[0] is not None else first.at_s if first else 20.0
            for_s = outage[1] if outage[1] is not None else first.for_s if first else 8.0
            data["faults"] = ([{"at_s": at_s, "for_s": for_s, "system": "erp", "mode": "down"}]
                              if for_s > 0 else [])
        if users is not None:
            data["users"] = users
        if seed is not None:
            data["seed"] = seed
        changed = {k: v for k, v in [("duration_s", duration_s), ("rate_per_s", rate_per_s),
                                     ("users", users), ("seed", seed), ("outage", outage)]
                   if v is not None}
        if changed:
            said = ", ".join(f"{k}={v}" for k, v in changed.items())
            data["description"] = f"{self.description} (overridden: {said})".lstrip()
        try:
            return Plan.model_validate(data)
        except ValidationError as e:
            raise PlanError(format_errors("the plan with the command-line overrides", e)) from e


# -- reading -------------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    """``('stages', 2, 'rate_per_s')`` -> ``stages[2].rate_per_s``; a key that is not a bare
    TOML key is quoted: ``names."POST /v1/orders".actual``."""
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith("<") and part.endswith(">"):
            continue  # the tag of a union (`AnyFault`): not a field
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if part.replace("_", "").replace("-", "").isalnum() else json.dumps(part)
            out += f".{key}" if out else key
    return out


def _message(err: ErrorDetails) -> str:
    """Pydantic's message, in the words of a config file (``must be > 0, got -5``)."""
    ctx = err.get("ctx", {})
    match err["type"]:
        case "missing":
            return "required"
        case "extra_forbidden":
            return "unknown field"
        case "value_error":
            return str(ctx.get("error", err["msg"]))
        case "too_short":
            return f"needs at least {ctx.get('min_length', 1)} item(s)"
        case "greater_than":
            text = f"must be > {ctx['gt']:g}"
        case "greater_than_equal":
            text = f"must be >= {ctx['ge']:g}"
        case "less_than_equal":
            text = f"must be <= {ctx['le']:g}"
        case _:
            text = err["msg"]
    return f"{text}, got {err['input']!r}"


def format_errors(source: str, error: ValidationError) -> str:
    """``source: stages[2].rate_per_s: must be > 0, got -5``, one line per error."""
    lines = []
    for err in error.errors():
        where = _loc(tuple(err["loc"]))
        lines.append(f"{source}: {where + ': ' if where else ''}{_message(err)}")
    return "\n".join(lines)


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan (``.toml``, or ``.json`` as written by `loadtests.run`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PlanError(f"{path}: cannot read the plan: {e.strerror or e}") from e
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise PlanError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {e}") from e
    try:
        return Plan.model_validate(data)
    except ValidationError as e:
        raise PlanError(format_errors(str(path), e)) from e


# -- the arrivals --------------------------------------------------------------------------


def user_rng(seed: int, worker: int, user: int, stream: str = "arrivals") -> random.Random:
    """A user's own random stream: a pure function of the plan's seed, the locust worker's
    index, the user's number in that worker, and the stream's name."""
    return random.Random(f"interop-twin/{seed}/{worker}/{user}/{stream}")


def arrivals(plan: Plan, rng: random.Random, share: float = 1.0) -> Iterator[float]:
    """Intended send times (seconds from the start) of a Poisson process with rate
    ``share * plan.rate(t)``, by thinning: candidates at the constant peak rate, each kept
    with probability ``rate(t) / peak`` (Lewis and Shedler). Stops at the end of the plan."""
    if share <= 0:
        return
    peak = plan.peak_rate_per_s
    end = plan.duration_s
    t = 0.0
    while True:
        t += rng.expovariate(peak * share)
        if t >= end:
            return
        if rng.random() * peak < plan.rate(t):
            yield t


def user_arrivals(plan: Plan, worker: int, user: int) -> Iterator[float]:
    """Intended send times of one of the plan's users (its share is 1 / users)."""
    return arrivals(plan, user_rng(plan.seed, worker, user), 1.0 / plan.users)
