"""The answer to a posted message: 202 accepted, 200 duplicate, 409 when its business id was
stored before with different content."""

from typing import Any

from pydantic import BaseModel

from integration_core.engine import Accepted
from integration_core.service.problems import Problem, conflict
from integration_core.service.routes.openapi import AUTH, BODY, problem_responses
from integration_core.service.schemas import Acknowledgement

ACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Acknowledgement, "description": "A duplicate: already stored."},
    202: {"model": Acknowledgement, "description": "Stored durably and queued."},
    **problem_responses(*AUTH, *BODY, 409, 422),
}


def ack(a: Accepted, business_id: str, field: str) -> tuple[int, BaseModel]:
    if a.conflict:
        raise conflicting(business_id, field)
    body = Acknowledgement(status="duplicate" if a.duplicate else "accepted", id=business_id,
                           message_id=a.message_id, position=a.position)
    return (200 if a.duplicate else 202), body


def conflicting(business_id: str, field: str) -> Problem:
    return conflict(f"{field} {business_id!r} was stored before with different content; "
                    "nothing was changed (use a new id for a new fact)", field)
