"""Limits on untrusted request bodies, checked before the expensive work (principle 8).

A small body can be made expensive or ambiguous: nesting that runs `json.loads` out of
recursion (a 500, and the death of an intake worker), a hundred thousand values, a number
literal of a million digits or exponent, NaN, a key given twice (the last one silently won), a
lone UTF-16 surrogate that no encoder will write back. Every JSON body of the API is read by
`read_json`, which refuses these with a 422 problem naming the body or the field:

- before `json.loads` runs, from a few passes of C-speed byte operations over the raw body
  (no Python loop over its characters): strict UTF-8, the count of values and the nesting
  depth, computed on the body's brackets, commas and colons outside strings;
- while it runs, from its hooks: number literals (length, exponent), NaN and Infinity. A hook
  that refuses returns a marker instead of raising, so the field can be named afterwards:
  only a refused body is walked to find its markers (and its lone surrogates, when an escape
  of one is in the body);
- keys given twice: the objects' sizes, counted by a hook, fall short of the colons counted
  before; only then is the body parsed again with a hook that sees every pair (which would
  cost twice as much for every body) to name them.

`BodyLimit` is the ASGI side: a body over its size limit is refused (413) before it is read
whole, from its Content-Length or while it is received, and a body that is not JSON (415).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration_core.service.problems import (
    FieldError,
    Problem,
    too_large,
    unsupported_media_type,
    validation_problem,
)

_MAX_REPORTED = 20
"""Field errors listed in one problem: a hostile body may have thousands."""


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """What one JSON body may hold (the defaults are `Settings`')."""

    max_depth: int
    """Deepest nesting of arrays and objects; the document itself is level 1."""
    max_elements: int
    """Most values (objects, arrays, strings, numbers, literals; keys not counted)."""
    max_number_chars: int
    """Longest number literal."""
    max_exponent: int
    """Largest exponent a number literal may write, either sign (``1e-41`` is over 40)."""


# -- before parsing: the body's structure, from its bytes ---------------------------------------

_MARKS = b'"[]{},:'
_NOT_MARKS = bytes(sorted(set(range(256)) - set(_MARKS)))
_SQUARE = bytes.maketrans(b"{}", b"[]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _structure(body: bytes) -> tuple[bytes, bool]:
    """The body's brackets, commas and colons that are outside strings, and whether an escape
    of a UTF-16 surrogate is in it (a pair is fine; a lone one is found after parsing)."""
    surrogates = False
    if b"\\" in body:
        # Pairs of backslashes first, then escaped quotes: what is left of the quotes are the
        # strings' delimiters, and what is left of "\u" escapes are escapes.
        body = body.replace(b"\\\\", b"")
        surrogates = _SURROGATE_ESCAPE.search(body) is not None
        body = body.replace(b'\\"', b"")
    # Quotes alternate opening and closing. Two adjacent ones delimit a string holding no mark
    # (or two strings with only non-marks between them): dropping them loses nothing.
    marks = body.translate(None, _NOT_MARKS).replace(b'""', b"")
    if b'"' in marks:  # a string holds a bracket or a comma: drop the strings' insides
        parts = marks.split(b'"')
        if len(parts) % 2 == 0:
            raise _not_json("a string is not terminated")
        marks = b"".join(parts[::2])
    return marks, surrogates


def _check_structure(marks: bytes, limits: JsonLimits) -> int:
    """Refuses too many values or too deep a nesting; returns the number of object members
    (one colon each)."""
    brackets = marks.translate(_SQUARE, b",:")
    containers = brackets.count(b"[")
    # Each value but the document is the first of its container or follows a comma (an empty
    # container counts once more: a bound, not a count).
    values = 1 + marks.count(b",") + containers
    if values > limits.max_elements:
        raise _over_limit(f"{values:,} JSON values (an empty array or object counts twice); "
                          f"at most {limits.max_elements:,} are accepted")
    if 2 * containers != len(brackets):
        raise _not_json("brackets do not balance")
    depth = 0
    while brackets:  # each pass removes the innermost level: at most max_depth passes
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):
            raise _not_json("brackets do not match")
        depth += 1
        if depth > limits.max_depth:
            raise _over_limit(f"nested deeper than {limits.max_depth} levels")
        brackets = inner
    return marks.count(b":")


# -- while parsing: json.loads' hooks ------------------------------------------------------------


class _Refused:
    """Stands in for a value a hook refused, until the walk names its field."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _KeysTwice(dict[str, Any]):
    """An object in which a key was given more than once."""

    __slots__ = ("twice",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.twice: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in self.twice:
                self.twice.append(key)
            seen.add(key)


class _Reader:
    """A JSON decoder with the limits' hooks. `refused` once a hook returned a marker; `keys`
    counts the members of the objects read (`count`), or `pairs` sees each pair."""

    __slots__ = ("decoder", "keys", "limits", "refused")

    def __init__(self, limits: JsonLimits, pairs: bool = False) -> None:
        self.limits = limits
        self.refused = False
        self.keys = 0
        objects: dict[str, Any] = ({"object_pairs_hook": self.pairs} if pairs else
                                   {"object_hook": self.count})
        self.decoder = json.JSONDecoder(parse_int=self.integer, parse_float=self.real,
                                        parse_constant=self.constant, **objects)

    def parse(self, text: str) -> Any:
        self.refused, self.keys = False, 0
        try:
            return self.decoder.decode(text)
        except ValueError as exc:  # JSONDecodeError
            raise _not_json(str(exc)) from None

    def count(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.keys += len(obj)
        return obj

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            self.refused = True
            return _KeysTwice(pairs)
        return obj

    def integer(self, literal: str) -> int | _Refused:
        if len(literal) > self.limits.max_number_chars:
            return self._too_long(literal)
        return int(literal)

    def real(self, literal: str) -> float | _Refused:
        if len(literal) > self.limits.max_number_chars:
            return self._too_long(literal)
        e = max(literal.find("e"), literal.find("E"))
        if e >= 0 and abs(int(literal[e + 1:])) > self.limits.max_exponent:
            return self._refuse(f"exponent {literal[e + 1:]} is out of range: at most "
                                f"{self.limits.max_exponent} either sign")
        value = float(literal)
        if math.isinf(value):
            return self._refuse("the number is too large for a floating-point value")
        return value

    def constant(self, name: str) -> _Refused:
        return self._refuse(f"{name} is not a JSON number")

    def _too_long(self, literal: str) -> _Refused:
        return self._refuse(f"a number literal of {len(literal):,} characters; at most "
                            f"{self.limits.max_number_chars} are accepted")

    def _refuse(self, reason: str) -> _Refused:
        self.refused = True
        return _Refused(reason)


# -- after a refusal: naming the fields ----------------------------------------------------------


def _faults(value: Any, path: str, surrogates: bool) -> Iterator[FieldError]:
    """Field errors for the markers in `value` (and its lone surrogates, if `surrogates`).
    Recursion is bounded: the depth was checked before parsing."""
    if isinstance(value, _Refused):
        yield FieldError(field=path or "body", message=value.reason)
    elif isinstance(value, dict):
        for key in value.twice if isinstance(value, _KeysTwice) else ():
            yield FieldError(field=_member(path, key), message="key given more than once")
        for key, item in value.items():
            if surrogates and _lone_surrogate(key):
                yield FieldError(field=_member(path, key), message=_SURROGATE)
            yield from _faults(item, _member(path, key), surrogates)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _faults(item, f"{path}[{i}]", surrogates)
    elif surrogates and isinstance(value, str) and _lone_surrogate(value):
        yield FieldError(field=path or "body", message=_SURROGATE)


_SURROGATE = "a lone UTF-16 surrogate (\\ud800-\\udfff) is not a character"


def _lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _member(path: str, key: str) -> str:
    # A key with a lone surrogate could not be written in the problem: escape it.
    name = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{path}.{name}" if path else name


# -- the reader ----------------------------------------------------------------------------------


def read_json(body: bytes, limits: JsonLimits) -> Any:
    """The body's JSON value, or a 422 `Problem` naming the body or the field at fault."""
    try:
        text = body.decode("utf-8")  # strict: refuses encoded surrogates too (RFC 8259: UTF-8)
    except UnicodeDecodeError as exc:
        raise _not_json(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    marks, surrogates = _structure(body)
    members = _check_structure(marks, limits)
    reader = _reader(limits)
    data = reader.parse(text)
    if reader.keys != members:  # a key was given twice (a later one replaced it): find it
        reader = _Reader(limits, pairs=True)
        data = reader.parse(text)
    if reader.refused or surrogates:
        errors = list(islice(_faults(data, "", surrogates), _MAX_REPORTED))
        if errors:
            raise validation_problem(errors)
    return data


_readers = threading.local()


def _reader(limits: JsonLimits) -> _Reader:
    """This thread's reader for `limits`: making a decoder costs more than parsing a small
    body (json.loads makes one per call when given hooks)."""
    reader: _Reader | None = getattr(_readers, "reader", None)
    if reader is None or reader.limits != limits:
        reader = _readers.reader = _Reader(limits)
    return reader


def _not_json(message: str) -> Problem:
    return validation_problem([FieldError(field="body", message=f"invalid JSON: {message}")],
                              "Request body is not JSON")


def _over_limit(message: str) -> Problem:
    return validation_problem([FieldError(field="body", message=message)],
                              "Request body is over a limit")


# -- ASGI: size and media type -------------------------------------------------------------------


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or application/*+json, with at most a UTF-8 charset parameter."""
    if not content_type:
        return False
    media, *params = content_type.split(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/")
                                            and media.endswith("+json")):
        return False
    for param in params:
        name, _, value = param.partition("=")
        if (name.strip().lower() == "charset"
                and value.strip().strip('"').lower() not in ("utf-8", "utf8")):
            return False
    return True


class BodyLimit:
    """ASGI middleware: a POST, PUT or PATCH body of at most `limit` bytes (`by_path` for
    routes with their own limit) that is JSON, or a problem before the app sees the request.

    A declared Content-Length over the limit is refused before anything is read; a body
    without one (chunked) is counted as it arrives and refused as soon as it is over. The body
    is then handed to the app as one message."""

    def __init__(self, app: ASGIApp, limit: int, by_path: Mapping[str, int] | None = None
                 ) -> None:
        self.app = app
        self.limit = limit
        self.by_path = dict(by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.limit)
        headers = Headers(scope=scope)
        body = await read_body(scope, receive, send, headers, limit)
        if body is None:
            return
        if body and not is_json_media_type(headers.get("content-type")):
            await _answer(unsupported_media_type(headers.get("content-type")), scope, receive,
                          send)
            return
        await self.app(scope, replay_body(body, receive), send)


async def read_body(scope: Scope, receive: Receive, send: Send, headers: Headers, limit: int
                    ) -> bytes | None:
    """The whole body if it is at most `limit` bytes; else a 413 is answered and None
    returned (also when the client left). A declared Content-Length over the limit is refused
    before anything is read; a stream is counted as it arrives."""
    declared = _content_length(headers)
    if declared is not None and declared > limit:
        await _answer(too_large(f"{declared:,} bytes declared", limit), scope, receive, send)
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: no one to answer
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _answer(too_large(f"more than {limit:,} bytes sent", limit), scope,
                          receive, send)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the whole body once, then waits for what the client does next
    (a disconnect), as the server's would."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    try:
        return None if value is None else int(value)
    except ValueError:  # the server refuses those before the app; count the stream instead
        return None


async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    await problem.response(scope["path"])(scope, receive, send)
