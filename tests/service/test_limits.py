"""Limits before parsing (integration_core/service/limits.py): the guarded JSON reader, the
body size and media type middleware, and the hostile-client probes of issue 12 against the
running service, each a 4xx problem naming the field with nothing stored."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_core.service import intake, limits
from integration_core.service.intake import BatchRead, IntakeFailed
from integration_core.service.limits import JsonLimits, is_json_media_type, read_json
from integration_core.service.problems import Problem
from tests.service.helpers import KEYS, SKU, Api, make_settings, movement, order, running

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"
LIMITS = JsonLimits(max_depth=32, max_elements=1000, max_number_chars=40, max_exponent=40)


def refused(body: bytes | str, limits_: JsonLimits = LIMITS) -> Problem:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    with pytest.raises(Problem) as caught:
        read_json(raw, limits_)
    assert caught.value.status == 422
    return caught.value


def fields(p: Problem) -> list[str]:
    return [e.field for e in p.errors]


@pytest.fixture
def loads_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every body the JSON parser was run on (json.loads runs it too)."""
    calls: list[str] = []
    real = json.JSONDecoder.decode

    def counting(self: json.JSONDecoder, text: str, *args: Any, **kw: Any) -> Any:
        calls.append(text[:40])
        return real(self, text, *args, **kw)

    monkeypatch.setattr(json.JSONDecoder, "decode", counting)
    return calls


# -- the reader: structure, before parsing -------------------------------------------------------


@pytest.mark.parametrize("depth", [33, 990, 100_000])
@pytest.mark.parametrize("shape", ["[%s]", '{"a":%s}', '[{"a":%s}]'])
def test_nesting_past_the_limit_is_refused_before_parsing(
        depth: int, shape: str, loads_calls: list[str]) -> None:
    opened, closed = shape.split("%s")
    body = opened * depth + "0" + closed * depth
    p = refused(body, JsonLimits(32, 10**7, 40, 40))
    assert fields(p) == ["body"] and "deeper than 32" in p.detail, p.detail
    assert loads_calls == []  # 100,000 levels would be a RecursionError inside json.loads


def test_nesting_at_the_limit_and_brackets_inside_strings_are_fine() -> None:
    assert read_json(b"[" * 32 + b"]" * 32, LIMITS)  # 31 lists around an empty one
    tricky = {"a": "[[[[{{{{" * 200, "b": '\\"[[[', "c": "\\", "d": [",,,", "]]]", "\"{"],
              "e:": "::", "": {"k": "v:"}}
    assert read_json(json.dumps(tricky).encode(), LIMITS) == tricky


def test_too_many_values_are_refused_before_parsing(loads_calls: list[str]) -> None:
    p = refused(json.dumps([0] * 1000))
    assert fields(p) == ["body"] and "at most 1,000" in p.detail
    assert loads_calls == []
    assert read_json(json.dumps([0] * 998).encode(), LIMITS) == [0] * 998
    assert len(loads_calls) == 1  # the counter does see the parser run
    # commas inside strings are not values
    assert read_json(json.dumps(["," * 5000]).encode(), LIMITS) == ["," * 5000]


@pytest.mark.parametrize("body", [b"][", b"[}", b"[[]", b'["abc', b'{"a": "\\"}', b"{not json",
                                  b"", b"\xef\xbb\xbf{}", b'{"a": 1} x', b"\xff{",
                                  "{\"a\": 1}".encode("utf-16"), b'{"a": "\xed\xa0\x80"}'])
def test_what_is_not_json_or_not_utf8_is_a_422_naming_the_body(body: bytes) -> None:
    p = refused(body)
    assert fields(p) == ["body"] and p.title == "Request body is not JSON", p.detail


# -- the reader: values, while parsing -----------------------------------------------------------


@pytest.mark.parametrize(("literal", "words"), [
    ("1e-6000000", "exponent -6000000"), ("1E+999999999", "exponent +999999999"),
    ("9" * 5000, "5,000 characters"), ("0." + "0" * 50 + "1", "53 characters"),
    ("1e41", "exponent 41"), ("NaN", "NaN is not a JSON number"),
    ("-Infinity", "-Infinity is not"), ("Infinity", "Infinity is not"),
])
def test_number_literals_are_bounded_and_name_the_field(literal: str, words: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_float(text: str) -> float:
        raise AssertionError(f"float({text[:20]!r}) was called")

    monkeypatch.setattr(limits, "float", no_float, raising=False)  # the hook refuses first
    body = f'{{"movements": [{{"quantity": 1}}, {{"quantity": {literal}}}]}}'
    p = refused(body)
    assert fields(p) == ["movements[1].quantity"] and words in p.detail, p.detail


def test_numbers_within_the_limits_are_read_as_before() -> None:
    doc = read_json(b'{"a": 12, "b": -1.5, "c": 1e40, "d": 0.1e-40, "e": -0}', LIMITS)
    assert doc == {"a": 12, "b": -1.5, "c": 1e40, "d": 0.1e-40, "e": 0}
    assert isinstance(doc["a"], int) and isinstance(doc["b"], float)


def test_a_key_given_twice_is_refused_naming_the_key() -> None:
    p = refused(b'{"movement_id": "m1", "quantity": "1", "quantity": "999"}')
    assert fields(p) == ["quantity"] and "more than once" in p.detail
    p = refused(b'{"lines": [{"sku": "A"}, {"sku": "A", "unit": "EA", "sku": "B", "sku": "C"}]}')
    assert fields(p) == ["lines[1].sku"]
    assert read_json(b'{"a": {"k": 1}, "b": {"k": 2}}', LIMITS) == {"a": {"k": 1},
                                                                     "b": {"k": 2}}


def test_a_lone_surrogate_is_refused_naming_the_field_or_key() -> None:
    assert fields(refused(b'{"movement_ids": ["ok", "\\ud800"]}')) == ["movement_ids[1]"]
    assert fields(refused(b'{"a": "x\\udfffy"}')) == ["a"]
    assert fields(refused(b'{"a": "\\udc00\\ud800"}')) == ["a"]  # a pair the wrong way round
    assert fields(refused(b'{"k\\ud800": 1}')) == ["k\\ud800"]  # written so it can be shown
    assert fields(refused(b'"\\ud800"')) == ["body"]
    # a pair is a character; an escaped backslash before "ud800" is no escape at all
    assert read_json(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}', LIMITS) == {
        "a": "\U0001f600", "b": "\\ud800"}


def test_a_problem_lists_at_most_20_fields() -> None:
    p = refused(json.dumps([{"a": 1}] * 100).replace('"a": 1', '"a": 1, "a": 2'))
    assert len(p.errors) == 20 and p.errors[0].field == "[0].a"


# -- the media type ------------------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "ok"), [
    ("application/json", True), ("application/json; charset=utf-8", True),
    ("Application/JSON;charset=\"UTF-8\"", True), ("application/problem+json", True),
    ("application/merge-patch+json", True), ("application/json; charset=latin-1", False),
    ("text/plain", False), ("text/json", False), ("application/jsonx", False),
    ("application/x-www-form-urlencoded", False), ("multipart/form-data; boundary=x", False),
    ("*/*", False), ("", False), (None, False),
])
def test_json_media_types(content_type: str | None, ok: bool) -> None:
    assert is_json_media_type(content_type) is ok


# -- the service ---------------------------------------------------------------------------------

ROUTES = [
    ("/v1/movements", "wms"), ("/v1/movements:batch", "wms"), ("/v1/orders", "shop"),
    ("/v1/shipments/confirmations", "wms"), ("/v1/carrier/milestones", "carrier"),
    ("/v1/erp/applied-counts", "admin"), ("/v1/dead-letters/erp/1/requeue", "admin"),
]


async def send(api: Api, path: str, content: bytes | AsyncIterator[bytes], as_: str = "wms",
               content_type: str | None = "application/json", method: str = "POST"
               ) -> httpx.Response:
    headers = {"X-API-Key": KEYS[as_]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await api.http.request(method, path, content=content, headers=headers)


def problem(r: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status and doc["field"] == field, doc
    return doc


async def published(api: Api) -> int:
    n: int = (await api.status())["counters"]["published"]
    return n


async def test_deep_json_on_every_route_is_a_422_naming_the_body(tmp_path: Path) -> None:
    deep = b"[" * 990 + b"]" * 990
    async with running(make_settings(tmp_path / "t.db")) as api:
        for path, who in ROUTES:
            doc = problem(await send(api, path, deep, who), 422, "body")
            assert "deeper than 32" in doc["detail"]
        r = await send(api, "/v1/admin/faults/erp", deep, "admin", method="PUT")
        problem(r, 422, "body")
        assert await published(api) == 0


async def test_the_intake_worker_survives_hostile_batches(tmp_path: Path) -> None:
    """With a worker process: the deep body and ten 1e-6000000 quantities are refused, the
    good item of the second batch accepted, and the worker is the same process throughout."""
    async with running(make_settings(tmp_path / "t.db", intake_workers=1)) as api:
        (pid,) = workers()
        problem(await send(api, "/v1/movements:batch", b'{"movements": ' + b"[" * 990 +
                           b"]" * 990 + b"}"), 422, "body")
        bad = [movement(f"b{i}", quantity="1e-6000000") for i in range(10)]
        r = await api.post("/v1/movements:batch", {"movements": [*bad, movement("ok")]})
        assert r.status_code == 202, r.text
        items = r.json()["items"]
        assert [i["problem"]["field"] for i in items[:10]] == [
            f"movements[{i}].quantity" for i in range(10)]
        assert items[10]["status"] == "accepted"
        r = await send(api, "/v1/movements:batch",
                       b'{"movements": [{"quantity": 1e-6000000}, {"quantity": NaN}]}')
        assert problem(r, 422, "movements[0].quantity")["errors"][1]["field"] == (
            "movements[1].quantity")
        assert workers() == [pid]
        await api.drain()
        assert await api.applied(["ok", "b0"]) == {"ok": 1, "b0": 0}
        assert await published(api) == 1


def workers() -> list[int]:
    return sorted(p.pid for p in multiprocessing.active_children()
                  if p.name == "twin-intake" and p.is_alive() and p.pid is not None)


def test_the_worker_answers_a_failure_instead_of_dying(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever raises while a batch is read (a bug of ours) is answered as a failure (the
    request is a 500) and the worker reads the next batch: `_serve` run in a thread here."""
    real = intake.read_batch

    def breaking(catalog: Any, body: bytes, batch_max: int, limits_: JsonLimits) -> BatchRead:
        if body == b"boom":
            raise RecursionError("maximum recursion depth exceeded")
        return real(catalog, body, batch_max, limits_)

    monkeypatch.setattr(intake, "read_batch", breaking)
    ours, theirs = socket.socketpair()
    worker = threading.Thread(target=intake._serve, args=(theirs, make_settings(tmp_path / "t.db")))
    worker.start()

    def ask(body: bytes) -> BatchRead:
        ours.sendall(intake._HEADER.pack(len(body)) + body)
        frame = intake._recv_frame(ours)
        assert frame is not None
        read: BatchRead = pickle.loads(frame)
        return read

    try:
        failed = ask(b"boom")
        assert failed.failure == "RecursionError: maximum recursion depth exceeded"
        with pytest.raises(IntakeFailed):
            failed.raise_problem()
        assert [i for i, _ in ask(json.dumps({"movements": [movement("m1")]}).encode()).valid
                ] == [0]
    finally:
        ours.close()
        worker.join(5)
    assert not worker.is_alive()


@pytest.mark.parametrize(("path", "who", "body", "field"), [
    ("/v1/movements", "wms", movement("m1", quantity="1e-6000000"), "quantity"),
    ("/v1/orders", "shop",
     {**order("O-1"), "lines": [{"line_no": 1, "sku": SKU, "quantity": "1e-6000000"}]},
     "lines[0].quantity"),
    ("/v1/orders", "shop",
     {**order("O-1"), "lines": [{"line_no": 1, "sku": SKU, "quantity": "1",
                                 "unit_price": "1E-999999"}]}, "lines[0].unit_price"),
    ("/v1/movements", "wms", movement("m1", quantity="1" * 41), "quantity"),
])
async def test_absurd_numeric_strings_are_a_422_naming_the_field(
        tmp_path: Path, path: str, who: str, body: dict[str, Any], field: str) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        problem(await api.post(path, body, as_=who), 422, field)
        assert await published(api) == 0


async def test_a_body_over_the_limit_is_a_413_before_it_is_read(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", max_body_bytes=4096, batch_max=10)
    big = json.dumps(movement("m1", location="x" * 5000)).encode()
    declared = f"{len(big):,} bytes declared"
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for i in range(0, 200_000, 1000):
            sent.append(i)
            yield b" " * 1000

    async with running(settings) as api:
        doc = problem(await send(api, "/v1/movements", big), 413, "body")
        assert declared in doc["detail"] and "at most 4,096" in doc["detail"]
        problem(await send(api, "/v1/movements", chunks()), 413, "body")
        assert len(sent) == 5  # refused at the fifth kilobyte, the rest never read
        # the batch route has its own, larger limit: 4 KiB per movement of batch_max
        batch = {"movements": [movement(f"b{i}", references=["R" * 500]) for i in range(10)]}
        assert len(json.dumps(batch)) > 4096
        assert (await api.post("/v1/movements:batch", batch)).status_code == 202
        problem(await send(api, "/v1/movements:batch", b" " * 41_000), 413, "body")
        r = await api.post("/v1/movements", movement("m2", location="x" * 129))
        problem(r, 422, "location")  # a long id under the body limit: the model's own limit
        assert await published(api) == 10


@pytest.mark.parametrize(("path", "who"), ROUTES)
async def test_a_body_that_is_not_json_is_a_415(tmp_path: Path, path: str, who: str) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        good = json.dumps(movement("m1")).encode()
        for content_type in ["text/plain", None, "application/x-www-form-urlencoded",
                             "application/json; charset=latin-1"]:
            r = await send(api, path, good, who, content_type)
            doc = problem(r, 415, "Content-Type")
            assert "application/json" in doc["detail"]
        r = await send(api, "/v1/admin/faults/erp", b'{"mode": "up"}', "admin", "text/plain",
                       method="PUT")
        problem(r, 415, "Content-Type")
        assert await published(api) == 0
        r = await send(api, "/v1/movements", good, "wms", "application/json; charset=UTF-8")
        assert r.status_code == 202, r.text


async def test_posts_without_a_body_need_no_content_type(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        assert (await send(api, "/v1/reconcile", b"", "admin", None)).status_code == 200
        r = await send(api, "/v1/dead-letters/erp/1/requeue", b"", "admin", None)
        problem(r, 404, "dead_letter_id")


async def test_a_lone_surrogate_in_applied_counts_is_a_422(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await send(api, "/v1/erp/applied-counts", b'{"movement_ids": ["m1", "\\ud800"]}',
                       "admin")
        problem(r, 422, "movement_ids[1]")
        r = await api.post("/v1/erp/applied-counts", {"movement_ids": ["B\x0001"]}, as_="admin")
        problem(r, 422, "movement_ids[0]")


async def test_a_key_given_twice_is_refused_not_booked(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        text = json.dumps(movement("m1", quantity=1))[:-1] + ', "quantity": "999"}'
        doc = problem(await send(api, "/v1/movements", text.encode()), 422, "quantity")
        assert "more than once" in doc["detail"]
        assert await published(api) == 0
        assert (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()["wms_on_hand"] == 0


BAD_IDS: list[tuple[str, Callable[[str], dict[str, Any]], str, str]] = [
    ("/v1/movements", lambda v: movement("m1", location=v), "wms", "location"),
    ("/v1/movements", lambda v: movement(v), "wms", "movement_id"),
    ("/v1/movements", lambda v: movement("m1", sku=v), "wms", "sku"),
    ("/v1/movements", lambda v: movement("m1", lot=v), "wms", "lot"),
    ("/v1/orders", lambda v: order(v), "shop", "order_id"),
    ("/v1/orders", lambda v: {**order("O-1"), "customer_id": v}, "shop", "customer_id"),
    ("/v1/carrier/milestones", lambda v: {"shipment_id": "S-1", "tracking": v,
                                          "milestone": "delivered",
                                          "at": "2026-01-05T12:00:00Z"}, "carrier", "tracking"),
]


@pytest.mark.parametrize(("path", "make", "who", "field"), BAD_IDS,
                         ids=[f"{p}:{f}" for p, _, _, f in BAD_IDS])
async def test_ids_with_control_characters_or_a_slash_are_refused(
        tmp_path: Path, path: str, make: Callable[[str], dict[str, Any]], who: str,
        field: str) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        for bad in ["B\x0001", "B\x1f", "O/1", "a b", "a?b", "a#b", "a%2F", ".."]:
            doc = problem(await api.post(path, make(bad), as_=who), 422, field)
            assert "printable ASCII" in doc["detail"] or "control" in doc["detail"], doc
        assert await published(api) == 0
        rows = (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()["rows"]
        assert rows == []


async def test_no_redirect_and_no_bare_404_for_odd_paths(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        for path in ["/v1/orders/%2F", "/v1/orders/O-1/", "/v1/orders/", "/v1/status/",
                     "/v1/inventory/%2F"]:
            r = await api.get(path, as_="shop" if "orders" in path else "admin")
            assert r.status_code == 404 and r.headers["content-type"] == PROBLEM, (path, r)
        for path, field in [("/v1/orders/a%20b", "order_id"), ("/v1/orders/%00", "order_id"),
                            ("/v1/orders/" + "x" * 129, "order_id"),
                            ("/v1/inventory/a%3Fb", "sku")]:
            r = await api.get(path, as_="admin")
            problem(r, 422, field)


async def test_ten_thousand_unknown_keys_make_a_short_problem(tmp_path: Path) -> None:
    """Found by `make fuzz`: an object of 10,000 keys (within the value limit) listed every
    validation error, 150 ms of problem building on the loop. A problem lists 20, counts
    the rest."""
    body = json.dumps({f"k{i}": 0 for i in range(10_000)})
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.http.post("/v1/movements", content=body, headers={
            "X-API-Key": KEYS["wms"], "Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        errors = r.json()["errors"]
        assert len(errors) == 21 and "more errors not listed" in errors[-1]["message"]
        assert len(r.content) < 10_000
