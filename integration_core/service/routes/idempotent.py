"""The Idempotency-Key: a request repeated with the same key is answered with the first
answer, replayed; the same key with another request is a 409."""

import logging
from collections.abc import Callable

from fastapi import Request, Response
from pydantic import BaseModel

from integration_core.errors import StorageError
from integration_core.service.auth import Principal
from integration_core.service.idempotency import MAX_KEY_LENGTH, fingerprint
from integration_core.service.problems import FieldError, conflict, validation_problem
from integration_core.service.routes.context import Context

log = logging.getLogger("interop_twin.service")


def idempotent(ctx: Context, request: Request, who: Principal, body: bytes,
               run: Callable[[], tuple[int, BaseModel | bytes]]) -> Response:
    """`run()`'s answer, or the one recorded for the request's Idempotency-Key."""
    engine = ctx.engine()
    key = request.headers.get("idempotency-key")
    if key is None:
        status, model = run()
        return Response(_json(model), status, media_type="application/json")
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise validation_problem([FieldError(
            field="Idempotency-Key",
            message=f"must be 1 to {MAX_KEY_LENGTH} printable characters")],
            "Idempotency-Key is invalid")
    fp = fingerprint(request.method, request.url.path, body)
    known = engine.idempotency.get(who.system, key)
    if known is not None:
        if known.fingerprint != fp:
            engine.idempotency.conflicts += 1
            raise conflict("this Idempotency-Key was used with a different request; use a "
                           "new key for a new request", "Idempotency-Key")
        engine.idempotency.replays += 1
        return Response(known.body, known.status, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})
    status, model = run()
    payload = _json(model)
    if 200 <= status < 300:  # after the effect committed: see idempotency.py
        try:
            engine.idempotency.put(who.system, key, fp, status, payload, engine.clock.now())
        except StorageError:  # the effect stands; a retry is deduped by message id
            log.warning("idempotency record for %s not written", who.system, exc_info=True)
    return Response(payload, status, media_type="application/json")


def _json(body: BaseModel | bytes) -> bytes:
    return body if isinstance(body, bytes) else body.model_dump_json().encode()
