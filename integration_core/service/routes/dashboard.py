"""The dashboard: a page for people, its login, its event stream and its one action.

- ``GET /dashboard``: the page (plain HTML/CSS/JS under ``static/``, uPlot vendored).
- ``POST /v1/dashboard/session``: ``{"key": ...}`` once, answered with an HttpOnly,
  SameSite=Strict cookie holding a random session id (the key stays on the server side);
  ``GET`` tells the page who it is, ``DELETE`` logs out.
- ``GET /v1/dashboard/events``: server-sent events, one shared snapshot a second
  (`integration_core.service.dashboard.Hub`), authorised by the cookie.
- ``GET /v1/dashboard/snapshot``: the latest snapshot as JSON (cookie or API key).
- ``POST /v1/dashboard/dead-letters/{id}/requeue``: admin sessions only, same-origin only,
  with the session's ``X-CSRF-Token``.

Kept out of the OpenAPI document: these serve the page, not integrations (and a stream
that never ends is no case for a schema fuzzer).
"""

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from integration_core.errors import NotFound
from integration_core.service.auth import (
    SESSION_COOKIE,
    SESSION_TTL_S,
    Principal,
    Session,
    Sessions,
    secret_from_headers,
)
from integration_core.service.dashboard import Hub
from integration_core.service.intake import parse_body
from integration_core.service.limits import read_json
from integration_core.service.problems import (
    FieldError,
    Problem,
    forbidden,
    not_found,
    unauthorized,
    validation_problem,
)
from integration_core.service.routes.context import Context

STATIC = Path(__file__).resolve().parent.parent / "static"
READ, REQUEUE = "dashboard:read", "dead_letters:write"
STREAM_MAX_S = 60.0
"""One event stream's longest life; the browser reconnects at once (and a stopping server
waits at most this long for open streams)."""
CSRF_HEADER = "X-CSRF-Token"
# The page loads only its own files: no inline script, no CDN, no framing (clickjacking of
# the requeue button).
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(
        min_length=1,
        max_length=512,
        description="An API key holding dashboard:read (the viewer or the admin key).",
    )


def _who(session: Session) -> dict[str, Any]:
    p = session.principal
    return {
        "system": p.system,
        "scopes": sorted(p.scopes),
        "can_requeue": REQUEUE in p.scopes,
        "csrf": session.csrf,
    }


def _same_origin(request: Request) -> bool:
    """Browsers say where a request comes from: Sec-Fetch-Site (all current ones) and Origin
    (on every POST). Either naming another site refuses the request."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return origin is None or (host is not None and origin == f"{request.url.scheme}://{host}")


def add_routes(app: FastAPI, ctx: Context) -> None:
    sessions = Sessions()

    def running() -> Any:
        held = ctx.held
        if held.engine is None or held.runner is None:
            return None
        return held.engine, held.runner

    # The log tail reads the SQLite file; on PostgreSQL there is none (latency stays empty).
    hub = Hub(ctx.settings.db if ctx.settings.store is None else None, running)
    app.state.dashboard_hub = hub  # the lifespan closes it

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(SESSION_COOKIE))

    async def viewer(request: Request) -> Principal:
        """The session's principal, else an API key's (scripts), holding dashboard:read."""
        session = session_of(request)
        if session is not None:
            if READ not in session.principal.scopes:
                raise forbidden(f"the {session.principal.system} key lacks the scope {READ!r}")
            return session.principal
        secret = secret_from_headers(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if secret is None:
            raise unauthorized("log in at /dashboard (session cookie) or send an API key")
        return ctx.gate.admit(secret, READ)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/dashboard", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(
            STATIC / "dashboard" / "index.html", media_type="text/html", headers=_PAGE_HEADERS
        )

    @app.post("/v1/dashboard/session", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            raise forbidden("cross-site login refused")
        body = parse_body(Login, read_json(await request.body(), ctx.json_limits))
        try:
            principal = ctx.gate.admit(body.key, READ)
        except Problem as exc:  # the key field is what was wrong: say so, never echo it
            exc.errors = [FieldError(field="key", message=exc.detail)]
            raise
        sid, session = sessions.open(principal)
        response = Response(
            status_code=200,
            media_type="application/json",
            content=json.dumps(_who(session)),
            headers={"Cache-Control": "no-store"},
        )
        response.set_cookie(
            SESSION_COOKIE,
            sid,
            max_age=int(SESSION_TTL_S),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/v1/dashboard/session", include_in_schema=False)
    async def whoami(request: Request) -> dict[str, Any]:
        session = session_of(request)
        if session is None:
            raise unauthorized("not logged in")
        return _who(session)

    @app.delete("/v1/dashboard/session", status_code=204, include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not _same_origin(request):
            raise forbidden("cross-site logout refused")
        sessions.close(request.cookies.get(SESSION_COOKIE))
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/v1/dashboard/events", include_in_schema=False)
    async def events(who: Annotated[Principal, Depends(viewer)]) -> StreamingResponse:
        return StreamingResponse(
            hub.events(STREAM_MAX_S),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/dashboard/snapshot", include_in_schema=False)
    async def snapshot(who: Annotated[Principal, Depends(viewer)]) -> Response:
        return Response(
            await hub.current(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.post(
        "/v1/dashboard/dead-letters/{dead_letter_id:path}/requeue",
        status_code=202,
        include_in_schema=False,
    )
    async def requeue(dead_letter_id: str, request: Request) -> dict[str, str]:
        """A consumer's dead letter delivered again, as the API's requeue does without a
        body (the inbox still applies it once)."""
        session = session_of(request)
        if session is None:
            raise unauthorized("not logged in")
        if REQUEUE not in session.principal.scopes:
            raise forbidden(
                f"the {session.principal.system} key lacks the scope {REQUEUE!r}: "
                "requeueing needs the admin key"
            )
        if not _same_origin(request):
            raise forbidden("cross-site request refused")
        if request.headers.get(CSRF_HEADER) != session.csrf:
            raise Problem(
                403,
                "forbidden",
                "Missing or wrong CSRF token",
                f"send the session's token in {CSRF_HEADER}",
                [FieldError(field=CSRF_HEADER, message="missing or wrong")],
            )
        try:
            ctx.engine().requeue(dead_letter_id)
        except NotFound:
            raise not_found(f"no dead letter {dead_letter_id!r}", "dead_letter_id") from None
        except ValueError as exc:  # an ingress dead letter: needs a corrected envelope
            raise validation_problem(
                [FieldError(field="dead_letter_id", message=str(exc))]
            ) from None
        return {"id": dead_letter_id, "status": "requeued"}
