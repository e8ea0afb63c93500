"""RFC 9457 problem details (``application/problem+json``) that name the field at fault.

Every error the API returns has this shape:

    {"type": "urn:interop-twin:problem:validation", "title": "Request body is invalid",
     "status": 422, "detail": "lines[0].sku: unknown SKU 'X'", "instance": "/v1/orders",
     "field": "lines[0].sku", "errors": [{"field": "lines[0].sku", "message": "..."}]}

`field` is the first field at fault (absent when no field is); `errors` lists all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from starlette.responses import JSONResponse

from integration_core.models import ID_PATTERN, ID_RULE, TEXT_PATTERN, TEXT_RULE

MEDIA_TYPE = "application/problem+json"
MAX_FIELD_ERRORS = 20
"""Field errors one problem lists at most (the rest are counted)."""
_TYPE = "urn:interop-twin:problem:"
_RULES = {ID_PATTERN: ID_RULE, TEXT_PATTERN: TEXT_RULE}
"""The canonical models' patterns in words: pydantic's message would quote the regex."""


class FieldError(BaseModel):
    field: str = Field(description="Path of the field, e.g. lines[0].sku; 'body' for the "
                                   "whole body.")
    message: str


class ProblemBody(BaseModel):
    """The problem document (for the OpenAPI schema)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    """Raised anywhere in a request; rendered by the app's exception handler."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": _TYPE + self.slug, "title": self.title, "status": self.status,
            "detail": self.detail, "instance": instance,
        }
        if self.errors:
            doc["field"] = self.errors[0].field
            doc["errors"] = [e.model_dump() for e in self.errors]
        return doc

    def response(self, instance: str | None = None) -> JSONResponse:
        return JSONResponse(self.body(instance), status_code=self.status,
                            headers=self.headers, media_type=MEDIA_TYPE)


def field_path(loc: Iterable[int | str],
               drop: Iterable[str] = ("body", "query", "path", "header")) -> str:
    """('body', 'lines', 0, 'sku') -> 'lines[0].sku'; a query or path parameter by name."""
    parts = list(loc)
    if parts and isinstance(parts[0], str) and parts[0] in set(drop):
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def field_errors(
    errors: Iterable[Mapping[str, Any]], prefix: str = ""
) -> list[FieldError]:
    """pydantic / FastAPI error dicts as field errors; `prefix` for items of a batch. At most
    `MAX_FIELD_ERRORS` are listed, then one entry that counts the rest: an object of 10,000
    unknown keys must not cost the event loop 150 ms of problem building."""
    out = []
    listed = list(errors)
    for e in listed[:MAX_FIELD_ERRORS]:
        path = field_path(e.get("loc", ()))
        if prefix:
            path = prefix if path == "body" else f"{prefix}.{path}"
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "string_pattern_mismatch":
            msg = _RULES.get(str((e.get("ctx") or {}).get("pattern")), msg)
        out.append(FieldError(field=path, message=msg.removeprefix("Value error, ")))
    if len(listed) > MAX_FIELD_ERRORS:
        more = len(listed) - MAX_FIELD_ERRORS
        out.append(FieldError(field=prefix or "body", message=f"and {more} more errors "
                              "not listed"))
    return out


def validation_problem(errors: list[FieldError], title: str = "Request body is invalid"
                       ) -> Problem:
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return Problem(422, "validation", title, detail, errors)


def from_validation_error(exc: ValidationError, prefix: str = "") -> Problem:
    return validation_problem(field_errors(exc.errors(include_url=False, include_input=False),
                                           prefix))


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Missing or unknown API key", detail,
                   headers={"WWW-Authenticate": 'Bearer realm="interop-twin"'})


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Outside the key's scopes", detail)


def not_found(detail: str, field: str | None = None) -> Problem:
    errors = [FieldError(field=field, message=detail)] if field else []
    return Problem(404, "not-found", "Not found", detail, errors)


def conflict(detail: str, field: str | None = None) -> Problem:
    errors = [FieldError(field=field, message=detail)] if field else []
    return Problem(409, "conflict", "Conflict", detail, errors)


def too_large(what: str, limit: int) -> Problem:
    """413: the body was not read (or not to its end), so the connection is not reused."""
    detail = f"request body too large: {what}; at most {limit:,} bytes are accepted here"
    return Problem(413, "too-large", "Request body is too large", detail,
                   [FieldError(field="body", message=detail)], headers={"Connection": "close"})


def unsupported_media_type(content_type: str | None) -> Problem:
    detail = (f"Content-Type {content_type!r} is not JSON" if content_type else
              "a body needs a Content-Type") + ": send application/json (UTF-8)"
    return Problem(415, "unsupported-media-type", "Request body is not JSON", detail,
                   [FieldError(field="Content-Type", message=detail)])


def rate_limited(retry_after_s: int, system: str) -> Problem:
    return Problem(429, "rate-limited", "Too many requests",
                   f"rate limit of the {system} key exceeded; retry after {retry_after_s} s",
                   headers={"Retry-After": str(retry_after_s)})
