"""Locust load for the live service: an open-model arrival stream of WMS movements (single and
batch), deliberate duplicates and malformed payloads, shop orders and order lookups, and
shipment confirmations for the orders the lookups found released to the WMS, shaped over time
and with downstream faults as a *plan* file says (`loadtests/plan.py`).

Open model: the plan (``TWIN_LOAD_PLAN``, default ``loadtests/shapes/default.toml``) gives the
offered arrival rate over time. A fixed pool of ``users`` users each follows its own
non-homogeneous Poisson schedule of intended send times (rate ``rate(t) / users``), seeded by
(plan seed, worker index, user number), instead of locust's closed-loop waits, which would
slow the offered load down exactly when the server saturates and hide the tail (coordinated
omission). Two latencies are reported per request name: locust's own (from the actual send)
and ``intended: <name>`` (type ``INTENDED``, from the scheduled send time), which includes the
time a request waited because the user's previous one was late. The plan's length is the
run's length (`PlanShape`); ``-u``, ``-r`` and ``--run-time`` are ignored.

Faults: the master (or the single process) sends the plan's ``[[faults]]`` on time: a
partner twin's fault switch to ``PUT /v1/admin/faults/{system}`` with ``TWIN_LOAD_KEY_ADMIN``,
a toxic on a link to that link's fault proxy (`loadtests.proxy`), whose control endpoints
``TWIN_LOAD_LINKS`` gives (JSON, ``{"erp": "http://127.0.0.1:<port>"}``). A failed call makes
locust exit with code 3. Both kinds run on the one clock of the plan.

The mix, per arrival: 70% single movement, 10% batch of ``TWIN_LOAD_BATCH`` (50), 6%
duplicate of an acknowledged movement, 6% malformed movement, 4% order, 2% order lookup, 2%
shipment confirmation (a lookup instead while none of the user's orders is in fulfilment).

Expectations, checked on every response: valid requests get 2xx, duplicates 200, malformed
payloads 422, lookups 200 (or 404 before the order desk took the order in). Any other answer
is a failure whose message starts with the status (``HTTP 503: ...``; ``HTTP 0`` when no
answer came), so `loadtests/thresholds.py` can count the 5xx.

Every attempted and acknowledged movement id is appended to ``TWIN_LOAD_LOG`` (lines
``attempt <id>`` / ``ack <id>``; one ``write`` per batch of lines on an ``O_APPEND`` file, so
several worker processes can share it), so `loadtests/run.py` can check afterwards, through the
API, that each acknowledged movement was applied exactly once.

Several instances of the service (``TWIN_LOAD_HOSTS``, their base URLs comma-separated): the
users are spread over them, and a user whose instance does not answer moves to the next, as
behind a load balancer.

Run by `loadtests/run.py`; by hand (one machine or several, see loadtests/README.md)::

    TWIN_LOAD_PLAN=loadtests/shapes/ramp.toml TWIN_LOAD_KEY_WMS=... TWIN_LOAD_KEY_SHOP=... \\
    TWIN_LOAD_KEY_ADMIN=... locust -f loadtests/locustfile.py --headless --host http://...

Never imported by the package, the tests or the notebooks: locust monkey-patches the process
(gevent).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `locust -f` from anywhere
from loadtests.plan import (
    DEFAULT_PLAN,
    LINKS_ENV,
    PLAN_ENV,
    FaultEvent,
    LinkEvent,
    load_plan,
    user_arrivals,
    user_rng,
)
from loadtests.proxy import ProxyControl, ProxyError

PLAN = load_plan(os.environ.get(PLAN_ENV) or DEFAULT_PLAN)
SKUS = int(os.environ.get("TWIN_LOAD_SKUS", "1000"))
BATCH = int(os.environ.get("TWIN_LOAD_BATCH", "50"))
LOG_PATH = os.environ.get("TWIN_LOAD_LOG")
WMS_KEY = os.environ.get("TWIN_LOAD_KEY_WMS", "")
SHOP_KEY = os.environ.get("TWIN_LOAD_KEY_SHOP", "")
ADMIN_KEY = os.environ.get("TWIN_LOAD_KEY_ADMIN", "")
LINK_CONTROLS: dict[str, str] = json.loads(os.environ.get(LINKS_ENV) or "{}")
HOSTS = [h for h in os.environ.get("TWIN_LOAD_HOSTS", "").split(",") if h]
"""Several instances of the service: user n starts on instance n mod len(HOSTS) and moves to
the next when one does not answer (as a load balancer would)."""
KINDS = ("receipt", "receipt", "pick", "adjustment", "transfer_in")
PRE_RELEASE = frozenset({"new", "validating", "credit_check", "allocating", "backordered",
                         "releasing"})  # an order in these may still reach fulfilment
FAULT_EXIT_CODE = 3
IDLE_S = 3600.0  # a user whose schedule is over waits this long (it is stopped before)
log = logging.getLogger("interop-twin.load")
_ids = itertools.count()
_log_fd: int | None = None
_t0: float | None = None  # wall-clock time the plan started, in this process
_faults: Any = None  # the greenlet sending the faults
_faulted: dict[str, str] = {}  # system -> mode, while not "up"
_toxic_links: set[str] = set()  # links a toxic was switched on for


def plan_start() -> float:
    global _t0
    if _t0 is None:
        _t0 = time.time()
    return _t0


# -- the movement log ----------------------------------------------------------------------


def _record(what: str, ids: list[str]) -> None:
    """Append ``<what> <id>`` lines in one write (O_APPEND: whole batches, never interleaved
    with another process's lines on a local file system)."""
    global _log_fd
    if not LOG_PATH or not ids:
        return
    if _log_fd is None:
        _log_fd = os.open(LOG_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    data = "".join(f"{what} {i}\n" for i in ids).encode()
    while data:  # a regular file takes it all in one call; loop in case it does not
        data = data[os.write(_log_fd, data):]


# -- the plan: run length, users and faults ------------------------------------------------


class PlanShape(LoadTestShape):
    """All of the plan's users for the plan's length, then stop. The users pace themselves."""

    def tick(self) -> tuple[int, float] | None:
        if self.get_run_time() >= PLAN.duration_s:
            return None
        return PLAN.users, float(PLAN.users)  # all spawned within about a second


@events.init.add_listener
def _check_faults(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    partner = PLAN.partner_faults
    if partner and not ADMIN_KEY:
        sys.exit(f"the plan has {len(partner)} fault(s) but TWIN_LOAD_KEY_ADMIN is not set "
                 "(the admin key of the service under test)")
    missing = [link for link in PLAN.links if link not in LINK_CONTROLS]
    if missing:
        sys.exit(f"the plan puts toxics on link(s) {', '.join(missing)} but {LINKS_ENV} does "
                 f"not give their fault proxies' control endpoints (got {LINK_CONTROLS})")


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    global _t0, _faults
    _t0 = time.time()
    if PLAN.faults and not isinstance(environment.runner, WorkerRunner):
        _faults = gevent.spawn(_run_faults, environment)


@events.test_stop.add_listener
def _stop(environment: Environment, **_: Any) -> None:
    if _faults is not None:
        _faults.kill()
    for system in list(_faulted):  # stopped early, inside a fault window: leave it up
        _set_fault(environment, system, {"mode": "up"})
    for link in sorted(_toxic_links):  # and no toxic left on
        try:
            ProxyControl(LINK_CONTROLS[link]).clear()
        except ProxyError as e:
            log.error("clearing the toxics of link %s failed: %s", link, e)
            environment.process_exit_code = FAULT_EXIT_CODE
    _toxic_links.clear()


def _run_faults(environment: Environment) -> None:
    events_: list[FaultEvent | LinkEvent] = [*PLAN.fault_events(), *PLAN.link_events()]
    # each list is in order; the plan never has a switch call inside a link fault window
    events_.sort(key=lambda e: e.at_s)
    for event in events_:
        delay = plan_start() + event.at_s - time.time()
        if delay > 0:
            gevent.sleep(delay)
        if isinstance(event, FaultEvent):
            _set_fault(environment, event.system, event.body)
        else:
            _set_toxic(environment, event)


def _set_toxic(environment: Environment, event: LinkEvent) -> None:
    control = ProxyControl(LINK_CONTROLS[event.link])
    at = time.time() - plan_start()
    try:
        if event.toxic is None:
            control.remove(event.name)
        else:
            control.set(event.toxic, event.name)
            _toxic_links.add(event.link)
    except ProxyError as e:
        log.error("[%5.1f s] toxic %s on link %s failed: %s", at, event.name, event.link, e)
        environment.process_exit_code = FAULT_EXIT_CODE
        return
    what = "off" if event.toxic is None else " ".join(
        f"{k}={v}" for k, v in event.toxic.model_dump().items() if k != "kind")
    log.info("[%5.1f s] link %s: %s %s", at, event.link, event.name, what)


def _set_fault(environment: Environment, system: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{environment.host}/v1/admin/faults/{system}", data=json.dumps(body).encode(),
        method="PUT", headers={"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"})
    at = time.time() - plan_start()
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except (urllib.error.URLError, OSError) as e:
        detail = e.read().decode(errors="replace")[:200] if isinstance(
            e, urllib.error.HTTPError) else ""
        log.error("[%5.1f s] fault %s %s failed: %s %s", at, system, body, e, detail)
        environment.process_exit_code = FAULT_EXIT_CODE
        return
    if body["mode"] == "up":
        _faulted.pop(system, None)
    else:
        _faulted[system] = body["mode"]
    log.info("[%5.1f s] %s twin %s", at, system.upper(),
             " ".join(f"{k}={v}" for k, v in body.items()))


# -- the users -----------------------------------------------------------------------------


class Integration(FastHttpUser):
    """One producer with its own Poisson schedule; its work mix is drawn per arrival."""

    def on_start(self) -> None:
        worker = getattr(self.environment.runner, "worker_index", 0)  # unique per worker
        self.n = next(_ids)
        self.prefix = f"w{worker}p{os.getpid()}u{self.n}"  # movement and order ids
        self.schedule = user_arrivals(PLAN, worker, self.n)
        self.rng = user_rng(PLAN.seed, worker, self.n, "work")
        self.next_at = self._following()
        self.seq = 0
        self.acked: deque[dict[str, Any]] = deque(maxlen=200)
        self.orders: deque[str] = deque(maxlen=50)  # placed, not yet seen in fulfilment
        self.released: deque[str] = deque(maxlen=50)  # seen in fulfilment: the WMS has them
        self.hosts = HOSTS[self.n % len(HOSTS):] + HOSTS[:self.n % len(HOSTS)] if HOSTS else []
        if self.hosts:
            self.client.base_url = self.hosts[0]

    def _fail_over(self) -> None:
        """No answer (the instance died): the next requests go to the next instance."""
        if len(self.hosts) > 1:
            self.hosts.append(self.hosts.pop(0))
            self.client.base_url = self.hosts[0]

    # -- the open model ----------------------------------------------------------------------

    def _following(self) -> float:
        """The next intended send time (wall clock); far away once the schedule is over."""
        offset = next(self.schedule, None)
        return plan_start() + (offset if offset is not None else PLAN.duration_s + IDLE_S)

    def wait_time(self) -> float:
        """Until the next intended send time. Locust sleeps it in the waiting state, where a
        stopping test ends the user at once."""
        return max(0.0, self.next_at - time.time())

    def _intended(self, name: str, intended: float, exc: BaseException | None) -> None:
        events.request.fire(
            request_type="INTENDED", name=f"intended: {name}",
            response_time=(time.time() - intended) * 1000.0, response_length=0,
            exception=exc, context={},
        )

    @task
    def arrival(self) -> None:
        intended = self.next_at
        if intended > time.time():  # the first call, right after on_start: not due yet
            return
        self.next_at = self._following()  # late arrivals are sent at once, never skipped
        roll = self.rng.random()
        if roll < 0.70:
            name, exc = self._movement()
        elif roll < 0.80:
            name, exc = self._batch()
        elif roll < 0.86:
            name, exc = self._duplicate()
        elif roll < 0.92:
            name, exc = self._malformed()
        elif roll < 0.96:
            name, exc = self._order()
        elif roll < 0.98:
            name, exc = self._lookup()
        else:
            name, exc = self._shipment()
        self._intended(name, intended, exc)

    # -- the work ----------------------------------------------------------------------------

    def _new_movement(self) -> dict[str, Any]:
        self.seq += 1
        kind = self.rng.choice(KINDS)
        qty = self.rng.randint(1, 20)
        return {
            "movement_id": f"{self.prefix}-{self.seq}", "kind": kind,
            "sku": f"SKU-{min(int(self.rng.paretovariate(1.2)) - 1, SKUS - 1):05d}",
            "location": f"L-{self.rng.randint(1, 20):02d}",
            "quantity": str(qty if kind != "adjustment" else self.rng.choice((-qty, qty))),
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _post(self, path: str, body: Any, key: str, name: str, expect: tuple[int, ...],
              raw: bytes | None = None) -> tuple[int, Any, BaseException | None]:
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        data = raw if raw is not None else json.dumps(body).encode()
        with self.client.post(path, data=data, headers=headers, name=name,
                              catch_response=True) as r:
            status = r.status_code or 0
            if status not in expect:
                said = (f"no response: {getattr(r, 'error', None)!r}" if status == 0
                        else (r.text or "")[:200])
                message = f"HTTP {status}: expected {expect}, got {said}"
                r.failure(message)  # the status first: thresholds.py counts the 5xx from it
                if status == 0:
                    self._fail_over()
                return status, None, RuntimeError(message)
            r.success()
            try:
                return status, r.json(), None
            except ValueError:
                return status, None, None

    def _movement(self) -> tuple[str, BaseException | None]:
        m = self._new_movement()
        _record("attempt", [m["movement_id"]])
        name = "POST /v1/movements"
        _, _, exc = self._post("/v1/movements", m, WMS_KEY, name, (202, 200))
        if exc is None:
            _record("ack", [m["movement_id"]])
            self.acked.append(m)
        return name, exc

    def _batch(self) -> tuple[str, BaseException | None]:
        items = [self._new_movement() for _ in range(BATCH)]
        _record("attempt", [m["movement_id"] for m in items])
        name = "POST /v1/movements:batch"
        _, doc, exc = self._post("/v1/movements:batch", {"movements": items}, WMS_KEY, name,
                                 (202,))
        if exc is None and doc is not None:
            _record("ack", [it["movement_id"] for it in doc["items"]
                            if it["status"] in ("accepted", "duplicate")])
        return name, exc

    def _duplicate(self) -> tuple[str, BaseException | None]:
        if not self.acked:
            return self._movement()
        m = self.rng.choice(self.acked)
        name = "POST /v1/movements (duplicate)"
        _, _, exc = self._post("/v1/movements", m, WMS_KEY, name, (200,))
        return name, exc

    def _malformed(self) -> tuple[str, BaseException | None]:
        m = self._new_movement()
        variant = self.rng.randrange(4)
        raw = None
        if variant == 0:
            m["sku"] = "NO-SUCH-SKU"
        elif variant == 1:
            m["kind"], m["quantity"] = "receipt", "-5"
        elif variant == 2:
            del m["location"]
        else:
            raw = b'{"movement_id": "broken", "kind": '
        name = "POST /v1/movements (malformed)"
        _, _, exc = self._post("/v1/movements", m, WMS_KEY, name, (422,), raw=raw)
        return name, exc

    def _order(self) -> tuple[str, BaseException | None]:
        self.seq += 1
        oid = f"O-{self.prefix}-{self.seq}"
        body = {"order_id": oid, "customer_id": "C-1",
                "placed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "lines": [{"line_no": 1, "sku": "SKU-00001", "quantity": "2",
                           "unit_price": "9.90"}]}
        name = "POST /v1/orders"
        _, _, exc = self._post("/v1/orders", body, SHOP_KEY, name, (202, 200))
        if exc is None:
            self.orders.append(oid)
        return name, exc

    def _lookup(self) -> tuple[str, BaseException | None]:
        """The shop looks up its oldest order still on the way to the warehouse; once it is
        in fulfilment (released to the WMS), the WMS may confirm its shipment."""
        if not self.orders:
            return self._order()
        oid = self.orders.popleft()
        name = "GET /v1/orders/{id}"
        with self.client.get(f"/v1/orders/{oid}", headers={"X-API-Key": SHOP_KEY}, name=name,
                             catch_response=True) as r:
            status = r.status_code or 0
            if status not in (200, 404):  # 404: the order desk has not taken it in yet
                said = (f"no response: {getattr(r, 'error', None)!r}" if status == 0
                        else (r.text or "")[:200])
                message = f"HTTP {status}: expected (200, 404), got {said}"
                r.failure(message)
                if status == 0:
                    self._fail_over()
                return name, RuntimeError(message)
            r.success()
            state = r.json().get("status") if status == 200 else None
        if state == "in_fulfilment":
            self.released.append(oid)
        elif state is None or state in PRE_RELEASE:
            self.orders.append(oid)  # look again later
        return name, None  # held, rejected, ...: never shipped

    def _shipment(self) -> tuple[str, BaseException | None]:
        """The WMS confirms the shipment of an order it was released (a confirmation for an
        order the WMS never got is refused by the saga and dead-lettered, rightly)."""
        if not self.released:
            return self._lookup()
        oid = self.released.popleft()
        body = {"shipment_id": f"S-{oid}", "order_id": oid, "warehouse_id": "WH1",
                "tracking": f"T-{oid}", "lines": [{"order_line_no": 1, "sku": "SKU-00001",
                                                    "quantity_base": 2}],
                "shipped_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        name = "POST /v1/shipments/confirmations"
        _, _, exc = self._post("/v1/shipments/confirmations", body, WMS_KEY, name, (202, 200))
        return name, exc
