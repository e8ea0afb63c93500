"""The SimPy adapter of the partner port: the core's calls to the ERP and the WMS twins.

The records are the port's (`integration_core.engine.partners`), as over HTTP
(`integration_core.service.partners`). A call crosses the partner's link, waits for its
endpoint (workers, service time, outages) and comes back, within the caller's timeout. The
caller hears once: the answer record, a `PayloadError` (refused: the partner will never take
it), or a `TransientError` (down, timed out, the answer lost: a timeout may hide work the
partner did, so every request carries its idempotency handle).

The partners' business (how the ERP books, invoices, answers a credit check; how the WMS takes
a release) is served by the twin's systems through `serve`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import simpy
from pydantic import ValidationError

from integration_core.engine.partners import OPERATIONS, Posting, Wire
from integration_core.errors import PayloadError, TransientError
from sim.calls import call
from sim.network import Link
from sim.systems.endpoint import Endpoint, Status

OnAnswer = Callable[[Any, BaseException | None], None]
"""(answer, None) or (None, error), exactly once."""
POST = "post_movement"


@dataclass(frozen=True)
class _Service:
    link: Link
    endpoint: Callable[[Any], Endpoint]
    handler: Callable[[Any], Any]


class SimPartners:
    def __init__(self, env: simpy.Environment, timeout_s: float,
                 api_calls: Counter[str] | None = None) -> None:
        self.env = env
        self.timeout_s = timeout_s
        self.api_calls: Counter[str] = api_calls if api_calls is not None else Counter()
        self._services: dict[str, _Service] = {}

    def serve(self, op: str, link: Link, endpoint: Callable[[Any], Endpoint],
              handler: Callable[[Any], Any]) -> None:
        """`handler(request)` answers `op` at `endpoint(request)`, reached over `link`."""
        if op != POST and op not in OPERATIONS:
            raise ValueError(f"{op!r} is not an operation of the partner port")
        self._services[op] = _Service(link, endpoint, handler)

    def _service(self, op: str) -> _Service:
        try:
            return self._services[op]
        except KeyError:
            raise PayloadError("op", f"no partner serves {op!r} in this twin") from None

    def perform(self, op: str, body: dict[str, Any], on_answer: OnAnswer) -> None:
        """An outbox call (`OPERATIONS[op]`): the answer as the port's record, dumped."""
        operation = OPERATIONS.get(op)
        if operation is None:
            on_answer(None, PayloadError("op", f"unknown outbox call {op!r}"))
            return
        try:
            request = operation.request.model_validate(body)
            service = self._service(op)
        except ValidationError as exc:
            on_answer(None, PayloadError("body", f"{op}: {exc}"))
            return
        except PayloadError as exc:
            on_answer(None, exc)
            return

        def answered(value: Any) -> Any:
            return operation.answer.model_validate(value).model_dump()

        self._call(operation.system, service, request, answered, on_answer)

    def post(self, posting: dict[str, Any], on_answer: OnAnswer) -> None:
        """One movement to the ERP (`Posting`'s fields; a plain dict on the hot path): the
        answer is "applied" or "duplicate"."""
        self._call("erp", self._service(POST), posting, None, on_answer)

    def post_many(self, postings: list[dict[str, Any]], on_answer: OnAnswer) -> None:
        """Movements to the ERP's bulk endpoint in one request: all applied (each answer
        "applied" or "duplicate") or, on any failure, none heard of (the core retries them
        all; the ERP books a movement id once)."""
        service = self._service(POST)
        handle = service.handler

        def apply() -> list[Any]:
            return [handle(p) for p in postings]

        self._call("erp", service, postings[0], None, on_answer, apply, len(postings))

    def _call(self, system: str, service: _Service, request: Wire | dict[str, Any],
              read: Callable[[Any], Any] | None, on_answer: OnAnswer,
              op: Callable[[], Any] | None = None, items: int = 1) -> None:
        """`read` turns the handler's value into the answer (None: the value is the answer)."""
        self.api_calls[system] += 1

        def result(status: Status, value: Any) -> None:
            if status is Status.OK:
                on_answer(value if read is None else read(value), None)
            elif status is Status.REJECTED:
                on_answer(None, value if isinstance(value, PayloadError)
                          else PayloadError(system, str(value)))
            else:
                on_answer(None, TransientError(f"{system} {status.value}"))

        call(self.env, service.link, service.endpoint(request), service.link,
             op or (lambda: service.handler(request)), self.timeout_s, result, items)


__all__ = ["POST", "Posting", "SimPartners"]
