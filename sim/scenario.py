"""Scenario schema and loader. Scenarios are TOML files validated by `Scenario`.

A scenario may `extends = "other.toml"` (path relative to the file): the other file is loaded
first and this file's tables are merged over it, key by key. Errors name the file, the field and
what was expected. A `.json` file holds the same fields (experiments save each run's resolved
scenario that way, to replay it).
"""

from __future__ import annotations

import difflib
import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from integration_core.engine.redrive import Redrive, When
from sim.distributions import Constant, Distribution, Exponential, Lognormal, Uniform
from sim.kpis import KPIS, SITE, SITE_KPIS

Hours = Annotated[float, Field(gt=0)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


DOMAINS = ("order_release", "inventory", "shipment_confirmation", "master_data")


class Pattern(StrEnum):
    DIRECT = "direct"
    ORCHESTRATED = "orchestrated"
    EVENT_DRIVEN = "event_driven"
    HYBRID = "hybrid"


class Patterns(Model):
    """Integration pattern per domain. `hybrid` resolves per domain to the reference article's
    recommendation: order release direct (sync with validation and retry), inventory
    event-driven with reconciliation, shipment confirmation queued, master data scheduled."""

    order_release: Pattern = Field(Pattern.HYBRID, description="ERP -> WMS order release.")
    inventory: Pattern = Field(Pattern.HYBRID, description="WMS -> ERP inventory movements.")
    shipment_confirmation: Pattern = Field(
        Pattern.HYBRID, description="WMS -> ERP shipment confirmations."
    )
    master_data: Pattern = Field(Pattern.HYBRID, description="ERP -> WMS item master sync.")

    def resolved(self, domain: str) -> Pattern:
        """The concrete pattern of a domain (hybrid replaced by its recommendation)."""
        p: Pattern = getattr(self, domain)
        if p is not Pattern.HYBRID:
            return p
        return {
            "order_release": Pattern.DIRECT,
            "inventory": Pattern.EVENT_DRIVEN,
            "shipment_confirmation": Pattern.EVENT_DRIVEN,
            "master_data": Pattern.EVENT_DRIVEN,
        }[domain]


class Window(Model):
    """A span of time, once or recurring: `every_h = 24` with `start_h = 2` is every night
    02:00-04:00 (the run starts on a Monday at 00:00); `every_h = 168` once a week."""

    start_h: float = Field(ge=0, description="Start, hours from the beginning of the run "
                           "(the first occurrence when the window recurs).")
    duration_h: float = Field(gt=0, description="Length in hours.")
    every_h: float | None = Field(None, gt=0, description="Repeats every this many hours (24: "
                                  "daily, 168: weekly); null: once.")
    until_h: float | None = Field(None, gt=0, description="A recurring window's last "
                                  "occurrence starts before this hour (default: the end of "
                                  "the workload, duration_h; the ERP's batch posting runs go "
                                  "on through the drain).")

    @model_validator(mode="after")
    def _fits(self) -> Window:
        if self.every_h is not None and self.duration_h >= self.every_h:
            raise ValueError(f"a window of {self.duration_h:g} h cannot recur every "
                             f"{self.every_h:g} h (it would never end)")
        if self.until_h is not None and self.every_h is None:
            raise ValueError("until_h belongs to a recurring window (set every_h)")
        return self

    @property
    def start_s(self) -> float:
        return self.start_h * 3600

    @property
    def end_s(self) -> float:
        return (self.start_h + self.duration_h) * 3600

    def spans(self, until_s: float) -> list[tuple[float, float]]:
        """Every occurrence's [start, end) in seconds, starting before `until_s` (or before
        `until_h` when the window sets it)."""
        if self.every_h is None:
            return [(self.start_s, self.end_s)]
        last = self.until_h * 3600 if self.until_h is not None else until_s
        if last == float("inf"):
            raise ValueError("a recurring window needs an end: pass the run's length")
        out, t, step = [], self.start_s, self.every_h * 3600
        while t < last:
            out.append((t, t + self.duration_h * 3600))
            t += step
        return out


def spans(windows: list[Window], until_s: float) -> list[tuple[float, float]]:
    """Every occurrence of `windows` up to `until_s`, sorted."""
    return sorted(s for w in windows for s in w.spans(until_s))


class ApiConfig(Model):
    """A system's API: workers, service time, limits and availability."""

    workers: int = Field(8, ge=1, description="Requests served in parallel.")
    service_time_s: Distribution = Field(
        default_factory=lambda: Lognormal(mean=0.2, sigma=0.5),
        description="Time to serve one request, seconds.",
    )
    rate_limit_per_min: int | None = Field(
        None, ge=1, description="Requests accepted per minute; null means unlimited."
    )
    maintenance: list[Window] = Field(
        default_factory=list, description="Planned windows when the API answers 503."
    )
    failure_probability: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that a served request fails with a server error (500) "
        "instead of being applied; retrying may succeed.",
    )
    bulk_max_items: int | None = Field(
        None, ge=1, description="The API's bulk endpoint takes up to this many items in one "
        "request (null: one item a request). One bulk request counts once against the rate "
        "limit; the caller's batching policy is the core's (bus.erp_batch_size).")
    bulk_per_item_s: float = Field(
        0.0, ge=0, description="Service time each item adds to a bulk request, on top of "
        "service_time_s (the fixed part).")
    cost_per_1000_calls: float = Field(
        0.0, ge=0, description="What 1,000 requests cost (any currency): the api_cost KPI.")


class ErpConfig(Model):
    api: ApiConfig = Field(default_factory=ApiConfig, description="The ERP's API: workers, "
                           "service time, rate limit, maintenance windows.")
    honours_idempotency_keys: bool = Field(
        True, description="A repeated request with the same idempotency key is applied once."
    )
    batch_posting_min: float | None = Field(
        None, gt=0, description="Post inventory in batches every N minutes (null: at once)."
    )
    batch_posting_runs: list[Window] = Field(
        default_factory=list, description="The ERP's batch posting job: movements it accepts "
        "are booked when a run ends (e.g. every night 01:00 for 1 h: start_h = 1, duration_h "
        "= 1, every_h = 24); a run that ends while the ERP is down books at the next one.")


class MovementMix(Model):
    """Relative weights of movement kinds in the WMS's background stream."""

    receipt: float = Field(0.20, ge=0, description="Goods received (stock up).")
    pick: float = Field(0.45, ge=0, description="Picks outside the shop's orders (stock down).")
    adjustment: float = Field(0.05, ge=0, description="Manual corrections, either way.")
    transfer_out: float = Field(0.05, ge=0, description="Stock sent to another site.")
    transfer_in: float = Field(0.05, ge=0, description="Stock arriving from another site.")
    cycle_count: float = Field(0.10, ge=0, description="Count differences, either way.")
    return_: float = Field(0.05, ge=0, alias="return", description="Customer returns (up).")
    scrap: float = Field(0.05, ge=0, description="Damaged goods written off (down).")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _not_all_zero(self) -> MovementMix:
        if sum(self.weights()) <= 0:
            raise ValueError("at least one movement kind needs a positive weight")
        return self

    def weights(self) -> list[float]:
        return [self.receipt, self.pick, self.adjustment, self.transfer_out, self.transfer_in,
                self.cycle_count, self.return_, self.scrap]


def check_profiles(daily: list[float], weekly: list[float]) -> None:
    """24 hourly and 7 daily weights, none negative, not all zero."""
    if len(daily) != 24:
        raise ValueError(f"daily_profile needs 24 values, got {len(daily)}")
    if len(weekly) != 7:
        raise ValueError(f"weekly_profile needs 7 values, got {len(weekly)}")
    if min(daily + weekly) < 0:
        raise ValueError("profile weights must be >= 0")
    if not sum(daily) or not sum(weekly):
        raise ValueError("a profile needs at least one positive weight")


def profile_rate(daily: list[float], weekly: list[float], t_s: float) -> float:
    """The profiles' multiplier at `t_s` (each normalised to mean 1; the run starts on a
    Monday at 00:00)."""
    hour = int(t_s // 3600)
    return (daily[hour % 24] / (sum(daily) / 24)) * (weekly[(hour // 24) % 7] / (sum(weekly) / 7))


class EdiConfig(Model):
    """A site that reports its movements as X12 interchanges (a 3PL over EDI): 944 receipts
    (and returns, transfers in), 943 transfers out, 947 adjustments (counts, picks, scrap),
    sent on a schedule; the core answers each interchange with a 997 (or a TA1)."""

    transport: Literal["van", "file"] = Field(
        "van", description="van: each interchange crosses the wms_core link (a VAN or AS2: "
        "its latency, loss and duplication) and the 997 comes back after ack_latency_s; file: "
        "the 3PL drops a file the core picks up on its next poll (poll_min) and the 3PL reads "
        "the reply written beside it on its next drop.")
    interval_min: float = Field(
        30, gt=0, description="The 3PL's translator sends what happened since its last send "
        "every N minutes (the VAN/AS2 schedule, or the file drop interval): one interchange "
        "per document type (944, 943, 947) with movements to report.")
    poll_min: float = Field(
        5, gt=0, description="transport = file: the core polls the drop folder every N minutes.")
    ack_latency_s: Distribution = Field(
        default_factory=lambda: Lognormal(mean=120.0, sigma=0.5),
        description="transport = van: from the core's receipt of an interchange to its 997 "
        "(or TA1) reaching the 3PL (the VAN's mailbox delay both ways included).")
    ack_missing_p: float = Field(
        0.0, ge=0, lt=1, description="Probability that a reply the core sent never reaches "
        "the 3PL (a 997 lost on the VAN): the 3PL resends the same interchange, which the core "
        "recognises as a duplicate (same ISA06 and ISA13) and answers with the first reply.")
    reject_p: float = Field(
        0.0, ge=0, lt=1, description="Probability that the 3PL's translator writes a defective "
        "interchange (half of them a wrong SE01 count: 997 AK5 R; half an IEA02 that is not "
        "the ISA13: TA1 R); having read the rejection, it sends the movements again, "
        "corrected, under a new ISA13, at its resend check (resend_after_min after sending).")
    resend_after_min: float = Field(
        60, gt=0, description="The 3PL resends an interchange when no 997 came within N "
        "minutes of sending it (and sends a rejected one corrected N minutes after the "
        "rejection).")
    resend_max: int = Field(
        3, ge=0, description="Resends of one interchange without a 997 before the 3PL gives "
        "up (movements the core never received are then lost to the ERP).")


class RateStage(Model):
    """A stretch of a warehouse's movement stream at one rate, or a linear ramp to it: a load
    plan's stage (`loadtests/plan.py`) in the twin's units, so one plan runs in both clocks."""

    duration_s: float = Field(gt=0, description="Length of the stage, seconds.")
    movements_per_hour: float = Field(ge=0, description="Movement rate (at the stage's end "
                                      "if `ramp`).")
    ramp: bool = Field(False, description="Ramp linearly from the previous stage's rate (0 "
                       "before the first) to `movements_per_hour`; otherwise jump to it.")


def stage_rate(stages: list[RateStage], t_s: float) -> float:
    """Movements per hour at `t_s` (the last stage's rate holds after the stages end)."""
    start, before = 0.0, 0.0
    for st in stages:
        if t_s < start + st.duration_s:
            if not st.ramp:
                return st.movements_per_hour
            return before + (st.movements_per_hour - before) * (t_s - start) / st.duration_s
        start, before = start + st.duration_s, st.movements_per_hour
    return before


class WarehouseConfig(Model):
    id: str = Field(min_length=1, description="Warehouse (site) id; also its location code.")
    operator: Literal["own", "3pl"] = Field(
        "own", description="Who runs the site; recorded with the results (a 3PL's behaviour "
        "is set by batch_minutes or edi, and api).")
    batch_minutes: float | None = Field(
        None, gt=0, description="A 3PL reports its movements in batches every N minutes."
    )
    movements_per_hour: float = Field(2000, ge=0, description="Background movement rate "
                                      "(the mean over a day and a week of the profiles).")
    daily_profile: list[float] = Field(
        default_factory=lambda: [1.0] * 24,
        description="24 relative weights of the movement rate per hour of day (normalised to "
        "mean 1): [0, 0, ..., 3, 3, ...] puts the day's movements in the shifts.")
    weekly_profile: list[float] = Field(
        default_factory=lambda: [1.0] * 7, description="7 weights, Monday first.")
    peak_multiplier: float = Field(1.0, gt=0, description="Multiplies the movement rate "
                                   "(a peak season).")
    rate_stages: list[RateStage] = Field(
        default_factory=list, description="The movement rate over time as a load plan's "
        "stages (`twin calibrate` writes them); replaces movements_per_hour (then only their "
        "mean, for the record) and the profiles. Empty: the rate and profiles above.")
    mix: MovementMix = Field(default_factory=MovementMix,
                             description="Relative weights of the movement kinds.")
    workers: int = Field(20, ge=1, description="Warehouse staff posting movements and picking.")
    posting_time_s: Distribution = Field(
        default_factory=lambda: Constant(value=2.0),
        description="Worker time to post one movement, before any sync call.",
    )
    pick_time_s: Distribution = Field(
        default_factory=lambda: Exponential(mean=120.0), description="Pick and pack per order."
    )
    wave_interval_min: float = Field(15, gt=0, description="Released orders are waved this often.")
    api: ApiConfig = Field(default_factory=lambda: ApiConfig(workers=16),
                           description="The site's WMS API (order releases, direct calls).")
    item_master: Literal["shared", "own"] = Field(
        "shared", description="own: the site keeps an item master of its own (a 3PL's), which "
        "knows an item only once the master-data sync has brought it there; the core cannot "
        "map the site's movements of an item it does not know yet: they dead-letter, and are "
        "replayed when the item arrives. shared: the ERP's master serves the site.")
    items_known_at_start: float = Field(
        1.0, ge=0, le=1, description="With item_master = own: the share of the catalog the "
        "site's master holds at the start (which items: drawn from the seed); the rest arrive "
        "with the item's next change or the hybrid pattern's scheduled full sync.")
    order_weight: float = Field(
        1.0, ge=0, description="Share of the shop's orders routed to this site, relative to "
        "the other sites' weights (equal weights: orders spread evenly; 0: no orders).")
    edi: EdiConfig | None = Field(
        None, description="The site reports its movements over X12 EDI (a 3PL over a VAN, "
        "AS2 or file drops) instead of the API; null: over the API.")

    @model_validator(mode="after")
    def _profiles(self) -> WarehouseConfig:
        check_profiles(self.daily_profile, self.weekly_profile)
        if self.rate_stages and not self.flat:
            raise ValueError("rate_stages replace the daily and weekly profiles: give one or "
                             "the other")
        if self.edi is not None and self.batch_minutes is not None:
            raise ValueError("edi and batch_minutes are both set: an EDI site sends on "
                             "edi.interval_min (remove batch_minutes)")
        return self

    @property
    def flat(self) -> bool:
        """No daily or weekly shape: a constant rate."""
        return len(set(self.daily_profile)) == 1 and len(set(self.weekly_profile)) == 1


class CarrierConfig(Model):
    label_latency_s: Distribution = Field(
        default_factory=lambda: Lognormal(mean=1.0, sigma=0.4),
        description="Seconds the carrier's API takes to issue a label.")
    failure_probability: float = Field(
        0.01, ge=0, le=1, description="Chance a label request fails; the shipment is rebooked "
        "with another service.")
    pickup_h: Distribution = Field(
        default_factory=lambda: Uniform(low=0.5, high=4.0),
        description="Shipped -> picked up by the carrier, hours.",
    )
    in_transit_h: Distribution = Field(
        default_factory=lambda: Exponential(mean=30.0), description="Picked up -> delivered."
    )


class ShopConfig(Model):
    orders_per_hour: float = Field(60, ge=0, description="Mean order arrival rate.")
    daily_profile: list[float] = Field(
        default_factory=lambda: [1.0] * 24,
        description="24 relative weights per hour of day (normalised to mean 1).",
    )
    weekly_profile: list[float] = Field(
        default_factory=lambda: [1.0] * 7, description="7 weights, Monday first."
    )
    peak_multiplier: float = Field(1.0, gt=0, description="Multiplies the order rate.")
    arrivals_csv: str | None = Field(
        None, description="Replay order arrivals from a CSV file (path relative to the scenario "
        "file that names it): one arrival per row, seconds from the start in the first column; "
        "a header row is skipped. Replaces the Poisson process.",
    )
    status_lookups_per_order: float = Field(
        0.0, ge=0, description="Mean times a customer looks up an order's status (Poisson). "
        "Without the core each lookup is an ERP API call; with it the core answers.",
    )
    lines_per_order: Distribution = Field(default_factory=lambda: Exponential(mean=2.0),
                                          description="Lines per order (rounded, at least 1).")
    units_per_line: Distribution = Field(default_factory=lambda: Exponential(mean=3.0),
                                         description="Units per line (rounded, at least 1).")
    cancel_before_release: float = Field(
        0.0, ge=0, le=1, description="Share of orders whose customer cancels soon after "
        "placing: `cancel_delay_s` after the order is placed. Through the core the saga "
        "cancels at once if the order is not released yet, else asks the WMS (which refuses "
        "once picking has begun).")
    cancel_after_release: float = Field(
        0.0, ge=0, le=1, description="Share of orders whose customer cancels once the order "
        "reached the warehouse: `cancel_delay_s` after the WMS accepted the release. The "
        "WMS cancels if the order is not waved yet; after that the cancel is refused.")
    cancel_delay_s: Distribution = Field(
        default_factory=lambda: Exponential(mean=600.0),
        description="When a cancelling customer cancels, seconds (after placing, or after "
        "the release for `cancel_after_release`).")
    return_rate: float = Field(
        0.0, ge=0, le=1, description="Share of delivered orders that come back: the WMS "
        "receives the goods (a `return` movement: stock back on the shelf, synced to the ERP "
        "like any movement) and the ERP posts a credit memo for them.")
    return_delay_h: Distribution = Field(
        default_factory=lambda: Exponential(mean=72.0),
        description="Delivered -> the return received at the warehouse, hours.")
    return_units_share: float = Field(
        1.0, gt=0, le=1, description="Share of each shipped line's units that come back "
        "(rounded up: at least one unit of every shipped line).")

    @model_validator(mode="after")
    def _cancels(self) -> ShopConfig:
        if self.cancel_before_release + self.cancel_after_release > 1:
            raise ValueError("cancel_before_release + cancel_after_release is a share of "
                             f"orders: at most 1, got {self.cancel_before_release} + "
                             f"{self.cancel_after_release}")
        return self

    @model_validator(mode="after")
    def _profiles(self) -> ShopConfig:
        check_profiles(self.daily_profile, self.weekly_profile)
        return self


class LinkConfig(Model):
    """A network link between a system and the core (or two systems)."""

    latency_s: Distribution = Field(default_factory=lambda: Lognormal(mean=0.05, sigma=0.5),
                                    description="One-way network latency, seconds.")
    loss: float = Field(0.0, ge=0, le=1, description="Probability a message is dropped.")
    duplication: float = Field(0.0, ge=0, le=1, description="Probability it arrives twice.")
    reorder_s: float = Field(
        0.0, ge=0, description="Extra uniform random delay up to this, which reorders messages."
    )
    partitions: list[Window] = Field(default_factory=list, description="Link down windows.")


class Links(Model):
    wms_core: LinkConfig = Field(default_factory=LinkConfig,
                                 description="The WMS to the core (movements, confirmations).")
    core_erp: LinkConfig = Field(default_factory=LinkConfig,
                                 description="The core to the ERP (postings, order calls).")
    wms_erp: LinkConfig = Field(
        default_factory=LinkConfig, description="Used by direct point-to-point calls."
    )


def _one_sites_wms(system: str, warehouse: str | None) -> None:
    if warehouse is not None and system != "wms":
        raise ValueError(f"`warehouse` targets one site's WMS; system is {system!r}")


class Outage(Model):
    system: Literal["erp", "wms", "carrier", "core", "wms_core", "core_erp", "wms_erp"] = Field(
        description="A system, the core, or a link (then a partition).")
    start_h: float = Field(ge=0, description="Start, hours from the beginning of the run.")
    duration_h: float = Field(gt=0, description="Length in hours.")
    kind: Literal["down", "slow", "crash"] = Field(
        "down", description="down: unavailable; slow: latency x factor; crash: core restart."
    )
    factor: float = Field(5.0, ge=1, description="Latency multiplier for kind = slow.")
    warehouse: str | None = Field(
        None, description="For system = wms: the one site whose WMS fails (null: every site's).")

    @model_validator(mode="after")
    def _site(self) -> Outage:
        _one_sites_wms(self.system, self.warehouse)
        return self


class RandomOutages(Model):
    system: Literal["erp", "wms", "carrier", "wms_core", "core_erp", "wms_erp"] = Field(
        description="The system or link that fails at random.")
    mtbf_h: float = Field(gt=0, description="Mean time between failures, hours.")
    mttr_h: float = Field(gt=0, description="Mean time to repair, hours.")
    warehouse: str | None = Field(
        None, description="For system = wms: the one site whose WMS fails (null: every site's).")

    @model_validator(mode="after")
    def _site(self) -> RandomOutages:
        _one_sites_wms(self.system, self.warehouse)
        return self


class Faults(Model):
    outages: list[Outage] = Field(default_factory=list, description="Scheduled faults.")
    random: list[RandomOutages] = Field(default_factory=list, description="Faults drawn from "
                                        "MTBF and MTTR, each source from its own stream.")
    swarm: bool = Field(
        False, description="Draw extra fault parameters at random from the seed (swarm testing)."
    )


class Migration(Model):
    """Cut-over from one ERP to another mid-run while the WMS keeps working."""

    at_h: float = Field(ge=0, description="When the old ERP is frozen (read-only, answers 503).")
    freeze_h: float = Field(2, gt=0, description="Cut-over window until the new ERP answers.")
    snapshot_lag_min: float = Field(
        30, ge=0, description="The balance extract loaded into the new ERP was taken this long "
        "before the freeze: what the old ERP applied in between is missing in the new one.",
    )
    new_api: ApiConfig = Field(default_factory=ApiConfig, description="The new ERP's API.")


class DirectConfig(Model):
    """How a blocking caller behaves in the direct pattern."""

    timeout_s: float = Field(10, gt=0, description="How long a caller waits for an answer.")
    retries: int = Field(2, ge=0, description="Retries after the first attempt, then give up.")
    backoff_s: float = Field(2, ge=0, description="Wait between attempts, seconds.")


class BusConfig(Model):
    durable: bool = Field(False, description="SQLite-like durability: survives a core crash.")
    max_attempts: int = Field(12, ge=1, description="Deliveries tried before a dead letter.")
    initial_delay_s: float = Field(1.0, ge=0, description="First retry delay, seconds.")
    multiplier: float = Field(2.0, ge=1, description="Each retry waits this much longer.")
    max_delay_s: float = Field(300, ge=0, description="Longest retry delay, seconds.")
    jitter: float = Field(0.2, ge=0, lt=1, description="Random share of each delay (spreads "
                          "retries so they do not arrive together).")
    call_timeout_s: float = Field(10, gt=0, description="Core's timeout on a call to the ERP.")
    erp_batch_size: int = Field(
        1, ge=1, description="Movements the core posts to the ERP in one call (more than 1 "
        "needs the ERP's bulk endpoint, erp.api.bulk_max_items), as the live service does.")
    erp_batch_wait_s: float = Field(
        0.0, ge=0, description="A partial batch waits this long for more movements (0: post "
        "whatever is due at once).")
    erp_batch_calls: int = Field(
        2, ge=1, description="Bulk calls on the wire at once (the live service's ERP workers): "
        "while they are out, what becomes due gathers into the next batch.")
    erp_batch_calls_per_min: int | None = Field(
        None, ge=1, description="The core paces its bulk calls to at most this many a minute "
        "(keep it under the ERP's rate_limit_per_min so calls are not refused; null: no "
        "pacing).")


class Operations(Model):
    """What the operations team does by hand: redriving dead letters."""

    redrive: Literal["by_pattern", "never", "every", "after_recovery"] = Field(
        "by_pattern", description="Who requeues dead letters with a transient cause (the "
        "partner was down longer than the retry policy lasts): never (they stay, and count as "
        "damage); every redrive_every_min; after_recovery (redrive_after_min after an outage "
        "of the ERP or a WMS ends); by_pattern: every reconciler.interval_min when any domain "
        "is event_driven (choreography automates it), else never.")
    redrive_every_min: float = Field(30, gt=0, description="Interval for redrive = every.")
    redrive_after_min: float = Field(
        5, ge=0, description="Delay after an outage ends, for redrive = after_recovery.")


class ReconcilerConfig(Model):
    interval_min: float = Field(15, gt=0, description="Runs this often (event-driven patterns).")
    repair_after_min: float = Field(
        30, ge=0, description="A break must persist this long before it is repaired."
    )


class SystemsOfRecord(Model):
    """Which system owns each kind of record. Only `inventory` changes the model (the
    reconciler repairs toward it); the others are recorded with the results."""

    item_master: Literal["erp", "wms"] = Field("erp", description="Owner of item records.")
    customers: Literal["erp", "shop"] = Field("erp", description="Owner of customer records.")
    orders: Literal["erp", "shop"] = Field("erp", description="Owner of sales orders.")
    inventory: Literal["erp", "wms"] = Field("wms", description="Reconciler repairs toward it.")
    shipments: Literal["erp", "wms"] = Field("wms", description="Owner of shipment records.")
    invoices: Literal["erp"] = Field("erp", description="Owner of invoices.")


class MasterDataConfig(Model):
    changes_per_hour: float = Field(
        20, ge=0, description="Item master changes in the ERP (new items, attribute changes)."
    )
    full_sync_h: float = Field(
        6, gt=0, description="Scheduled full sync interval when master_data is hybrid."
    )


class Slo(Model):
    """A service level objective: a flow's latency percentile at most `max_s` seconds
    (`flow`), or any KPI at most `max` or at least `min` (`kpi`; `twin kpis` lists them).
    Unfinished work counts against both: a percentile that falls on operations that never
    finished is missed, and so is a KPI with no value (consistency never reached)."""

    flow: Literal["order_release", "inventory_sync", "ship_to_invoice", "order_to_ship",
                  "master_data_sync", "cancel_to_confirmed", "return_to_credit"] | None = Field(
        None, description="The flow whose latency percentile this SLO bounds.")
    percentile: float = Field(95, gt=0, le=100, description="Which percentile of `flow`.")
    max_s: float | None = Field(None, gt=0, description="Most seconds the percentile may be.")
    kpi: str | None = Field(None, description="The KPI this SLO bounds (unexplained_final_units, "
                            "orders_not_shipped, dead_letters_left, erp_api_calls, ...).")
    max: float | None = Field(None, description="Most the KPI may be.")
    min: float | None = Field(None, description="Least the KPI may be (for KPIs where more is "
                              "better).")
    warehouse: str | None = Field(
        None, description="Bound one site's figure only (a warehouse id): its operations' "
        "latency, or one of its own KPIs (latency, divergence, unfinished work); null: the "
        "whole landscape.")

    @model_validator(mode="after")
    def _one_kind(self) -> Slo:
        if (self.flow is None) == (self.kpi is None):
            raise ValueError("an SLO names either a `flow` (with `max_s`) or a `kpi` (with "
                             "`max` or `min`)")
        if self.flow is not None:
            if self.max_s is None:
                raise ValueError(f"the SLO on {self.flow} needs `max_s`")
            if self.max is not None or self.min is not None:
                raise ValueError("`max`/`min` belong to a `kpi` SLO; a flow's bound is `max_s`")
            return self
        if self.kpi not in KPIS or self.kpi == "slos_met":
            raise ValueError(f"unknown KPI {self.kpi!r} for an SLO; one of: "
                             + ", ".join(k for k in KPIS if k != "slos_met"))
        if (self.max is None) == (self.min is None):
            raise ValueError(f"the SLO on {self.kpi} needs exactly one of `max` and `min`")
        if self.warehouse is not None and self.kpi not in SITE_KPIS:
            raise ValueError(f"{self.kpi} is not measured per warehouse; a per-site SLO bounds "
                             "one of: " + ", ".join(SITE_KPIS))
        return self

    @property
    def name(self) -> str:
        at = "" if self.warehouse is None else f"{SITE}{self.warehouse}"
        if self.flow is not None:
            return f"{self.flow}{at} p{self.percentile:g} <= {self.max_s:g} s"
        bound = f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"
        return f"{self.kpi}{at} {bound}"


class Catalog(Model):
    skus: int = Field(2000, ge=1, description="Items in the item master, SKU-00000 up.")
    zipf_s: float = Field(1.1, gt=1, description="SKU popularity skew (Zipf exponent).")
    initial_on_hand: int = Field(500, ge=0, description="Starting stock per SKU and warehouse.")


class Scenario(Model):
    name: str = Field(description="Names the run's results folder and its rows in comparisons "
                      "(default: the file's name).")
    description: str = Field("", description="One line for the report's reader.")
    seed: int = Field(1, ge=0, description="Every random draw comes from this seed, one stream "
                      "per source: the same seed offers every pattern the same traffic.")
    duration_h: Hours = Field(24, description="Simulated hours of workload.")
    warmup_h: float = Field(0, ge=0, description="Cut from KPIs.")
    drain_h: float = Field(
        12, ge=0, description="After the workload stops, run up to this long so in-flight "
        "work settles before the checker counts lost and duplicated.",
    )
    sample_interval_s: float = Field(60, gt=0, description="Divergence sampling interval.")
    patterns: Patterns = Field(default_factory=Patterns,
        description="The integration pattern per domain.")
    catalog: Catalog = Field(default_factory=Catalog,
        description="The item master and starting stock.")
    erp: ErpConfig = Field(default_factory=ErpConfig, description="The ERP and its API.")
    warehouses: list[WarehouseConfig] = Field(
        default_factory=lambda: [WarehouseConfig(id="WH1")], min_length=1,
        description="The sites: owned DCs and 3PLs, each with its movement stream and staff.")
    carrier: CarrierConfig = Field(default_factory=CarrierConfig,
        description="The carrier's label API and transit.")
    shop: ShopConfig = Field(default_factory=ShopConfig,
        description="The web shop's orders: rate, profiles, content.")
    links: Links = Field(default_factory=Links,
        description="Network links: latency, loss, duplication, partitions.")
    faults: Faults = Field(default_factory=Faults, description="Outages, scheduled and random.")
    direct: DirectConfig = Field(default_factory=DirectConfig,
        description="How blocking callers behave in the direct pattern.")
    bus: BusConfig = Field(default_factory=BusConfig,
        description="The core's event bus: durability and retry policy.")
    reconciler: ReconcilerConfig = Field(default_factory=ReconcilerConfig,
        description="How often stock is compared and repaired.")
    operations: Operations = Field(default_factory=Operations,
        description="What people do by hand: the dead-letter redrive policy.")
    system_of_record: SystemsOfRecord = Field(default_factory=SystemsOfRecord,
        description="Which system owns each kind of record.")
    slos: list[Slo] = Field(default_factory=list,
        description="Service levels the report checks: latency percentiles or any KPI.")
    migration: Migration | None = Field(None, description="An ERP cut-over mid-run (null: none).")
    master_data: MasterDataConfig = Field(default_factory=MasterDataConfig,
        description="Item master changes and their sync.")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.warmup_h >= self.duration_h:
            raise ValueError(f"warmup_h ({self.warmup_h}) must be shorter than duration_h")
        bulk = self.erp.api.bulk_max_items
        if self.bus.erp_batch_size > 1 and (bulk is None or bulk < self.bus.erp_batch_size):
            raise ValueError(f"bus.erp_batch_size = {self.bus.erp_batch_size} needs an ERP bulk "
                             f"endpoint that takes as many (erp.api.bulk_max_items is {bulk})")
        ids = [w.id for w in self.warehouses]
        if len(set(ids)) != len(ids):
            raise ValueError(f"warehouse ids must be unique, got {ids}")
        targets = [(f"slos.{i}", x.warehouse) for i, x in enumerate(self.slos)]
        targets += [(f"faults.outages.{i}", x.warehouse)
                    for i, x in enumerate(self.faults.outages)]
        targets += [(f"faults.random.{i}", x.warehouse) for i, x in enumerate(self.faults.random)]
        unknown = [f"{where}.warehouse = {site!r}" for where, site in targets
                   if site is not None and site not in ids]
        if unknown:
            raise ValueError("no such warehouse (" + ", ".join(ids) + "): " + "; ".join(unknown))
        edi = [f"warehouses.{i}.edi" for i, w in enumerate(self.warehouses) if w.edi]
        if edi and self.patterns.resolved("inventory") is Pattern.DIRECT:
            raise ValueError(f"{', '.join(edi)}: EDI interchanges go to the core, and "
                             "patterns.inventory = direct has none in the path")
        if not any(w.order_weight > 0 for w in self.warehouses):
            raise ValueError("warehouses: at least one order_weight must be positive (orders "
                             "need a site)")
        # A window that begins after the run ends would be silently ignored: name it.
        starts = [(f"faults.outages.{i}", o.start_h) for i, o in enumerate(self.faults.outages)]
        starts += [(f"erp.api.maintenance.{i}", w.start_h)
                   for i, w in enumerate(self.erp.api.maintenance)]
        starts += [(f"erp.batch_posting_runs.{i}", w.start_h)
                   for i, w in enumerate(self.erp.batch_posting_runs)]
        starts += [(f"warehouses.{j}.api.maintenance.{i}", w.start_h)
                   for j, wh in enumerate(self.warehouses)
                   for i, w in enumerate(wh.api.maintenance)]
        starts += [(f"links.{name}.partitions.{i}", w.start_h)
                   for name in ("wms_core", "core_erp", "wms_erp")
                   for i, w in enumerate(getattr(self.links, name).partitions)]
        if self.migration is not None:
            starts.append(("migration.at_h", self.migration.at_h))
        late = [f"{where} starts at {h:g} h" for where, h in starts if h >= self.duration_h]
        if late:
            raise ValueError(f"outside the run (duration_h = {self.duration_h:g}): "
                             + "; ".join(late))
        return self

    @property
    def duration_s(self) -> float:
        return self.duration_h * 3600

    def redrive(self) -> Redrive:
        """The dead-letter redrive policy in force (`operations.redrive` resolved)."""
        ops = self.operations
        kind = ops.redrive
        every_s = ops.redrive_every_min * 60
        if kind == "by_pattern":
            auto = any(self.patterns.resolved(d) is Pattern.EVENT_DRIVEN for d in DOMAINS)
            kind, every_s = ("every", self.reconciler.interval_min * 60) if auto else (
                "never", every_s)
        return Redrive(When(kind), every_s=every_s, after_s=ops.redrive_after_min * 60)


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


APPEND = "+"
"""A key ending in it appends to the parent's list instead of replacing it:
`[[faults."outages+"]]` adds an outage to those the `extends` file declares."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: tables merge key by key, anything else (lists included)
    replaces, except lists under a key ending in `APPEND`, which extend the parent's."""
    out = dict(base)
    for k, v in over.items():
        if k.endswith(APPEND) and isinstance(v, list):
            name = k[: -len(APPEND)]
            parent = out.get(name, [])
            out[name] = [*(parent if isinstance(parent, list) else [parent]), *v]
        elif isinstance(v, dict):
            out[k] = _merge(out[k] if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out


def _raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise ScenarioError(f"{path}: extends forms a cycle: {chain}")
    try:
        raw = path.read_bytes()
        if b"\0" in raw[:8192]:
            raise ScenarioError(f"{path}: a binary file, not a scenario (TOML text)")
        text = raw.decode("utf-8")
        # JSON: a resolved scenario an experiment saved so a failed run can be replayed.
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: a directory, not a scenario file") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start}): a scenario is a "
                            "TOML text file") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ScenarioError(f"{path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a table of fields, got {type(data).__name__}")
    shop = data.get("shop")
    if isinstance(shop, dict) and isinstance(shop.get("arrivals_csv"), str):
        shop["arrivals_csv"] = str(path.parent / shop["arrivals_csv"])  # relative to this file
    parent = data.pop("extends", None)
    if parent is None:
        return _merge({}, data)  # an APPEND key with no parent: just its list
    if not isinstance(parent, str):
        raise ScenarioError(f"{path}: field 'extends': expected a file name, got {parent!r}")
    if not (path.parent / parent).is_file():
        raise ScenarioError(f"{path}: field 'extends': no scenario file {parent!r} (looked for "
                            f"{(path.parent / parent).resolve()})")
    return _merge(_raw(path.parent / parent, (*seen, path)), data)


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names the model at `loc` (a validation error's path) accepts."""
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        for arg in getattr(model, "__args__", ()):  # list[X], X | None: the model inside
            if hasattr(arg, "model_fields"):
                model = arg
    return list(getattr(model, "model_fields", {}))


def _problem(e: Any) -> str:
    loc = tuple(e["loc"])
    where = ".".join(str(p) for p in loc) or "(the scenario as a whole)"
    if e["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; known here: {', '.join(known)}" if known else "")
        return f"  field '{where}': unknown field{hint}"
    got = e.get("input")
    # A scalar says what was wrong; a table or list (the whole scenario, for a check across
    # fields) would bury the message.
    shown = (f" (got {got!r})" if e["type"] != "missing" and not isinstance(got, dict | list)
             and len(repr(got)) <= 80 else "")
    return f"  field '{where}': {e['msg'].removeprefix('Value error, ')}{shown}"


def load(path: str | Path, **overrides: Any) -> Scenario:
    """Load and validate a scenario file (following `extends`); `overrides` replace
    top-level fields (for sweeps and tests)."""
    path = Path(path)
    data = _merge(_raw(path), overrides)
    data.setdefault("name", path.stem)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "\n".join(_problem(e) for e in exc.errors())
        raise ScenarioError(f"{path}: invalid scenario:\n{problems}") from None


def json_schema() -> dict[str, Any]:
    return Scenario.model_json_schema()
