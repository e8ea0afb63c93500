from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from integration_core.edi import parse
from integration_core.feed import EdiOutcome, Verdict
from sim.scenario import Scenario, ScenarioError, load
from sim.twin import RunResult, Twin

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
HALF_HOUR = 1800.0


def scenario(edi: dict[str, Any] | None = None, hours: float = 3, **kw: Any) -> Scenario:
    """A DC and a 3PL (over EDI with `edi`), no orders: the movement streams only."""
    tpl: dict[str, Any] = {"id": "3PL-EAST", "operator": "3pl", "movements_per_hour": 600}
    if edi is not None:
        tpl["edi"] = edi
    return Scenario.model_validate({
        "name": "edi", "seed": 7, "duration_h": hours, "drain_h": 12,
        "catalog": {"skus": 200}, "shop": {"orders_per_hour": 0},
        "patterns": {"inventory": "event_driven"},
        "warehouses": [{"id": "DC1", "movements_per_hour": 600}, tpl], **kw,
    })


class Spy:
    """Every interchange the core received: when, its ISA13, document type and verdict."""

    def __init__(self, twin: Twin) -> None:
        self.seen: list[tuple[float, int, str, Verdict]] = []
        self.refused = 0
        """Copies that arrived while the core was down (no reply)."""
        core = twin.core
        accept = core.accept_interchange

        def spy(raw: bytes, source: str) -> EdiOutcome | None:
            out = accept(raw, source)
            ic = parse(raw).interchange
            assert ic is not None
            if out is None:
                self.refused += 1
                return out
            codes = {ts.code for g in ic.groups for ts in g.sets}
            assert len(codes) == 1, "one document type per interchange"
            self.seen.append((twin.env.now, int(ic.control), codes.pop(), out.verdict))
            return out

        core.accept_interchange = spy  # type: ignore[method-assign]

    def verdicts(self) -> list[Verdict]:
        return [v for *_, v in self.seen]


def run(sc: Scenario) -> tuple[Twin, RunResult, Spy]:
    twin = Twin(sc)
    spy = Spy(twin)
    return twin, twin.run(), spy


def site_sync(r: RunResult, site: int) -> npt.NDArray[np.float64]:
    lat = r.latency["inventory_sync"]
    return np.asarray(lat[r.latency_site["inventory_sync"] == site], dtype=np.float64)


def assert_every_movement_applied_once(r: RunResult) -> None:
    assert r.check["lost"] == 0 and r.check["duplicated"] == 0
    assert r.counts["movements_applied_in_erp"] == r.counts["movements_generated"]
    assert r.counts["movements_acknowledged"] == r.counts["movements_generated"]


def test_interchanges_go_out_once_per_interval_one_per_document_type() -> None:
    twin, r, spy = run(scenario({"interval_min": 30}, hours=2))
    assert spy.seen, "the 3PL sent nothing"
    ticks = {round(t // HALF_HOUR) for t, *_ in spy.seen}
    # Sent on the half hour; the wms_core link adds well under a minute.
    assert all(t % HALF_HOUR < 60 for t, *_ in spy.seen)
    assert ticks == {1, 2, 3, 4}
    per_tick = {tk: sorted(c for t, _, c, _ in spy.seen if t // HALF_HOUR == tk) for tk in ticks}
    assert all(codes == sorted(set(codes)) for codes in per_tick.values())
    assert {c for *_, c, _ in spy.seen} == {"943", "944", "947"}
    assert r.counts["edi_interchanges_sent"] == len(spy.seen)
    assert len({ctl for _, ctl, *_ in spy.seen}) == len(spy.seen)  # a new ISA13 each
    assert set(spy.verdicts()) == {Verdict.ACCEPTED}
    assert r.counts["edi_interchanges_resent"] == r.counts["edi_997_missing"] == 0
    assert_every_movement_applied_once(r)
    assert twin.inventory.edi[1].settled()


def test_missing_997s_are_resent_and_the_core_applies_each_movement_once() -> None:
    sc = scenario({"interval_min": 20, "ack_missing_p": 0.4, "resend_after_min": 30,
                   "resend_max": 20}, hours=4)
    _, r, spy = run(sc)
    c = r.counts
    assert c["edi_997_missing"] >= 5
    # Nothing else is lost on the way (no link loss, the core is up): each missing reply is
    # one resend of the same bytes, which the core recognises as a duplicate.
    assert c["edi_interchanges_resent"] == c["edi_997_missing"]
    assert c["edi_duplicates_recognised"] == c["edi_interchanges_resent"]
    assert spy.verdicts().count(Verdict.DUPLICATE) == c["edi_duplicates_recognised"]
    assert len(spy.seen) == c["edi_interchanges_sent"] + c["edi_interchanges_resent"]
    assert c["edi_interchanges_given_up"] == 0
    assert_every_movement_applied_once(r)


def test_duplicated_and_lost_copies_on_the_van_apply_nothing_twice() -> None:
    sc = scenario({"interval_min": 20, "ack_missing_p": 0.2, "resend_after_min": 30,
                   "resend_max": 20}, hours=4,
                  links={"wms_core": {"loss": 0.2, "duplication": 0.3}})
    _, r, spy = run(sc)
    # A copy doubled on the VAN is a duplicate too, and so is a resend of a lost reply.
    assert r.counts["edi_duplicates_recognised"] > r.counts["edi_interchanges_resent"] > 0
    assert spy.verdicts().count(Verdict.DUPLICATE) == r.counts["edi_duplicates_recognised"]
    assert r.extras["links"]["link_wms_core_lost"] > 0
    assert_every_movement_applied_once(r)


def test_rejected_interchanges_are_sent_again_corrected_and_end_applied() -> None:
    sc = scenario({"interval_min": 20, "reject_p": 0.4, "resend_after_min": 30}, hours=4)
    twin, r, spy = run(sc)
    c = r.counts
    rejected = [ctl for _, ctl, _, v in spy.seen if v is Verdict.REJECTED]
    assert len(rejected) >= 4 and c["edi_interchanges_rejected"] == len(rejected)
    # Each rejection read is acted on once, under a new ISA13 that the core accepts.
    assert c["edi_interchanges_corrected"] == len(rejected)
    accepted = {ctl for _, ctl, _, v in spy.seen if v is Verdict.ACCEPTED}
    assert not accepted & set(rejected)
    assert len(accepted) == c["edi_interchanges_sent"] - len(rejected)
    # The defects went to the dead letters with the raw interchange, for the audit; the 3PL
    # was told and corrected them, so they are no letter left for our side (nor damage).
    letters = twin.core.engine.dead_letters()
    assert len(letters) == len(rejected)
    assert all(dl.raw and dl.raw.startswith("ISA") for dl in letters)
    assert c["dead_letters_left"] == 0
    assert_every_movement_applied_once(r)


def test_a_3pl_that_hears_nothing_gives_up_and_what_never_arrived_is_lost_to_the_erp() -> None:
    # The link is down until an hour after the workload: every send and resend of the 3PL
    # (at 30 and 60 minutes, resent 10 and 20 minutes later) is lost; the DC's outbox gets
    # through once it is up.
    sc = scenario({"interval_min": 30, "resend_after_min": 10, "resend_max": 2}, hours=1,
                  links={"wms_core": {"partitions": [{"start_h": 0, "duration_h": 2}]}})
    _, r, spy = run(sc)
    c = r.counts
    assert not spy.seen
    assert c["edi_interchanges_given_up"] == c["edi_interchanges_sent"] > 0
    assert c["edi_interchanges_resent"] == 2 * c["edi_interchanges_sent"]
    dc = r.extras["sites"]["DC1"]
    assert c["movements_applied_in_erp"] == dc["movements_generated"]
    assert c["edi_movements_given_up"] == r.extras["sites"]["3PL-EAST"]["movements_generated"]
    assert r.check["lost"] == 0  # never acknowledged: given up, not lost by the checker


def test_the_edi_sites_sync_latency_is_the_interval_not_the_link() -> None:
    fast = run(scenario({"interval_min": 10}))[1]
    slow = run(scenario({"interval_min": 30}))[1]
    for r, every in ((fast, 600.0), (slow, 1800.0)):
        x = site_sync(r, 1)
        # A movement waits for the next send: uniform over the interval, the median half of it.
        assert 0.4 * every < float(np.median(x)) < 0.6 * every
        assert float(x.max()) < every + 120
        assert float(np.median(site_sync(r, 0))) < 10  # the DC posts as it goes
    # The same traffic: the DC's figures do not depend on the 3PL's schedule.
    assert fast.counts["movements_generated"] == slow.counts["movements_generated"]


def test_file_drops_are_taken_on_the_cores_poll() -> None:
    sc = scenario({"transport": "file", "interval_min": 30, "poll_min": 7}, hours=2,
                  links={"wms_core": {"loss": 0.5}})
    _, r, spy = run(sc)
    assert spy.seen and all(abs(t / 420 - round(t / 420)) < 1e-9 for t, *_ in spy.seen)
    assert r.counts["edi_interchanges_resent"] == 0
    assert_every_movement_applied_once(r)


def test_a_core_crash_with_a_durable_store_still_recognises_resent_interchanges() -> None:
    sc = scenario({"interval_min": 20, "ack_missing_p": 0.3, "resend_after_min": 30,
                   "resend_max": 20}, hours=4, bus={"durable": True},
                  faults={"outages": [{"system": "core", "kind": "crash", "start_h": 1.5,
                                       "duration_h": 0.5}]})
    _, r, spy = run(sc)
    assert r.counts["core_crashes"] == 1 and spy.refused > 0
    assert r.counts["edi_duplicates_recognised"] > 0
    assert_every_movement_applied_once(r)


def test_without_edi_the_3pl_posts_over_the_api_and_no_edi_counts_appear() -> None:
    _, r, spy = run(scenario(None, hours=1))
    assert not spy.seen and not any(k.startswith("edi_") for k in r.counts)
    assert float(np.median(site_sync(r, 1))) < 10


@pytest.mark.parametrize(
    ("edi", "extra", "field", "message"),
    [
        ({"reject_p": 1.0}, {}, "warehouses.1.edi.reject_p", "less than 1"),
        ({"ack_missing_p": -0.1}, {}, "warehouses.1.edi.ack_missing_p", "greater than or equal"),
        ({"interval_min": 0}, {}, "warehouses.1.edi.interval_min", "greater than 0"),
        ({"transport": "ftp"}, {}, "warehouses.1.edi.transport", "'van' or 'file'"),
        ({"resend_afer_min": 5}, {}, "warehouses.1.edi.resend_afer_min",
         "did you mean 'resend_after_min'"),
        ({}, {"batch_minutes": 30}, "warehouses.1", "edi and batch_minutes are both set"),
    ],
)
def test_bad_edi_settings_name_the_field(tmp_path: Path, edi: dict[str, Any],
                                         extra: dict[str, Any], field: str,
                                         message: str) -> None:
    def toml(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in d.items())

    p = tmp_path / "x.toml"
    p.write_text('[[warehouses]]\nid = "DC1"\n[[warehouses]]\nid = "3PL"\n'
                 + "".join(f"{k} = {v}\n" for k, v in extra.items())
                 + f"edi = {{ {toml(edi)} }}\n")
    with pytest.raises(ScenarioError) as err:
        load(p)
    text = str(err.value)
    assert f"field '{field}'" in text and message in text and str(p) in text


def test_edi_needs_the_core_in_the_inventory_path(tmp_path: Path) -> None:
    p = tmp_path / "x.toml"
    p.write_text('[patterns]\ninventory = "direct"\n[[warehouses]]\nid = "3PL"\nedi = {}\n')
    with pytest.raises(ScenarioError, match=r"warehouses\.0\.edi: EDI interchanges go to the "
                       r"core, and patterns\.inventory = direct"):
        load(p)


def test_the_shipped_3pl_scenarios_differ_only_in_the_3pls_transport() -> None:
    edi, api = load(SCENARIOS / "3pl_edi.toml"), load(SCENARIOS / "3pl_api.toml")
    assert api.warehouses[1].edi is None and edi.warehouses[1].edi is not None
    a, b = edi.model_dump(), api.model_dump()
    for d in (a, b):
        for k in ("name", "description"):
            d.pop(k)
        d["warehouses"][1].pop("edi")
    assert a == b
    assert any(s.warehouse == "3PL-EAST" for s in api.slos)  # a per-site SLO


def test_the_shipped_3pl_scenarios_show_the_van_delay_at_the_3pl_only() -> None:
    from sim.metrics import summary
    from sim.twin import run as run_twin

    edi = summary(run_twin(load(SCENARIOS / "3pl_edi.toml", duration_h=3, warmup_h=0,
                                faults={"outages": []})))
    api = summary(run_twin(load(SCENARIOS / "3pl_api.toml", duration_h=3, warmup_h=0,
                                faults={"outages": []})))
    assert edi["extras"]["offered"] == api["extras"]["offered"]  # the same traffic
    for s in (edi, api):
        assert s["lost"] == 0 and s["duplicated"] == 0
    sync = {n: s["warehouses"]["3PL-EAST"]["latency"]["inventory_sync"]["p50"]
            for n, s in (("edi", edi), ("api", api))}
    assert sync["edi"] > 300 > 10 > sync["api"]
    assert (edi["warehouses"]["3PL-EAST"]["divergence"]["mean_units"]
            > 3 * api["warehouses"]["3PL-EAST"]["divergence"]["mean_units"])
    assert edi["counts"]["edi_interchanges_sent"] >= 6


def test_an_edi_run_replays_exactly_from_its_seed() -> None:
    sc = scenario({"interval_min": 20, "ack_missing_p": 0.3, "reject_p": 0.3,
                   "resend_after_min": 30}, hours=2, links={"wms_core": {"duplication": 0.2}})
    (_, a, sa), (_, b, sb) = run(sc), run(sc)
    assert a.counts == b.counts and sa.seen == sb.seen
    assert np.array_equal(a.latency["inventory_sync"], b.latency["inventory_sync"])
    other = run(sc.model_copy(update={"seed": 8}))[2]
    assert other.seen != sa.seen
