"""Our own fuzz suite of the live service: hostile bytes on every JSON route, in process.

Hypothesis sends raw request bodies (`tests.service.strategies`: hostile JSON of every kind,
non-JSON, wrong Content-Type headers, and bodies shaped like the canonical models with
mutated values) to every route that reads one, and odd ids in the paths. The app is started
once per module (lifespan run: store, bus, delivery loop, ERP/WMS twins in process) with one
intake worker process, on an event loop of its own thread, so it keeps running (and its
loop-lag probe keeps sampling) while hypothesis draws the next example.

Properties of every request (principle 8):

- never a 5xx (this suite never makes the store fail), never a 3xx;
- every 4xx is ``application/problem+json`` with the ProblemBody fields (type, title,
  status, detail) and a status equal to the HTTP one;
- a 4xx stored nothing: the bus's ``published`` counter (GET /v1/status) does not move;
- every 200/202 for a movement is, after the service drained, booked exactly once by the ERP
  (POST /v1/erp/applied-counts);
- the intake worker process is the same one, alive, before and after;
- no request blocks the event loop past `LAG_S`, as the service's own probe reports it
  (``event_loop_lag_s``: the worst 50 ms sleep overrun of the last ~5 s). Each example starts
  with the probe below the threshold (after a stall, it waits for the window to pass) and the
  service drained, and is read again once the request and what it set off in the background
  are done, so a stall is attributed to the example that caused it. On a busy shared machine
  a stall can come from elsewhere: a stall is only reported when sending the same request
  again stalls again.

The probes of issue 12 (990-level nesting on every POST route, ``"1e-6000000"`` quantities,
a lone surrogate, duplicate keys, text/plain, NUL, an id with a "/", GET /v1/orders/%2F) are
explicit examples with the status the issue asks for; a 50 MB field is sent once, by
itself.

Budget: CI runs a small, derandomized number of examples per test and route (profile
``twin-fuzz-ci``; about 30 s in all on a slow 2-core machine, a third of it waiting for the
probe's window after the stalls of the app's start and of building the 50 MB body).
``TWIN_FUZZ_EXAMPLES=N`` runs N per test and route, randomized (profile ``twin-fuzz``),
printing a reproduction blob on failure; ``TWIN_FUZZ_LOG=FILE`` appends every failing request
to FILE (hypothesis reports one example per kind of failure); ``make fuzz`` does both, with
schemathesis' bigger budget too. ``TWIN_FUZZ_DEBUG=1`` prints each wait for the probe.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from integration_core.service import SYSTEMS
from integration_core.service.problems import MEDIA_TYPE, ProblemBody
from tests.service import strategies as fs
from tests.service.helpers import KEYS, SKU, Api, make_settings, movement, order, running

LAG_S = 0.05
"""Longest event-loop stall one request may cause, as `event_loop_lag_s` reports it."""

FAST = (1e6, 1_000_000)
"""Rate and burst of every key: the fuzz must not meet 429 by running fast."""

EXAMPLES = int(os.environ.get("TWIN_FUZZ_EXAMPLES", "0"))
"""Examples per test for a long run (``make fuzz``); 0: CI's small budget."""

# Health checks: `too_slow` and `data_too_large` are suppressed because the strategies build
# bodies of up to a few megabytes on purpose (deep and wide JSON, long strings): generating
# them is slow for hypothesis' taste, and that is the point of them.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("twin-fuzz-ci", max_examples=10, deadline=None, derandomize=True,
                          database=None, print_blob=False, suppress_health_check=_SUPPRESSED)
settings.register_profile("twin-fuzz", max_examples=max(EXAMPLES, 1), deadline=None,
                          derandomize=False, print_blob=True, suppress_health_check=_SUPPRESSED)
FUZZ = settings.get_profile("twin-fuzz" if EXAMPLES else "twin-fuzz-ci")
"""Used per test (not loaded: other suites keep their own hypothesis settings)."""


def _budget(ci: int) -> settings:
    return settings(FUZZ, max_examples=EXAMPLES or ci)


# -- what is sent ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request. `expect`: for the issue's probes, the statuses it asks for."""

    method: str
    path: str
    caller: str
    body: fs.Body | None
    content_type: str | None = "application/json"
    expect: frozenset[int] = frozenset()

    def __repr__(self) -> str:
        expect = f", expect={sorted(self.expect)}" if self.expect else ""
        return (f"Case({self.method} {self.path} as {self.caller}, content-type="
                f"{self.content_type!r}, {self.body!r}{expect})")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    caller: str
    model: st.SearchStrategy[dict[str, Any]]


ROUTES = {
    "movement": Route("POST", "/v1/movements", "wms", fs.movements()),
    "batch": Route("POST", "/v1/movements:batch", "wms", fs.batches()),
    "order": Route("POST", "/v1/orders", "shop", fs.orders()),
    "shipment": Route("POST", "/v1/shipments/confirmations", "wms", fs.shipments()),
    "milestone": Route("POST", "/v1/carrier/milestones", "carrier", fs.milestones()),
    "applied": Route("POST", "/v1/erp/applied-counts", "admin", fs.applied_queries()),
    "requeue": Route("POST", "/v1/dead-letters/erp/1/requeue", "admin", fs.requeues()),
    "fault": Route("PUT", "/v1/admin/faults/erp", "admin", fs.faults()),
}

CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from([None, "application/json; charset=utf-8", "text/plain",
                     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                     "application/problem+json", "application/json; charset=latin-1",
                     "application/xml", "", "application/jsonx", "*/*", "text/json"]),
)

ODD_PATH_IDS = st.one_of(
    st.sampled_from([
        "%2F", "%2F%2F", "O-1%2F", "%2F..%2F", "%00", "O-1%00", "a" * 10_000, "%2E%2E", "..",
        ".", "%25", "%ZZ", "%", "%ED%A0%80", "%FF", "%C0%AF", "%EF%BB%BF", "日本", "%E6%97%A5",
        "a%3Fb", "a%23b", "%20", "+", "O-1;x=1", "%0A", "%0D%0A", "%09", "erp%2F1",
        "\U0001f600", "ingress/0", "erp/1/x",
    ]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).map(
        lambda s: quote(s, safe="")),
)
"""Ids for paths, as written in the URL (percent escapes kept as they are)."""


@st.composite
def hostile_cases(draw: st.DrawFn, route: str) -> Case:
    """A hostile body, or the route's model-shaped body with one field's value replaced by a
    hostile fragment; under any Content-Type."""
    r = ROUTES[route]
    valid = draw(r.model)
    if not valid or draw(st.integers(0, 2)):
        body = draw(fs.hostile_bodies())
    else:
        text, note = draw(fs.fragments())
        key = draw(st.sampled_from(sorted(valid)))
        body = fs.Body(fs.encode(fs.dump({**valid, key: fs.Raw(text)})), f"{key}: {note}")
    return Case(r.method, r.path, r.caller, body, draw(CONTENT_TYPES))


def model_cases(route: str) -> st.SearchStrategy[Case]:
    r = ROUTES[route]
    return fs.shaped(r.model).map(lambda body: Case(r.method, r.path, r.caller, body))


def _json(value: Any) -> fs.Body:
    return fs.Body(fs.encode(fs.dump(value)), "probe")


def _text(text: str, note: str = "probe") -> fs.Body:
    return fs.Body(fs.encode(text), note)


# -- the service under test ----------------------------------------------------------------------


class Found(AssertionError):
    """A property failed. One subclass per property: hypothesis reports (and shrinks) each
    kind of failure on its own instead of only the first it met."""


class ServerError(Found):
    """A 5xx, or an exception out of the app (which the server would answer 500)."""


class Redirected(Found):
    """A 3xx."""


class NotAProblem(Found):
    """A 4xx that is not problem+json with type, title, status and detail."""


class UnexpectedStatus(Found):
    """A probe of issue 12 answered another status than the one asked for."""


class StoredOnRefusal(Found):
    """A 4xx after which the bus had published something."""


class Lost(Found):
    """An acknowledged movement not booked exactly once by the ERP after the drain."""


class LoopBlocked(Found):
    """The event-loop probe saw a stall past LAG_S, twice for the same request."""


class WorkerDied(Found):
    """The intake worker process is not the one alive before the request."""


ORDER = [ServerError, Redirected, NotAProblem, UnexpectedStatus, StoredOnRefusal, Lost,
         WorkerDied, LoopBlocked]


@dataclass
class Service:
    """The started app, called through a portal into its event loop's thread."""

    portal: BlockingPortal
    api: Api
    worker: int = 0
    accepted: set[str] = field(default_factory=set)
    stalls_not_repeated: list[str] = field(default_factory=list)
    """Stalls seen once that did not come back when the request was sent again (noise)."""
    waited_s: float = 0.0
    """Time spent waiting for the probe's window to pass after a stall."""
    last: str = ""
    """The request sent last (for TWIN_FUZZ_DEBUG's notes)."""

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(partial(fn, *args, **kwargs))

    def send(self, case: Case) -> httpx.Response:
        headers = {"X-API-Key": KEYS[case.caller]}
        if case.content_type is not None:
            headers["Content-Type"] = case.content_type
        content = None if case.body is None else case.body.data
        response: httpx.Response = self.call(self.api.http.request, case.method, case.path,
                                             content=content, headers=headers)
        return response

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.call(self.api.status)
        return doc

    def quiet(self) -> dict[str, Any]:
        """Drained, and the loop-lag window below the threshold (it holds ~5 s: after a
        stall, wait for it to pass)."""
        self.call(self.api.drain, 10.0)
        start = time.monotonic()
        while True:
            doc = self.status()
            if doc["event_loop_lag_s"] <= LAG_S or time.monotonic() > start + 8.0:
                self.waited_s += time.monotonic() - start
                if os.environ.get("TWIN_FUZZ_DEBUG") and time.monotonic() - start > 0.1:
                    print(f"waited {time.monotonic() - start:.1f} s after {self.last}")
                return doc
            time.sleep(0.25)

    def settled(self, started: float) -> dict[str, Any]:
        """Status once the request and what it set off are done. A stall shows in the probe
        once the probe's sleep that spans it has ended: wait one period when the exchange
        took long enough to hold one."""
        self.call(self.api.drain, 10.0)
        if time.perf_counter() - started >= LAG_S:
            self.call(anyio.sleep, 0.06)
        return self.status()

    def workers(self) -> list[int]:
        return sorted(p.pid for p in multiprocessing.active_children()
                      if p.name == "twin-intake" and p.is_alive() and p.pid is not None)

    def faults_up(self) -> None:
        r = self.call(self.api.put, "/v1/admin/faults/erp", {"mode": "up"})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    db: Path = tmp_path_factory.mktemp("fuzz") / "core.db"
    config = make_settings(db, rates={s: FAST for s in SYSTEMS}, intake_workers=1)
    with (start_blocking_portal() as portal,
          portal.wrap_async_context_manager(running(config)) as api):
        service = Service(portal, api)
        (service.worker,) = service.workers()
        # The test's own heap (pytest, hypothesis, every module the session imported) is in
        # this process: a full garbage collection of it, run by hypothesis' thread, holds the
        # GIL for 100-200 ms and stalls the app's loop. Frozen, it is left out of collections.
        gc.collect()
        gc.freeze()
        try:
            yield service
        finally:
            gc.unfreeze()


def _exchange(svc: Service, case: Case) -> tuple[httpx.Response | None, str, float]:
    """Send; the response (None: the app raised), the error text, and the probe's lag."""
    started = time.perf_counter()
    error = ""
    try:
        response: httpx.Response | None = svc.send(case)
    except Exception as exc:  # out of the app: uvicorn would answer 500
        response, error = None, f"{type(exc).__name__}: {str(exc)[:300]}"
    if case.path.startswith("/v1/admin/faults/"):
        svc.faults_up()  # a fuzzed PUT may have set the ERP down, slow or flaky
    lag = float(svc.settled(started)["event_loop_lag_s"])
    return response, error, lag


def check(svc: Service, case: Case) -> httpx.Response | None:
    """Send `case` and assert every property; raise the first failed property's `Found`
    with all failures in its message."""
    pids = svc.workers()
    before = svc.quiet()
    svc.last = f"{case!r}"[:300]
    quiet = before["event_loop_lag_s"] <= LAG_S  # else no stall can be told apart (noted)
    response, error, lag = _exchange(svc, case)
    after = svc.status()
    failed: dict[type[Found], str] = {}
    status = 500 if response is None else response.status_code
    text = error if response is None else response.text[:400]
    if response is None or status >= 500:
        failed[ServerError] = f"{status}: {text}"
    elif 300 <= status < 400:
        failed[Redirected] = f"{status} to {response.headers.get('location')!r}"
    elif 400 <= status < 500:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        try:
            problem = ProblemBody.model_validate(response.json())
            shape = "" if problem.status == status else f"status field {problem.status}"
        except (ValueError, TypeError) as exc:
            shape = f"not a ProblemBody: {str(exc)[:200]}"
        if media != MEDIA_TYPE or shape:
            failed[NotAProblem] = f"content-type {media!r} {shape}".strip()
        if before["counters"]["published"] != after["counters"]["published"]:
            failed[StoredOnRefusal] = (f"published {before['counters']['published']} -> "
                                       f"{after['counters']['published']}")
    if case.expect and status not in case.expect:
        failed[UnexpectedStatus] = f"{status}, expected {sorted(case.expect)}"
    if response is not None and status in (200, 202):
        ids = _acknowledged(case, response)
        svc.accepted.update(ids)
        wrong = _not_booked_once(svc, ids)
        if wrong:
            failed[Lost] = f"ERP bookings (must be 1): {wrong}"
    now = svc.workers()
    if now != pids:
        failed[WorkerDied] = f"intake worker {pids} before, {now} after"
    if not quiet:
        svc.stalls_not_repeated.append(f"{case!r}: not measured, the probe stayed above "
                                       f"{LAG_S * 1e3:.0f} ms for 8 s before it was sent")
    elif lag > LAG_S:
        svc.quiet()
        again = _exchange(svc, case)[2]
        if again > LAG_S:
            failed[LoopBlocked] = (f"event_loop_lag_s {lag * 1e3:.0f} ms, and "
                                   f"{again * 1e3:.0f} ms when sent again")
        else:
            svc.stalls_not_repeated.append(f"{case!r}: {lag * 1e3:.0f} ms, then "
                                           f"{again * 1e3:.0f} ms")
    if currently_in_test_context():  # for --hypothesis-show-statistics
        event(f"{case.method} {_template(case.path)} -> {status}")
    if failed:
        kind = next(k for k in ORDER if k in failed)
        lines = [f"{k.__name__}: {v}" for k, v in failed.items()]
        _log(kind, case, status, text, lines)
        raise kind(f"{case!r}\n  -> {status} {text}\n  " + "\n  ".join(lines))
    return response


def _template(path: str) -> str:
    for prefix, template in (("/v1/orders/", "/v1/orders/{id}"),
                             ("/v1/dead-letters/", "/v1/dead-letters/{id}/requeue")):
        if path.startswith(prefix):
            return template
    return path


def _log(kind: type[Found], case: Case, status: int, text: str, lines: list[str]) -> None:
    """With ``TWIN_FUZZ_LOG=FILE`` (``make fuzz``), every failing request is appended to FILE
    as a JSON line: hypothesis reports one example per kind of failure, the log all."""
    path = os.environ.get("TWIN_FUZZ_LOG")
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps({"kind": kind.__name__, "route": f"{case.method} "
                            f"{_template(case.path)}", "case": repr(case), "status": status,
                            "answer": text, "failures": lines}) + "\n")


def _acknowledged(case: Case, response: httpx.Response) -> list[str]:
    """Movement ids a 200/202 acknowledged."""
    doc = response.json()
    if case.path == "/v1/movements":
        return [doc["id"]]
    if case.path == "/v1/movements:batch":
        return [i["movement_id"] for i in doc["items"] if i["status"] != "rejected"]
    return []


def _not_booked_once(svc: Service, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    r = svc.call(svc.api.post, "/v1/erp/applied-counts", {"movement_ids": ids}, as_="admin")
    if r.status_code != 200:
        return {"applied-counts answered": f"{r.status_code} {r.text[:200]}"}
    counts: dict[str, int] = r.json()["counts"]
    return {mid: counts.get(mid) for mid in ids if counts.get(mid) != 1}


# -- the issue's probes ----------------------------------------------------------------------


def _deep_probes() -> Iterator[Any]:
    """990 levels on every POST route: as the whole body, and as one field of a valid one."""
    nested = fs.deep(990, "mixed")
    for name in ("movement", "batch", "order", "shipment", "milestone", "applied", "requeue"):
        r = ROUTES[name]
        expect = frozenset({404, 422} if name == "requeue" else {422})
        yield pytest.param(Case(r.method, r.path, r.caller, _text(nested, "deep mixed x990"),
                                expect=expect), id=f"990-deep-body-{name}")
    inside = {
        "movement": {**movement("p-deep-1"), "quantity": nested},
        "batch": {"movements": [{**movement("p-deep-2"), "location": nested}]},
        "order": {**order("p-deep-3"), "lines": nested},
        "applied": {"movement_ids": nested},
        "requeue": {"envelope": fs.Raw('{"a":' + nested + "}")},
    }
    for name, value in inside.items():
        r = ROUTES[name]
        expect = frozenset({404, 422} if name == "requeue" else {422})
        yield pytest.param(Case(r.method, r.path, r.caller, fs.Body(
            fs.encode(fs.dump(value)), "a field 990 deep"), expect=expect),
            id=f"990-deep-field-{name}")


def _probe(id_: str, method: str, path: str, caller: str, body: fs.Body | None,
           expect: set[int], content_type: str | None = "application/json") -> Any:
    return pytest.param(Case(method, path, caller, body, content_type, frozenset(expect)),
                        id=id_)


PROBES = [
    *_deep_probes(),
    _probe("quantity-1e-6000000-string", "POST", "/v1/movements", "wms",
           _json({**movement("p-tiny-1"), "quantity": "1e-6000000"}), {422}),
    _probe("quantity-1e-6000000-number", "POST", "/v1/movements", "wms",
           _json({**movement("p-tiny-2"), "quantity": fs.Raw("1e-6000000")}), {422}),
    _probe("quantity-1e-6000000-ten-in-a-batch", "POST", "/v1/movements:batch", "wms",
           _json({"movements": [{**movement(f"p-tiny-b{i}"), "quantity": "1e-6000000"}
                                for i in range(10)]}), {422}),
    _probe("quantity-5000-nines", "POST", "/v1/movements", "wms",
           _json({**movement("p-nines"), "quantity": "9" * 5_000}), {422}),
    _probe("lone-surrogate-applied-counts", "POST", "/v1/erp/applied-counts", "admin",
           _text('{"movement_ids": ["\\ud800"]}', "lone surrogate escape"), {422}),
    _probe("duplicate-key-quantity", "POST", "/v1/movements", "wms", _text(
        '{"movement_id": "p-dup", "kind": "receipt", "sku": "' + SKU + '", "location": '
        '"A-01", "quantity": "1", "quantity": "999", "occurred_at": "2026-01-05T08:00:00Z"}',
        "duplicate key quantity"), {422}),
    _probe("content-type-text-plain", "POST", "/v1/movements", "wms",
           _json(movement("p-plain")), {415}, "text/plain"),
    _probe("nul-in-location", "POST", "/v1/movements", "wms",
           _json(movement("p-nul", location="B\u000001")), {422}),
    _probe("slash-in-order-id", "POST", "/v1/orders", "shop", _json(order("O/1")), {422}),
    _probe("get-order-%2F", "GET", "/v1/orders/%2F", "shop", None, {404, 422}, None),
    _probe("get-order-trailing-%2F", "GET", "/v1/orders/O-1%2F", "shop", None, {404, 422},
           None),
]


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PROBES)
def test_the_probes_of_issue_12(svc: Service, case: Case) -> None:
    check(svc, case)


@pytest.mark.parametrize("route", sorted(ROUTES))
@_budget(10)
@given(data=st.data())
def test_hostile_bodies_on_every_json_route(svc: Service, route: str, data: st.DataObject
                                            ) -> None:
    check(svc, data.draw(hostile_cases(route), label="case"))


@pytest.mark.parametrize("route", sorted(ROUTES))
@_budget(12)
@given(data=st.data())
def test_model_shaped_bodies_with_mutated_values(svc: Service, route: str,
                                                 data: st.DataObject) -> None:
    check(svc, data.draw(model_cases(route), label="case"))


@_budget(25)
@given(oid=ODD_PATH_IDS, where=st.sampled_from(["order", "requeue"]))
def test_odd_ids_in_paths(svc: Service, oid: str, where: str) -> None:
    if where == "order":
        check(svc, Case("GET", f"/v1/orders/{oid}", "shop", None, None))
    else:
        check(svc, Case("POST", f"/v1/dead-letters/{oid}/requeue", "admin", _json({})))


def test_a_50_mb_field_is_refused_before_it_is_parsed(svc: Service) -> None:
    """Once, by itself: 50 MB in `location` of an otherwise valid movement."""
    head, tail = json.dumps(movement("p-50mb", location="@")).encode().split(b"@")
    data = head + b"x" * 50_000_000 + tail
    check(svc, Case("POST", "/v1/movements", "wms", fs.Body(data, "location of 50 MB"),
                    expect=frozenset({413})))


def test_afterwards_every_acknowledged_movement_was_booked_once(svc: Service) -> None:
    """Over the whole module (a movement acknowledged twice is still booked once), and the
    intake worker is still the one started with the app."""
    svc.quiet()
    ids = sorted(svc.accepted)
    wrong = {}
    for i in range(0, len(ids), 5_000):
        wrong.update(_not_booked_once(svc, ids[i:i + 5_000]))
    assert not wrong, f"{len(wrong)} of {len(ids)} acknowledged movements: {wrong}"
    assert svc.workers() == [svc.worker]
    for note in svc.stalls_not_repeated:  # noise of a busy machine, for the log
        print("a stall that did not repeat:", note)
    print(f"{len(ids)} movements acknowledged; {svc.waited_s:.1f} s spent waiting for the "
          "loop-lag window to pass after stalls")
