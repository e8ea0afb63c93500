"""Hypothesis strategies for the service's fuzz suite (`test_fuzz.py`): raw request bodies.

Two families, both ending as the exact bytes sent:

- *hostile JSON*: arbitrary trees, and what a tree strategy would not reach by chance: nesting
  far past 1,000 levels (built as text, iteratively), arrays and objects of 100,000s of
  elements, number literals of thousands of digits or exponents of millions, NaN/Infinity,
  duplicate keys (written as text: a dict cannot hold them), lone surrogates as ``\\ud800``
  escapes, NUL and other control characters, megabyte strings, non-UTF-8 bytes, empty bodies;
- *model-shaped*: bodies built from the canonical models' fields (Movement, SalesOrder,
  Shipment, ShipmentMilestone, the batch and the small admin bodies), valid for the item
  master `make_settings` builds, then mutated (a field replaced by a hostile value or a value
  of the wrong type, dropped, duplicated, or an unknown field added), so the fuzz reaches
  validation and the store, not only the JSON parser.

A generated value is a `Body`: the bytes plus a short `note` saying how they were made, so a
falsifying example stays readable when its body is 100 kB of brackets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from integration_core.models import Channel, Milestone, MovementKind, ShipmentStatus

SKUS = [f"SKU-{i:05d}" for i in range(50)]
"""The item master of `tests.service.helpers.make_settings` (catalog_skus=50; EA, CS = 12)."""

DEEP = (990, 1_001, 5_000, 100_000)
"""Nesting depths tried: just under CPython's recursion limit, just past it, far past it."""


class Raw(str):
    """JSON text written as it is: a number literal, an escape, a whole nested fragment."""

    __slots__ = ()


class Obj(tuple[tuple[str, Any], ...]):
    """A JSON object as (key, value) pairs in order; unlike a dict, a key may repeat."""

    __slots__ = ()


def dump(value: Any, ascii_only: bool = True) -> str:
    """JSON text of `value`, with `Raw` fragments and `Obj` pairs written as they are."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj | dict):
        pairs = value if isinstance(value, Obj) else value.items()
        return "{" + ",".join(json.dumps(k, ensure_ascii=ascii_only) + ":" + dump(v, ascii_only)
                              for k, v in pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate (only when not escaped) becomes its invalid 3-byte form."""
    return text.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Body:
    """Bytes of a request body and how they were made."""

    data: bytes
    note: str

    def __repr__(self) -> str:
        return f"Body({self.note}, {abbreviate(self.data)})"


def abbreviate(data: bytes, keep: int = 160) -> str:
    if len(data) <= 2 * keep:
        return repr(data)
    return f"{data[:keep]!r} ... <{len(data):,} bytes> ... {data[-keep // 2:]!r}"


# -- hostile fragments ---------------------------------------------------------------------------


def deep(depth: int, kind: str, inner: str = "0") -> Raw:
    """`depth` levels of nesting around `inner`, built as text (no recursion anywhere)."""
    if kind == "array":
        return Raw("[" * depth + inner + "]" * depth)
    if kind == "object":
        return Raw('{"a":' * depth + inner + "}" * depth)
    return Raw('[{"a":' * (depth // 2) + inner + "}]" * (depth // 2))  # mixed


def wide(n: int, kind: str) -> Raw:
    if kind == "array":
        return Raw("[" + ",".join(["0"] * n) + "]")
    return Raw("{" + ",".join(f'"k{i}":0' for i in range(n)) + "}")


NUMBER_LITERALS = [
    "1e-6000000", "1e6000000", "-1e-6000000", "1E+999999999", "9" * 5_000, "-" + "9" * 5_000,
    "0." + "0" * 5_000 + "1", "1" + "0" * 100_000, "NaN", "Infinity", "-Infinity", "-0", "0e0",
    "1e-400", "1e400", "123456789012345678901234567890", "0.1e-2147483648",
]
"""JSON number literals (and Python's NaN/Infinity extensions) that are hard on a parser or a
Decimal: thousands of digits, exponents of millions."""

NUMBER_STRINGS = [*NUMBER_LITERALS, "sNaN", "nan", "inf", "1_000", "0x10", " 1 ", "1e", "",
                  "\u0661\u0662", "１２", "1.0000000000000000000000000001", "1e-7", "12e-1"]
"""The same as strings (Decimal reads many of them), and a few oddities."""

STRING_ESCAPES = [
    '"\\ud800"', '"\\udfff"', '"\\udc00\\ud800"', '"a\\ud800b"', '"\\u0000"', '"B\\u000001"',
    '"\\u001f\\u007f\\u0085\\u2028"', '"\\uffff"', '"\\ufeff"', '"\\\\"', '"\\ud83d\\ude00"',
]
"""String literals written with escapes: lone surrogates, NUL, other control characters."""

ODD_STRINGS = [
    "", " ", "\t", "\x00", "B\x0001", "a\x1fb", "\x7f", "\u2028", "\ufeff", "A/B", "/", "%2F",
    "..", "../etc", "a?b=1", "a#b", "a b", "é", "日本", "\U0001f600", "ℌ", "Ａ", "a" * 128,
    "a" * 129, "a" * 10_000, " padded ", "null", "SKU-00001\x00", "\ud800", "a\udfffb",
    "\udc00\ud800",
]
"""Plain strings (json.dumps escapes what it must) for ids and other text fields."""


def hostile_text() -> st.SearchStrategy[str]:
    """Text of every category, surrogates and controls included (json.dumps escapes them)."""
    chars = st.one_of(st.characters(), st.characters(categories=["Cs", "Cc", "Cf", "Co"]))
    return st.one_of(st.sampled_from(ODD_STRINGS), st.text(chars, max_size=40))


@st.composite
def fragments(draw: st.DrawFn) -> tuple[Raw, str]:
    """One hostile JSON value as text, and its note."""
    pick = draw(st.sampled_from(["deep", "wide", "number", "escape", "long", "tree"]))
    if pick == "deep":
        depth = draw(st.one_of(st.sampled_from(DEEP), st.integers(900, 3_000)))
        kind = draw(st.sampled_from(["array", "object", "mixed"]))
        return deep(depth, kind), f"deep {kind} x{depth}"
    if pick == "wide":
        n = draw(st.sampled_from([10_000, 100_000, 300_000]))
        kind = draw(st.sampled_from(["array", "object"]))
        return wide(n, kind), f"wide {kind} x{n}"
    if pick == "number":
        lit = draw(st.sampled_from(NUMBER_LITERALS))
        return Raw(lit), f"number {lit[:24]}{'...' if len(lit) > 24 else ''}"
    if pick == "escape":
        esc = draw(st.sampled_from(STRING_ESCAPES))
        return Raw(esc), f"escape {esc}"
    if pick == "long":
        n = draw(st.sampled_from([10_000, 1_000_000]))
        unit = draw(st.sampled_from(["x", "\\u0000", "\\ud800", "é"]))
        return Raw('"' + unit * n + '"'), f"string of {n} x {unit}"
    value = draw(json_trees())
    return Raw(dump(value)), "tree"


def json_trees() -> st.SearchStrategy[Any]:
    """Arbitrary small JSON trees, with hostile scalars and objects with repeated keys."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(),  # json.dumps: NaN, Infinity
        hostile_text(), st.sampled_from(NUMBER_LITERALS).map(Raw),
        st.sampled_from(STRING_ESCAPES).map(Raw),
    )
    keys = st.one_of(st.sampled_from(["a", "movement_id", "quantity", "movements", "lines"]),
                     hostile_text())
    return st.recursive(scalars, lambda kids: st.one_of(
        st.lists(kids, max_size=6),
        st.lists(st.tuples(keys, kids), max_size=6).map(lambda kv: Obj(tuple(kv))),
    ), max_leaves=25)


BAD_BYTES = [
    b"", b" ", b"\n\t ", b"\x00", b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b"{\xff}",
    b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xe9"}', b"{", b"[", b'{"a":',
    b'{"a":1} trailing', b"{}{}", b"null", b"[]", b"{}", b"0", b'"x"', b"true",
    "{\"movement_id\": \"é\"}".encode("utf-16"), "{\"sku\": \"é\"}".encode("latin-1"),
]
"""Bodies that are not JSON, not UTF-8, empty, truncated, or JSON of the wrong shape."""


@st.composite
def hostile_bodies(draw: st.DrawFn) -> Body:
    """A whole body that is hostile JSON, or not JSON at all."""
    pick = draw(st.sampled_from(["fragment", "fragment", "bytes", "binary", "tree"]))
    if pick == "bytes":
        data = draw(st.sampled_from(BAD_BYTES))
        return Body(data, "bad bytes")
    if pick == "binary":
        return Body(draw(st.binary(max_size=64)), "random bytes")
    if pick == "tree":
        ascii_only = draw(st.booleans())
        return Body(encode(dump(draw(json_trees()), ascii_only)),
                    "tree" if ascii_only else "tree, raw UTF-8")
    text, note = draw(fragments())
    return Body(encode(text), note)


# -- model-shaped bodies -------------------------------------------------------------------------


def ids() -> st.SearchStrategy[str]:
    """Valid ids, mostly fresh ones (so bodies get accepted); short ones repeat across
    examples (duplicates, conflicts). Odd ids come in by mutation (`ODD_VALUES`)."""
    return st.one_of(
        st.uuids().map(lambda u: f"fz-{u.hex[:16]}"),
        st.uuids().map(lambda u: f"fz-{u.hex[:16]}"),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True),
    )


def timestamps() -> st.SearchStrategy[str]:
    return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC)).map(lambda d: d.isoformat())


def quantities(low: int = 1, high: int = 1_000) -> st.SearchStrategy[Any]:
    """A quantity as the API takes it: mostly a plain integer string, sometimes a number."""
    return st.one_of(st.integers(low, high).map(str), st.integers(low, high))


ODD_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(NUMBER_STRINGS), st.sampled_from(NUMBER_LITERALS).map(Raw),
    st.sampled_from(STRING_ESCAPES).map(Raw), hostile_text(),
    st.sampled_from([None, True, False, 0, -1, 1.5, 10**13, -(10**13), 2**63, [], {}, [1],
                     {"a": 1}, 1767600000]),
    st.integers(), st.floats(),
    st.builds(deep, st.sampled_from([990, 1_001, 5_000]),
              st.sampled_from(["array", "object", "mixed"])),
)
"""Hostile or wrongly typed values for one field of an otherwise valid body."""


@st.composite
def movements(draw: st.DrawFn) -> dict[str, Any]:
    """A Movement the item master accepts (before any mutation)."""
    kind = draw(st.sampled_from(list(MovementKind)))
    if kind in ("adjustment", "cycle_count"):
        qty = draw(st.one_of(quantities(1, 500), quantities(-500, -1)))
    else:
        qty = draw(quantities())
    body: dict[str, Any] = {
        "movement_id": draw(ids()), "kind": kind.value, "sku": draw(st.sampled_from(SKUS)),
        "location": draw(st.from_regex(r"[A-Z]-[0-9]{2}", fullmatch=True)),
        "quantity": qty, "occurred_at": draw(timestamps()),
    }
    if draw(st.booleans()):
        body["unit"] = draw(st.sampled_from([None, "EA", "CS"]))
    if draw(st.integers(0, 4)) == 0:
        body["reason_code"] = draw(st.sampled_from(["DMG", "COUNT", None]))
        body["references"] = draw(st.lists(st.sampled_from(["SO-1", "ASN-7"]), max_size=2))
    return body


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    return {
        "order_id": draw(ids()), "customer_id": "C-1",
        "channel": draw(st.sampled_from(list(Channel))).value,
        "priority": draw(st.integers(1, 9)), "placed_at": draw(timestamps()),
        "lines": [{"line_no": i + 1, "sku": draw(st.sampled_from(SKUS)),
                   "quantity": draw(quantities(1, 20)),
                   "unit_price": draw(st.sampled_from(["2.50", "0", "19.99"]))}
                  for i in range(n)],
    }


@st.composite
def shipments(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 2))
    return {
        "shipment_id": draw(ids()), "order_id": draw(ids()), "warehouse_id": "WH1",
        "tracking": draw(st.sampled_from(["T-1", "1Z999"])),
        "status": draw(st.sampled_from(list(ShipmentStatus))).value,
        "lines": [{"order_line_no": i + 1, "sku": draw(st.sampled_from(SKUS)),
                   "quantity_base": draw(st.integers(1, 20))} for i in range(n)],
        "shipped_at": draw(timestamps()),
    }


@st.composite
def milestones(draw: st.DrawFn) -> dict[str, Any]:
    return {"shipment_id": draw(ids()), "tracking": draw(st.sampled_from(["T-1", "1Z999"])),
            "milestone": draw(st.sampled_from(list(Milestone))).value,
            "at": draw(timestamps()), "detail": draw(st.sampled_from(["", "left depot"]))}


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    items = draw(st.lists(st.one_of(movements(), mutated(movements())), min_size=1,
                          max_size=12))
    return {"movements": items}


def faults() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"mode": st.sampled_from(["up", "down", "slow", "flaky"])},
        optional={"latency_s": st.floats(0, 60), "failure_rate": st.floats(0, 1)})


def applied_queries() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"movement_ids": st.lists(ids(), max_size=5)})


def requeues() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), st.fixed_dictionaries({"envelope": st.one_of(
        st.none(), st.fixed_dictionaries({"message_id": ids(), "type": st.just("x")}))}))


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every field path of a body, nested lines and items included."""
    out: list[tuple[str | int, ...]] = []
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


def _parent(body: Any, path: tuple[str | int, ...]) -> Any:
    for k in path[:-1]:
        body = body[k]
    return body


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A valid body with one to three changes: a field replaced by an odd value, dropped, or
    an unknown field added. Returns a dict, or an `Obj` when a key was written twice."""
    body = json.loads(json.dumps(draw(valid)))  # a deep copy we may change
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(body)
        action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "extra"]))
        if not paths:
            action = "extra"
        if action == "extra":
            target = draw(st.sampled_from(
                [(), *[p for p in paths if isinstance(_get(body, p), dict)]]))
            node = _get(body, target)
            if isinstance(node, dict):
                node[draw(st.sampled_from(["extra", "quantity_base", "__proto__", ""]))] = (
                    draw(ODD_VALUES))
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(body, path)
        if action == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ODD_VALUES)
    if isinstance(body, dict) and body and draw(st.integers(0, 5)) == 0:
        key = draw(st.sampled_from(sorted(body)))  # the same key twice: the last one wins
        pairs = [*body.items(), (key, draw(ODD_VALUES))]
        return Obj(tuple(pairs))
    return body


def _get(body: Any, path: tuple[str | int, ...]) -> Any:
    for k in path:
        body = body[k]
    return body


@st.composite
def shaped(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]]) -> Body:
    """A model-shaped body: valid, or mutated; written with or without escapes."""
    pick = draw(st.sampled_from(["valid", "mutated", "mutated"]))
    value = draw(valid) if pick == "valid" else draw(mutated(valid))
    ascii_only = draw(st.booleans())
    return Body(encode(dump(value, ascii_only)), pick if ascii_only else f"{pick}, raw UTF-8")
