"""The service's X12 plumbing: the body limits of POST /v1/edi/x12, and the engine's inbox.

`EdiBodyLimit` takes the place of `limits.BodyLimit` in the middleware stack: requests to the
X12 path get their own checks, before the app (and before any parsing) sees them; every other
request goes on to a `BodyLimit` as before. On the X12 path:

- a Content-Type other than ``application/edi-x12`` (parameters allowed) is refused with 415
  before anything is read;
- a body over `max_edi_bytes` is refused with 413, from its Content-Length before it is read,
  or as soon as the stream passes the limit.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from integration_core.edi import Limits
from integration_core.engine import Engine
from integration_core.feed import EdiInbox
from integration_core.service.limits import BodyLimit, read_body, replay_body
from integration_core.service.problems import FieldError, Problem

EDI_PATH = "/v1/edi/x12"
EDI_MEDIA_TYPE = "application/edi-x12"
_INBOXES: weakref.WeakKeyDictionary[Engine, EdiInbox] = weakref.WeakKeyDictionary()


def inbox_for(engine: Engine, max_bytes: int) -> EdiInbox:
    """One inbox per engine, shared by the route and the file feed."""
    inbox = _INBOXES.get(engine)
    if inbox is None:
        inbox = _INBOXES[engine] = EdiInbox(engine, Limits(max_bytes=max_bytes))
    return inbox


def is_x12_media_type(content_type: str | None) -> bool:
    return bool(content_type) and str(content_type).split(";")[0].strip().lower() == (
        EDI_MEDIA_TYPE)


def not_x12(content_type: str | None) -> Problem:
    detail = (f"Content-Type {content_type!r} is not X12" if content_type else
              "a body needs a Content-Type") + f": send {EDI_MEDIA_TYPE}"
    return Problem(415, "unsupported-media-type", "Request body is not X12", detail,
                   [FieldError(field="Content-Type", message=detail)])


class EdiBodyLimit:
    """`BodyLimit` for every path but `EDI_PATH`, where a POST gets the X12 checks (another
    method goes on to the router, unread: a 405)."""

    def __init__(self, app: ASGIApp, limit: int, edi_limit: int,
                 by_path: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.edi_limit = edi_limit
        self.json = BodyLimit(app, limit, by_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != EDI_PATH:
            await self.json(scope, receive, send)
            return
        if scope["method"] != "POST":  # the router's 405; the body is never read
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        content_type = headers.get("content-type")
        if not is_x12_media_type(content_type):
            await _answer(not_x12(content_type), scope, receive, send)
            return
        body = await read_body(scope, receive, send, headers, self.edi_limit)
        if body is not None:
            await self.app(scope, replay_body(body, receive), send)


async def _answer(problem: Problem, scope: Scope, receive: Receive, send: Send) -> None:
    await problem.response(scope["path"])(scope, receive, send)
