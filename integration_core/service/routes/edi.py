"""EDI ingress: an X12 interchange posted by a trading partner (a 3PL), answered with its
997 / TA1.

The size and media-type checks run before the app (`service.edi.EdiBodyLimit`); the core's
`EdiInbox` does the rest: the gateway, publishing through the engine's own ingress, dead
letters, the durable duplicate check. Status codes (docs/edi.md):

- 200: accepted (every set, or some: the ``EDI-Outcome`` header says ``accepted`` or
  ``partial``), body the 997 (and TA1 if one is due), ``application/edi-x12``;
- ``EDI-Outcome: duplicate`` and ``Idempotent-Replayed: true``: the same sender and ISA13
  were received before (and not rejected in the envelope); the body is the reply sent then,
  with the status it had (200, or 400 when every set was rejected); nothing is published
  again;
- 204: accepted, nothing to answer (an acknowledgment received, without errors);
- 400 with the TA1 / 997: rejected, nothing published (``EDI-Outcome: rejected``);
- 400 problem+json naming ``ISA``: no interchange header could be read, so no TA1 can be
  addressed; the body is dead-lettered all the same;
- 413 / 415 problem+json before parsing; 401 / 403 / 429 as everywhere; 503 when our store
  fails (nothing was recorded: send it again).
"""

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response

from integration_core.feed import EdiOutcome, Verdict
from integration_core.service.auth import Principal
from integration_core.service.edi import EDI_MEDIA_TYPE, EDI_PATH, inbox_for
from integration_core.service.problems import FieldError, Problem
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import AUTH, problem_responses

_X12 = {EDI_MEDIA_TYPE: {"schema": {"type": "string"}}}


def add_routes(app: FastAPI, ctx: Context) -> None:
    Partner = Annotated[Principal, Depends(ctx.need("edi:write"))]

    @app.post(
        EDI_PATH, tags=["edi"], summary="Post an X12 interchange (940, 943, 944, 945, 846, "
        "947, 856, 997); answered with its 997 / TA1",
        responses={200: {"content": _X12, "description": "Accepted (EDI-Outcome: accepted, "
                         "partial or duplicate); the body is the 997 / TA1."},
                   204: {"description": "Accepted; nothing to acknowledge."},
                   400: {"content": {**_X12, "application/problem+json": {}},
                         "description": "Rejected: the TA1 / 997 naming the errors, or a "
                         "problem when no ISA could be read."},
                   **problem_responses(*AUTH, 413, 415, 503)},
        openapi_extra={"requestBody": {"required": True, "content": _X12}},
    )
    async def post_x12(request: Request, who: Partner) -> Response:
        """The interchange is checked, acknowledged and carried out: a 940 (W05 N) places
        the order as POST /v1/orders would, a 945 confirms the shipment, 943/944/947 are
        movements; 846 snapshots (compared with the core's WMS view), 856 ASN lines and
        997s are recorded. What cannot be processed is dead-lettered with the raw
        interchange (GET /v1/dead-letters?consumer=ingress)."""
        body = await request.body()
        engine = ctx.engine()
        outcome = inbox_for(engine, ctx.settings.max_edi_bytes).receive(body, who.system)
        return answer(outcome)


def answer(outcome: EdiOutcome) -> Response:
    headers = {"EDI-Outcome": outcome.verdict.value}
    if outcome.interchange:
        headers["EDI-Interchange"] = outcome.interchange
    if outcome.dead_letters:
        headers["EDI-Dead-Letters"] = str(len(outcome.dead_letters))
    published = sum(outcome.published.values())
    recorded = sum(outcome.recorded.values())
    headers["EDI-Published"] = str(published)
    if recorded:
        headers["EDI-Recorded"] = str(recorded)
    if "inventory_balance" in outcome.recorded:
        headers["EDI-Snapshot-Differences"] = str(outcome.snapshot_differences)
    if outcome.verdict is Verdict.UNREADABLE:
        first = outcome.errors[0].message if outcome.errors else "not an X12 interchange"
        raise Problem(400, "edi-unreadable", "X12 interchange header unreadable",
                      f"{first}; no TA1 can be addressed without an ISA; the body was "
                      "dead-lettered", [FieldError(field="ISA", message=first)],
                      headers=headers)
    if outcome.verdict is Verdict.DUPLICATE:
        headers["Idempotent-Replayed"] = "true"
    rejected = Verdict.REJECTED in (outcome.verdict, outcome.original)
    status = 400 if rejected else 200
    if outcome.ack is None:
        return Response(status_code=204 if status == 200 else status, headers=headers)
    return Response(outcome.ack, status, headers=headers, media_type=EDI_MEDIA_TYPE)
