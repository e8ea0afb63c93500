"""One engine, two clocks: the same input through the twin's SimPy driver (`sim.core`) and the
live service's asyncio driver (`integration_core.service.runner`) ends in the same state.

Hypothesis draws a session: receipts and picks, orders, partners failing their next calls,
waiting hours (the saga's timers fire), shipment confirmations, cancellations, returns (with
the delivery that completes the order), and a crash and restart of the core. Each step is
driven to quiescence before the next (so the interleaving inside a step is each driver's
business, the order of steps the same), and the partners answer from one scripted table: the
k-th attempt of a call fails when the script says so. The two runs must agree on every order's
saga (status, events, commands), every consumer's inbox, the core's WMS view and what the ERP
booked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_core.bus import Delivery, Store
from integration_core.clock import ManualClock
from integration_core.engine import MOVEMENT, Engine
from integration_core.engine.desk import ORDERS
from integration_core.envelope import OrderCancellation
from integration_core.errors import PayloadError, TransientError
from integration_core.models import (
    Milestone,
    Movement,
    ReturnAuthorization,
    ReturnLine,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from integration_core.orchestrator import DEFAULT_CONFIG
from integration_core.service.live import LiveEngine
from integration_core.service.partners import Partners
from integration_core.service.runner import Runner
from sim.core import START_S, TwinCore
from sim.kernel import at
from sim.scenario import BusConfig
from tests.service.helpers import make_settings, movement, order, shipment

SKUS = ("SKU-00001", "SKU-00002")
AT = datetime(2026, 1, 6, tzinfo=UTC)
"""The customer's and the carrier's times: the same for both drivers."""
_RUNS = itertools.count()
POLICY = {"max_attempts": 50, "initial_delay_s": 0.5, "multiplier": 2.0, "max_delay_s": 4.0,
          "jitter": 0.0}


class Script:
    """The partners' side, shared by both drivers: answers, failures by attempt, bookings."""

    def __init__(self) -> None:
        self.failing: dict[str, int] = {"erp": 0, "wms": 0}
        """Failures still owed per system: its next calls fail."""
        self.booked: Counter[str] = Counter()
        self.stock: Counter[tuple[str, str]] = Counter()
        self.released: set[str] = set()
        self.invoices: dict[str, str] = {}
        self.cancelled: set[str] = set()
        self.credit_memos: set[str] = set()

    def _gate(self, system: str) -> None:
        if self.failing[system]:
            self.failing[system] -= 1
            raise TransientError(f"{system}: scripted failure")

    def perform(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        system = {"credit_check": "erp", "invoice": "erp", "release": "wms",
                  "cancel_release": "wms", "credit_memo": "erp"}.get(op)
        if system is None:
            raise PayloadError("op", f"unknown {op!r}")
        self._gate(system)
        if op == "credit_check":
            return {"approved": True, "reason": ""}
        if op == "release":
            self.released.add(body["order_id"])
            return {"accepted": True, "reason": ""}
        if op == "cancel_release":
            self.cancelled.add(body["order_id"])
            return {"cancelled": True, "reason": ""}
        if op == "credit_memo":
            self.credit_memos.add(body["rma_id"])
            return {"credit_memo_id": f"CM-{body['rma_id']}"}
        return {"invoice_id": self.invoices.setdefault(body["shipment_id"],
                                                       f"INV-{body['shipment_id']}")}

    def post(self, postings: list[dict[str, Any]]) -> list[str]:
        self._gate("erp")
        out = []
        for p in postings:
            first = self.booked[p["movement_id"]] == 0
            if first:
                self.stock[(p["sku"], p["location"])] += p["delta"]
                self.booked[p["movement_id"]] += 1
            out.append("applied" if first else "duplicate")
        return out


class _AsyncScript:
    """The script behind the HTTP adapter's interface, for the runner."""

    def __init__(self, script: Script) -> None:
        self.script = script

    async def perform(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.script.perform(op, body)

    async def post_movements(self, postings: list[dict[str, Any]]) -> list[str]:
        return self.script.post(list(postings))


class _SimScript:
    """The script behind the SimPy adapter's interface: answers 0.2 simulated s later."""

    def __init__(self, env: simpy.Environment, script: Script) -> None:
        self.env = env
        self.script = script

    def _later(self, work: Callable[[], Any], on_answer: Callable[..., None]) -> None:
        try:
            answer, error = work(), None
        except (TransientError, PayloadError) as exc:
            answer, error = None, exc
        at(self.env, 0.2, on_answer, answer, error)

    def perform(self, op: str, body: dict[str, Any], on_answer: Callable[..., None]) -> None:
        self._later(lambda: self.script.perform(op, body), on_answer)


# -- the session ---------------------------------------------------------------------------

Step = tuple[Any, ...]
steps = st.lists(st.one_of(
    st.tuples(st.just("receive"), st.sampled_from(SKUS), st.integers(1, 9)),
    st.tuples(st.just("pick"), st.sampled_from(SKUS), st.integers(1, 3)),
    st.tuples(st.just("order"), st.sampled_from(SKUS), st.integers(1, 6)),
    st.tuples(st.just("fail"), st.sampled_from(("erp", "wms")), st.integers(1, 3)),
    st.tuples(st.just("ship"), st.integers(0, 5)),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("return"), st.integers(0, 5)),
    st.tuples(st.just("wait_h"), st.integers(1, 30)),
    st.tuples(st.just("crash"),),
), min_size=1, max_size=10)


@dataclasses.dataclass
class Inputs:
    """What a step hands the engine, numbered the same way for both drivers."""

    movements: int = 0
    orders: int = 0
    returns: int = 0

    def apply(self, engine: Engine, step: Step) -> None:
        kind = step[0]
        if kind in ("receive", "pick"):
            self.movements += 1
            m = movement(f"m{self.movements}", kind="receipt" if kind == "receive" else "pick",
                         quantity=step[2], sku=step[1])
            engine.accept_movements([engine.catalog.parse(Movement, m)], "wms")
        elif kind == "order":
            self.orders += 1
            doc = order(f"O-{self.orders}", sku=step[1], quantity=step[2])
            engine.accept_order(engine.catalog.parse(SalesOrder, doc), "shop")
        elif kind == "ship" and step[1] < self.orders:
            oid = f"O-{step[1] + 1}"
            view = engine.desk.view(engine.store, oid, [])
            if view["status"] == "in_fulfilment":
                qty = view["lines"][0]["allocated"]
                doc = shipment(f"S-{oid}", oid, sku=view["lines"][0]["sku"], quantity=qty)
                engine.accept_shipment(engine.catalog.parse(Shipment, doc), "wms")
        elif kind == "cancel" and step[1] < self.orders:
            engine.accept_cancellation(OrderCancellation(
                order_id=f"O-{step[1] + 1}", reason="parity", requested_at=AT), "shop")
        elif kind == "return" and step[1] < self.orders:
            oid = f"O-{step[1] + 1}"
            view = engine.desk.view(engine.store, oid, [])
            if view["status"] in ("shipped", "completed", "return_pending"):
                # Delivered first (a repeat is the bus's duplicate), so the order completes.
                engine.accept_milestone(ShipmentMilestone(
                    shipment_id=f"S-{oid}", tracking=f"T-S-{oid}", milestone=Milestone.DELIVERED,
                    at=AT), "carrier")
                self.returns += 1
                engine.accept_return(ReturnAuthorization(
                    rma_id=f"RMA-{self.returns}", order_id=oid, authorized_at=AT,
                    lines=(ReturnLine(sku=view["lines"][0]["sku"], quantity_base=1),)), "shop")


def _quiet(engine: Engine) -> bool:
    """Nothing to deliver, no call open or waiting for its retry, no timer due."""
    timer = engine.desk.next_timer_at()
    due = timer is not None and timer <= engine.clock.now()
    return bool(engine.status()["drained"]) and len(engine.calls) == 0 and not due


# -- the two drivers -----------------------------------------------------------------------


def run_sim(session: list[Step], catalog: Any) -> tuple[Engine, Script]:
    env, script = simpy.Environment(), Script()
    core = TwinCore(env, BusConfig(durable=True, **POLICY), np.random.default_rng(0), catalog,
                    cast(Any, _SimScript(env, script)), DEFAULT_CONFIG, dict,
                    retain_log_s=None)

    def erp(d: Delivery, ack: Callable[[], None], nack: Callable[[BaseException], None]) -> None:
        def answered(_a: Any, error: BaseException | None) -> None:
            ack() if error is None else nack(error)
        _SimScript(env, script)._later(lambda: script.post([Engine.posting(d)]), answered)

    core.subscribe("erp", [MOVEMENT], erp)
    inputs = Inputs()

    def settle() -> None:
        for _ in range(2000):
            env.run(until=env.now + 0.5)
            if _quiet(core.engine):
                return
        raise AssertionError(f"the twin did not settle: {core.engine.status()}")

    for step in session:
        if step[0] == "fail":
            script.failing[step[1]] += step[2]
        elif step[0] == "wait_h":
            env.run(until=env.now + step[1] * 3600)
        elif step[0] == "crash":
            core.crash()
            core.restart()
        else:
            inputs.apply(core.engine, step)
            core.poke()
        settle()
    return core.engine, script


async def _run_live(session: list[Step], db: Path) -> tuple[dict[str, Any], Script]:
    clock, script = ManualClock(START_S), Script()
    cfg = make_settings(db, retry_max_attempts=POLICY["max_attempts"],
                        retry_initial_delay_s=POLICY["initial_delay_s"],
                        retry_max_delay_s=POLICY["max_delay_s"], idle_poll_s=0.005)
    partners = cast(Partners, _AsyncScript(script))
    engine = LiveEngine(cfg, clock)
    runner = Runner(engine, partners)
    runner.start()
    inputs = Inputs()

    async def settle() -> None:
        for _ in range(4000):
            await asyncio.sleep(0.003)
            if _quiet(engine) and not runner._call_tasks:
                return
            clock.advance(0.5)
        raise AssertionError(f"the service did not settle: {engine.status()}")

    try:
        for step in session:
            if step[0] == "fail":
                script.failing[step[1]] += step[2]
            elif step[0] == "wait_h":
                clock.advance(step[1] * 3600)
            elif step[0] == "crash":
                await runner.stop()
                engine.close()
                engine = LiveEngine(cfg, clock)
                runner = Runner(engine, partners)
                runner.start()
            else:
                inputs.apply(engine, step)
                runner.wake()
            await settle()
        return state_of(engine), script
    finally:
        await runner.stop()
        engine.close()


# -- what must agree -----------------------------------------------------------------------


def _inbox(store: Store, consumers: list[str]) -> dict[str, list[str]]:
    ids = [e.envelope.message_id for e in store.log()]
    return {c: sorted(m for m in ids if store.processed(c, m)) for c in consumers}


def state_of(engine: Engine) -> dict[str, Any]:
    orders = {}
    for oid, r in sorted(engine.store.state(ORDERS).items()):
        orders[oid] = {
            "status": r["status"],
            "events": [e["kind"] for e in r["events"]],
            "commands": [t["name"] for t in r["trace"] if t["kind"] == "command"],
            "exceptions": sorted(x["type"] for x in r["exceptions"].values()),
        }
    return {"orders": orders, "inbox": _inbox(engine.store, ["wms", "erp", "orders"]),
            "wms": engine.wms.table(engine.store),
            "dead_letters": sorted(str(d.message_id) for d in engine.dead_letters())}


def _script_view(s: Script) -> dict[str, Any]:
    return {"booked": dict(s.booked), "erp_stock": dict(s.stock),
            "released": sorted(s.released), "invoices": dict(s.invoices),
            "cancelled": sorted(s.cancelled), "credit_memos": sorted(s.credit_memos)}


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(session=steps)
def test_the_simpy_and_asyncio_drivers_end_in_the_same_state(tmp_path: Path,
                                                             session: list[Step]) -> None:
    db = tmp_path / f"parity-{next(_RUNS)}.db"
    catalog = make_settings(db).catalog()
    sim_engine, sim_script = run_sim(session, catalog)
    live_state, live_script = asyncio.run(_run_live(session, db))
    assert state_of(sim_engine) == live_state
    assert _script_view(sim_script) == _script_view(live_script)


def test_the_parity_check_sees_a_difference(tmp_path: Path) -> None:
    """The comparison is not vacuous: one more receipt on one side changes the state."""
    catalog = make_settings(tmp_path / "x.db").catalog()
    a, _ = run_sim([("receive", SKUS[0], 3), ("order", SKUS[0], 4)], catalog)
    b, _ = run_sim([("receive", SKUS[0], 3), ("receive", SKUS[0], 1), ("order", SKUS[0], 4)],
                   catalog)
    assert state_of(a)["orders"]["O-1"] != state_of(b)["orders"]["O-1"] or \
        state_of(a)["wms"] != state_of(b)["wms"]
