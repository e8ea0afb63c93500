"""Locust load for the live service: an open-model arrival stream of WMS movements (single and
batch), deliberate duplicates and malformed payloads, shop orders and shipment confirmations.

Open model: each user follows its own Poisson schedule of intended send times (total rate
``TWIN_LOAD_RATE`` requests/s over ``TWIN_LOAD_USERS`` users) instead of locust's closed-loop
waits, which would slow the offered load down exactly when the server saturates and hide the
tail (coordinated omission). Two latencies are reported per request name: locust's own (from
the actual send) and ``intended: <name>`` (from the scheduled send time), which includes the
time a request waited because the previous one was late.

Expectations, checked on every response: valid requests get 2xx, duplicates 200, malformed
payloads 422 (any 4xx passes, a 5xx never does).

Every attempted and acknowledged movement id is appended to ``TWIN_LOAD_LOG`` (lines
``attempt <id>`` / ``ack <id>``), so `loadtests/run.py` can check afterwards, through the
API, that each acknowledged movement was applied exactly once.

Run by `loadtests/run.py`; by hand: ``locust -f loadtests/locustfile.py --host ...`` with
``TWIN_LOAD_KEY_WMS``, ``TWIN_LOAD_KEY_SHOP`` set. Never imported by the package or tests:
locust monkey-patches the process (gevent).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import deque
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task

RATE = float(os.environ.get("TWIN_LOAD_RATE", "200"))
USERS = int(os.environ.get("TWIN_LOAD_USERS", "20"))
SKUS = int(os.environ.get("TWIN_LOAD_SKUS", "1000"))
BATCH = int(os.environ.get("TWIN_LOAD_BATCH", "50"))
LOG_PATH = os.environ.get("TWIN_LOAD_LOG")
WMS_KEY = os.environ.get("TWIN_LOAD_KEY_WMS", "")
SHOP_KEY = os.environ.get("TWIN_LOAD_KEY_SHOP", "")
KINDS = ("receipt", "receipt", "pick", "adjustment", "transfer_in")
_ids = itertools.count()
_log: Any = None


@events.test_start.add_listener
def _open_log(**_: Any) -> None:
    global _log
    if LOG_PATH:
        _log = open(LOG_PATH, "a", buffering=1)  # noqa: SIM115 - open for the whole run


@events.test_stop.add_listener
def _close_log(**_: Any) -> None:
    if _log is not None:
        _log.flush()


def _record(what: str, ids: list[str]) -> None:
    if _log is not None and ids:
        _log.write("".join(f"{what} {i}\n" for i in ids))


class Integration(FastHttpUser):
    """One producer with its own Poisson schedule; its work mix is drawn per arrival."""

    wait_time = constant(0)  # the schedule paces the user, not locust

    def on_start(self) -> None:
        self.n = next(_ids)
        self.prefix = f"p{os.getpid()}u{self.n}"
        self.rng = random.Random(f"{self.prefix}")
        self.rate = RATE / max(USERS, 1)
        self.next_at = time.time() + self.rng.expovariate(self.rate)
        self.seq = 0
        self.acked: deque[dict[str, Any]] = deque(maxlen=200)
        self.orders: deque[str] = deque(maxlen=50)

    # -- the open model ----------------------------------------------------------------------

    def _arrive(self) -> float:
        """Sleep until the next intended send time; return it (late arrivals do not wait)."""
        intended = self.next_at
        self.next_at += self.rng.expovariate(self.rate)
        delay = intended - time.time()
        if delay > 0:
            gevent.sleep(delay)
        return intended

    def _intended(self, name: str, intended: float, exc: BaseException | None) -> None:
        events.request.fire(
            request_type="INTENDED", name=f"intended: {name}",
            response_time=(time.time() - intended) * 1000.0, response_length=0,
            exception=exc, context={},
        )

    @task
    def arrival(self) -> None:
        intended = self._arrive()
        roll = self.rng.random()
        if roll < 0.70:
            name, exc = self._movement()
        elif roll < 0.80:
            name, exc = self._batch()
        elif roll < 0.86:
            name, exc = self._duplicate()
        elif roll < 0.92:
            name, exc = self._malformed()
        elif roll < 0.97:
            name, exc = self._order()
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
                r.failure(f"expected {expect}, got {status}: {(r.text or '')[:200]}")
                return status, None, RuntimeError(f"status {status}")
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

    def _shipment(self) -> tuple[str, BaseException | None]:
        if not self.orders:
            return self._order()
        oid = self.orders.popleft()
        body = {"shipment_id": f"S-{oid}", "order_id": oid, "warehouse_id": "WH1",
                "tracking": f"T-{oid}", "lines": [{"order_line_no": 1, "sku": "SKU-00001",
                                                    "quantity_base": 2}],
                "shipped_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        name = "POST /v1/shipments/confirmations"
        _, _, exc = self._post("/v1/shipments/confirmations", body, WMS_KEY, name, (202, 200))
        return name, exc
