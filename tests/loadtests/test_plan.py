"""Load plans (loadtests/plan.py): the files, their errors, the rate over time, the seeded
arrival schedules and the fault schedule. Never imports locust."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.plan import (
    DEFAULT_PLAN,
    LINKS,
    SHAPES,
    Fault,
    LinkEvent,
    LinkFault,
    Plan,
    PlanError,
    arrivals,
    load_plan,
    user_arrivals,
    user_rng,
)
from loadtests.proxy import (
    KINDS,
    Bandwidth,
    CloseAfterForward,
    Down,
    Latency,
    LimitData,
    ProxyStats,
    ResetPeer,
    Timeout,
    ToxicStats,
)
from loadtests.run import link_checks, link_seeds
from loadtests.thresholds import DEFAULT_THRESHOLDS, load_thresholds

REPO = Path(__file__).parents[2]


def plan(*stages: dict[str, object], **extra: object) -> Plan:
    return Plan.model_validate({"stages": list(stages), **extra})


def write(tmp_path: Path, text: str, name: str = "plan.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- the shipped files ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "ramp", "spike", "soak"])
def test_shipped_shapes_load(name: str) -> None:
    p = load_plan(SHAPES / f"{name}.toml")
    assert p.description and p.duration_s > 0 and p.users > 0
    assert all(f.system == "erp" and f.mode in ("down",) for f in p.partner_faults)
    assert p.link_faults == []


def test_default_plan_is_what_make_loadtest_ran() -> None:
    p = load_plan(DEFAULT_PLAN)
    assert p.duration_s == 60 and p.users == 30
    assert [p.rate(t) for t in (0, 30, 59.9)] == [300, 300, 300]
    assert p.fault_events()[0].at_s == 20 and p.fault_events()[0].body == {"mode": "down"}
    assert p.fault_events()[1].at_s == 28 and p.fault_events()[1].body == {"mode": "up"}


def test_the_shapes_have_their_shape() -> None:
    ramp = load_plan(SHAPES / "ramp.toml")
    assert ramp.rate(5) == 100 and ramp.rate(50) == pytest.approx(450) and ramp.rate(95) == 800
    spike = load_plan(SHAPES / "spike.toml")
    assert (spike.rate(19.9), spike.rate(20), spike.rate(29.9), spike.rate(30)) == (
        100, 800, 800, 100)
    soak = load_plan(SHAPES / "soak.toml")
    assert soak.duration_s >= 1800 and len(soak.faults) == 2


# -- errors name the file and the field ----------------------------------------------------

GOOD_STAGE = "[[stages]]\nduration_s = 10\nrate_per_s = 5\n"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD_STAGE * 2 + "[[stages]]\nduration_s = 10\nrate_per_s = 0\n",
     "stages[2].rate_per_s: must be > 0, got 0"),
    ("[[stages]]\nduration_s = -1\nrate_per_s = 5\n",
     "stages[0].duration_s: must be > 0, got -1"),
    ("[[stages]]\nrate_per_s = 5\n", "stages[0].duration_s: required"),
    (GOOD_STAGE + "rampe = true\n", "stages[0].rampe: unknown field"),
    (GOOD_STAGE + 'ramp = "yes"\n', "stages[0].ramp: Input should be a valid boolean"),
    ("users = 0\n" + GOOD_STAGE, "users: must be > 0, got 0"),
    ("users = 3\n", "stages: required"),
    ("stages = []\n", "stages: needs at least 1 item(s)"),
    (GOOD_STAGE + '[[faults]]\nat_s = 5\nfor_s = 6\nsystem = "erp"\nmode = "down"\n',
     "faults[0]: ends at 11 s, after the plan (10 s)"),
    (GOOD_STAGE + '[[faults]]\nat_s = 1\nfor_s = 2\nsystem = "crm"\nmode = "down"\n',
     "faults[0].system: Input should be 'erp' or 'wms'"),
    (GOOD_STAGE + '[[faults]]\nat_s = 1\nfor_s = 2\nsystem = "erp"\nmode = "slow"\n',
     "faults[0]: latency_s: required when mode = 'slow'"),
    (GOOD_STAGE + '[[faults]]\nat_s = 1\nfor_s = 2\nsystem = "erp"\nmode = "down"\n'
     "failure_rate = 0.5\n", "faults[0]: failure_rate: only allowed when mode = 'flaky'"),
    (GOOD_STAGE + '[[faults]]\nat_s = 1\nfor_s = 2\nsystem = "wms"\nmode = "flaky"\n'
     "failure_rate = 1.5\n", "faults[0].failure_rate: must be <= 1, got 1.5"),
    (GOOD_STAGE + '[[faults]]\nat_s = 1\nfor_s = 4\nsystem = "erp"\nmode = "down"\n'
     '[[faults]]\nat_s = 4\nfor_s = 2\nsystem = "erp"\nmode = "down"\n',
     "faults[1]: overlaps faults[0] on system 'erp'"),
    ("[[stages]\n", "not valid TOML"),
])
def test_errors_name_the_file_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PlanError) as e:
        load_plan(path)
    assert str(e.value).startswith(f"{path}: ")
    assert expected in str(e.value)


def test_every_error_is_reported_one_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, "users = -1\n[[stages]]\nduration_s = 0\nrate_per_s = -2\n")
    with pytest.raises(PlanError) as e:
        load_plan(path)
    lines = str(e.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "users", "stages[0].duration_s", "stages[0].rate_per_s"]


def test_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read the plan"):
        load_plan(tmp_path / "nope.toml")


def test_faults_of_different_systems_may_overlap_and_windows_may_touch() -> None:
    p = plan({"duration_s": 30, "rate_per_s": 1}, faults=[
        {"at_s": 5, "for_s": 10, "system": "erp", "mode": "down"},
        {"at_s": 5, "for_s": 10, "system": "wms", "mode": "slow", "latency_s": 0.5},
        {"at_s": 15, "for_s": 15, "system": "erp", "mode": "flaky", "failure_rate": 0.2},
    ])
    assert len(p.faults) == 3


# -- the rate over time --------------------------------------------------------------------


def test_rate_is_piecewise_with_ramps_from_the_previous_rate() -> None:
    p = plan({"duration_s": 10, "rate_per_s": 100, "ramp": True},   # 0 -> 100 over [0, 10)
             {"duration_s": 10, "rate_per_s": 50},                  # flat 50 over [10, 20)
             {"duration_s": 20, "rate_per_s": 250, "ramp": True})   # 50 -> 250 over [20, 40)
    assert p.duration_s == 40 and p.peak_rate_per_s == 250
    assert p.rate(0) == 0 and p.rate(5) == pytest.approx(50) and p.rate(9.999) < 100
    assert p.rate(10) == 50 and p.rate(19.999) == 50
    assert p.rate(20) == 50 and p.rate(30) == pytest.approx(150)
    assert p.rate(39) == pytest.approx(240)
    assert p.rate(40) == 0 and p.rate(-0.1) == 0 and p.rate(1e9) == 0
    # the integral: trapezoids and rectangles, and any prefix of them
    assert p.expected_arrivals() == pytest.approx(10 * 50 + 10 * 50 + 20 * 150)
    assert p.expected_arrivals(5) == pytest.approx(5 * 25)
    assert p.expected_arrivals(30) == pytest.approx(500 + 500 + 10 * 100)
    assert p.mean_rate_per_s == pytest.approx(4000 / 40)
    steps = 40_000  # and it is the integral of rate(t) (midpoint rule)
    numeric = sum(p.rate((i + 0.5) * 40 / steps) for i in range(steps)) * 40 / steps
    assert p.expected_arrivals() == pytest.approx(numeric, rel=1e-6)


def test_a_flat_stage_after_a_ramp_jumps() -> None:
    p = plan({"duration_s": 5, "rate_per_s": 10}, {"duration_s": 5, "rate_per_s": 30})
    assert (p.rate(4.99), p.rate(5)) == (10, 30)


# -- the arrivals --------------------------------------------------------------------------


def test_thinning_offers_about_the_planned_number_of_requests() -> None:
    p = plan({"duration_s": 20, "rate_per_s": 50},
             {"duration_s": 40, "rate_per_s": 400, "ramp": True},
             {"duration_s": 20, "rate_per_s": 100}, users=25)
    times = sorted(t for u in range(p.users) for t in user_arrivals(p, 0, u))
    expected = p.expected_arrivals()  # 1000 + 9000 + 2000
    assert abs(len(times) - expected) < 4 * math.sqrt(expected)  # Poisson: sd = sqrt(mean)
    assert times[0] > 0 and times[-1] < p.duration_s
    for lo, hi in [(0, 20), (20, 40), (40, 60), (60, 80)]:  # and they follow the rate
        want = p.expected_arrivals(hi) - p.expected_arrivals(lo)
        got = sum(lo <= t < hi for t in times)
        assert abs(got - want) < 4 * math.sqrt(want), (lo, hi, got, want)


def test_one_user_gets_its_share_of_the_rate() -> None:
    p = plan({"duration_s": 100, "rate_per_s": 300}, users=30)
    n = [sum(1 for _ in user_arrivals(p, 0, u)) for u in range(30)]
    assert abs(sum(n) / 30 - 1000) < 4 * math.sqrt(1000 / 30)
    assert abs(sum(1 for _ in arrivals(p, user_rng(0, 0, 0), share=0.5)) - 15_000) < 500
    assert list(arrivals(p, user_rng(0, 0, 0), share=0)) == []


def test_schedules_are_deterministic_per_seed_worker_and_user() -> None:
    p = plan({"duration_s": 5, "rate_per_s": 40, "ramp": True}, users=4, seed=7)
    first = list(user_arrivals(p, 1, 2))
    assert first and first == list(user_arrivals(p, 1, 2))
    assert first == sorted(first)
    others = [list(user_arrivals(p, w, u)) for w, u in [(1, 3), (0, 2), (2, 2)]]
    assert all(o != first for o in others)  # another user or another worker
    reseeded = p.with_overrides(seed=8)
    assert list(user_arrivals(reseeded, 1, 2)) != first
    assert user_rng(7, 1, 2, "work").random() != user_rng(7, 1, 2).random()


# -- faults --------------------------------------------------------------------------------


def test_fault_events_start_and_end_each_window_in_time_order() -> None:
    p = plan({"duration_s": 60, "rate_per_s": 1}, faults=[
        {"at_s": 30, "for_s": 10, "system": "erp", "mode": "flaky", "failure_rate": 0.25},
        {"at_s": 5, "for_s": 25, "system": "erp", "mode": "down"},
        {"at_s": 10, "for_s": 5, "system": "wms", "mode": "slow", "latency_s": 1.5},
    ])
    assert [(e.at_s, e.system, e.body) for e in p.fault_events()] == [
        (5, "erp", {"mode": "down"}),
        (10, "wms", {"mode": "slow", "latency_s": 1.5}),
        (15, "wms", {"mode": "up"}),
        (30, "erp", {"mode": "up"}),  # the end of one window before the next starts
        (30, "erp", {"mode": "flaky", "failure_rate": 0.25}),
        (40, "erp", {"mode": "up"}),
    ]


# -- the run's command-line overrides ------------------------------------------------------


def test_overrides_as_the_notebook_test_uses_them() -> None:
    p = load_plan(DEFAULT_PLAN).with_overrides(duration_s=6, rate_per_s=40, outage=(2, 2))
    assert (p.duration_s, p.peak_rate_per_s, p.users) == (6, 40, 30)
    assert [(e.at_s, e.body["mode"]) for e in p.fault_events()] == [(2, "down"), (4, "up")]
    assert "overridden" in p.description


def test_overrides_take_missing_values_from_the_plan() -> None:
    base = load_plan(DEFAULT_PLAN)
    assert base.with_overrides(duration_s=60) == base.with_overrides(duration_s=60) != base
    longer = base.with_overrides(duration_s=90)
    assert (longer.duration_s, longer.peak_rate_per_s) == (90, 300)
    moved = base.with_overrides(outage=(30, None))
    assert (moved.faults[0].at_s, moved.faults[0].for_s) == (30, 8)
    assert base.with_overrides(outage=(None, 0)).faults == []
    assert base.with_overrides(users=7, seed=3).users == 7


def test_an_override_that_breaks_the_plan_says_so() -> None:
    with pytest.raises(PlanError, match=r"faults\[0\]: ends at 28 s, after the plan \(6 s\)"):
        load_plan(DEFAULT_PLAN).with_overrides(duration_s=6)
    with pytest.raises(PlanError, match="rate_per_s: must be > 0"):
        load_plan(DEFAULT_PLAN).with_overrides(rate_per_s=0)


def test_the_json_the_run_writes_reads_back_the_same(tmp_path: Path) -> None:
    p = load_plan(SHAPES / "spike.toml").with_overrides(users=12)
    path = write(tmp_path, p.model_dump_json(), "plan.json")
    assert load_plan(path) == p


def test_the_plan_thresholds_and_run_modules_never_import_locust() -> None:
    code = ("import sys, loadtests.plan, loadtests.thresholds, loadtests.run\n"
            "assert not {'locust', 'gevent'} & set(sys.modules), 'locust imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# -- network faults on the links (the fault proxy's toxics) --------------------------------

LINK = '[[faults]]\nat_s = 1\nfor_s = 2\nlink = "erp"\n'


def test_the_faults_plan_puts_every_toxic_on_both_links() -> None:
    p = load_plan(SHAPES / "faults.toml")
    assert p.description and 60 <= p.duration_s <= 90 and p.partner_faults == []
    assert p.links == ["erp", "wms"]
    for link in p.links:
        kinds = {f.kind for f in p.link_faults if f.link == link}
        assert kinds == set(KINDS), link
    last = max(f.until_s for f in p.link_faults)
    assert p.duration_s - last >= 10  # load goes on after the last fault, then the drain
    events = p.link_events()
    assert len(events) == 2 * len(p.link_faults)
    assert [e.at_s for e in events] == sorted(e.at_s for e in events)
    assert all(isinstance(f.toxic, (Latency, Bandwidth, Timeout, ResetPeer, CloseAfterForward,
                                    LimitData, Down)) for f in p.link_faults)


def test_a_link_fault_carries_its_toxic() -> None:
    p = plan({"duration_s": 30, "rate_per_s": 1}, faults=[
        {"at_s": 2, "for_s": 3, "link": "wms", "kind": "reset_peer", "toxicity": 0.3,
         "scope": "exchange", "stream": "downstream"},
        {"at_s": 1, "for_s": 4, "link": "erp", "kind": "latency", "latency_ms": 100,
         "jitter_ms": 20},
        {"at_s": 5, "for_s": 2, "link": "erp", "kind": "down"},
    ])
    assert [type(f) for f in p.faults] == [LinkFault, LinkFault, LinkFault]
    reset = ResetPeer(toxicity=0.3, scope="exchange", stream="downstream")
    assert [f.toxic for f in p.link_faults] == [reset, Latency(latency_ms=100, jitter_ms=20),
                                                Down()]
    assert p.links == ["erp", "wms"] and p.fault_events() == []
    assert p.link_events() == [
        LinkEvent(1, "erp", "latency", Latency(latency_ms=100, jitter_ms=20)),
        LinkEvent(2, "wms", "reset_peer", reset),
        LinkEvent(5, "wms", "reset_peer", None),  # at a tie, off before on (in plan order)
        LinkEvent(5, "erp", "latency", None),
        LinkEvent(5, "erp", "down", Down()),
        LinkEvent(7, "erp", "down", None),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    (LINK + 'kind = "latency"\n', "faults[0]: latency_ms: required"),
    (LINK + 'kind = "latency"\nlatency_ms = -5\n', "faults[0]: latency_ms: must be >= 0, got -5"),
    (LINK + 'kind = "reset_peer"\nlatency_ms = 5\n', "faults[0]: latency_ms: unknown field"),
    (LINK + 'kind = "reset_peer"\ntoxicity = 1.5\n', "faults[0]: toxicity: must be <= 1, got 1.5"),
    (LINK + 'kind = "down"\nscope = "exchange"\n', "faults[0]: scope: Input should be"),
    (LINK + 'kind = "limit_data"\nbytes = 10.5\n', "faults[0]: bytes: Input should be a valid "
                                                   "integer"),
    (LINK + 'kind = "jam"\n', "faults[0].kind: Input should be 'latency', 'bandwidth'"),
    ('[[faults]]\nat_s = 1\nfor_s = 2\nlink = "crm"\nkind = "down"\n',
     "faults[0].link: Input should be 'erp' or 'wms'"),
    ('[[faults]]\nat_s = 1\nlink = "erp"\nkind = "down"\n', "faults[0].for_s: required"),
    (LINK + 'kind = "down"\nsystem = "erp"\n', "faults[0]: system: unknown field"),
    ('[[faults]]\nat_s = 8\nfor_s = 5\nlink = "erp"\nkind = "down"\n',
     "faults[0]: ends at 13 s, after the plan (10 s)"),
    (LINK + 'kind = "down"\n[[faults]]\nat_s = 2\nfor_s = 3\nlink = "erp"\nkind = "down"\n',
     "faults[1]: overlaps faults[0], the same kind 'down' on link 'erp' (1-3 s)"),
    (LINK + 'kind = "timeout"\n[[faults]]\nat_s = 2\nfor_s = 3\nsystem = "erp"\nmode = "down"\n',
     "faults[1]: the switch of system 'erp' at 2 s is a call over link 'erp', which faults[0] "
     "(timeout) breaks from 1 to 3 s"),
    ('[[faults]]\nat_s = 0\nfor_s = 1\nsystem = "erp"\nmode = "down"\n' + LINK
     + 'kind = "down"\n', "faults[0]: the switch of system 'erp' at 1 s is a call over link "
                          "'erp', which faults[1] (down) breaks from 1 to 3 s"),
])
def test_link_fault_errors_name_the_file_and_the_field(tmp_path: Path, text: str,
                                                       expected: str) -> None:
    path = write(tmp_path, GOOD_STAGE + text)
    with pytest.raises(PlanError) as e:
        load_plan(path)
    assert str(e.value).startswith(f"{path}: ")
    assert expected in str(e.value)
    assert "<link>" not in str(e.value) and "<system>" not in str(e.value)


def test_link_faults_may_overlap_other_kinds_links_and_systems() -> None:
    p = plan({"duration_s": 30, "rate_per_s": 1}, faults=[
        {"at_s": 5, "for_s": 10, "link": "erp", "kind": "latency", "latency_ms": 50},
        {"at_s": 5, "for_s": 10, "link": "erp", "kind": "bandwidth", "rate_bytes_per_s": 1000},
        {"at_s": 5, "for_s": 10, "link": "wms", "kind": "latency", "latency_ms": 50},
        {"at_s": 15, "for_s": 5, "link": "erp", "kind": "latency", "latency_ms": 10},
        {"at_s": 16, "for_s": 2, "system": "wms", "mode": "down"},  # over the other link
    ])
    assert len(p.link_faults) == 4 and len(p.partner_faults) == 1


def test_a_plan_with_link_faults_reads_back_from_its_json(tmp_path: Path) -> None:
    p = load_plan(SHAPES / "faults.toml")
    path = write(tmp_path, p.model_dump_json(), "plan.json")
    back = load_plan(path)
    assert back == p and [f.toxic for f in back.link_faults] == [f.toxic for f in p.link_faults]


def test_the_outage_override_replaces_link_faults_too() -> None:
    p = load_plan(SHAPES / "faults.toml")
    assert p.with_overrides(outage=(None, 0)).faults == []
    one = p.with_overrides(outage=(50, 5))
    assert [(type(f), f.at_s) for f in one.faults] == [(Fault, 50)] and one.links == []


def test_each_link_gets_its_own_seed_from_the_plan_seed() -> None:
    assert link_seeds(0) == link_seeds(0)
    assert link_seeds(0) != link_seeds(1)
    assert set(link_seeds(0)) == set(LINKS) and len(set(link_seeds(0).values())) == len(LINKS)


def test_every_planned_toxic_must_have_fired() -> None:
    p = plan({"duration_s": 30, "rate_per_s": 1}, faults=[
        {"at_s": 1, "for_s": 2, "link": "erp", "kind": "down"},
        {"at_s": 5, "for_s": 2, "link": "erp", "kind": "down"},  # the same (link, kind): once
        {"at_s": 1, "for_s": 2, "link": "wms", "kind": "reset_peer", "toxicity": 0.5},
    ])
    counters = {"connections": 1, "open_connections": 0, "refused": 0, "upstream_failures": 0,
                "bytes_upstream": 0, "bytes_downstream": 0, "active": {}}
    stats = {"erp": ProxyStats(listen="a", upstream="b", toxics={
        "down": ToxicStats(kind="down", drawn=3, taken=3, fired=3)}, **counters),
             "wms": ProxyStats(listen="a", upstream="b", toxics={
                 "reset_peer": ToxicStats(kind="reset_peer", drawn=4, taken=0)}, **counters)}
    checks = link_checks(p, stats)
    assert [(c.check, c.ok) for c in checks] == [("link erp: down fired", True),
                                                 ("link wms: reset_peer fired", False)]
    assert checks[1].measured == "0 (taken 0 of 4 draws)"
    assert [c.ok for c in link_checks(p, {})] == [False, False]  # no proxy: nothing fired


def test_the_faults_run_keeps_the_correctness_limits() -> None:
    """`make loadtest-faults` holds its own latency limits, never looser correctness ones."""
    make = (REPO / "Makefile").read_text()
    target = make[make.index("\nloadtest-faults:"):].split("\n\n")[0]
    assert "loadtests/shapes/faults.toml" in target
    assert "--thresholds loadtests/thresholds-faults.toml" in target
    faults = load_thresholds(REPO / "loadtests" / "thresholds-faults.toml").overall
    default = load_thresholds(DEFAULT_THRESHOLDS).overall
    for field in ("max_error_rate", "max_5xx", "max_exceptions", "min_requests"):
        assert getattr(faults, field) == getattr(default, field), field
