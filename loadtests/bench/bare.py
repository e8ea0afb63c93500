"""The bare ceiling of `loadtests.bench.service`: an ASGI app that only parses the JSON.

``POST /movements`` and ``POST /movements:batch`` read the whole body, ``json.loads`` it and
answer 202 with a tiny JSON object (``{"accepted": n}``, n = 1 or the length of the batch's
``movements`` list). Nothing else: no routing framework, no validation, no storage. Any other
request gets 404; a body that is not JSON gets 400.

It is **raw ASGI**, not Starlette or FastAPI, and runs under the same uvicorn as ``twin serve``
(same defaults: one worker, the same event loop and HTTP parser), so the benchmark's ratio
``service / bare`` prices everything the service adds on top of "uvicorn + json.loads":
FastAPI's routing, dependencies and middleware, the API key check and rate limiter, pydantic
validation against the item master, the SQLite transaction and the per-item response.

    python -m uvicorn loadtests.bench.bare:app --host 127.0.0.1 --port 8081 --log-level warning
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_PATHS = {"/movements": False, "/movements:batch": True}
_JSON = [(b"content-type", b"application/json")]


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    batch = _PATHS.get(scope["path"])
    if scope["method"] != "POST" or batch is None:
        await _reply(send, 404, b'{"detail":"not found"}')
        return
    chunks = []
    more = True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    try:
        doc = json.loads(b"".join(chunks))
        n = len(doc["movements"]) if batch else 1
    except (ValueError, TypeError, KeyError):
        await _reply(send, 400, b'{"detail":"not JSON"}')
        return
    await _reply(send, 202, b'{"accepted":%d}' % n)
