"""What the route groups tell OpenAPI: the problems an endpoint may answer, bodies read by
hand (so FastAPI does not document them), canonical ids in paths, and the schema document
with the canonical models added."""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from integration_core.models import ID_PATTERN, Movement, SalesOrder, Shipment, ShipmentMilestone
from integration_core.service.partners import Fault
from integration_core.service.problems import MEDIA_TYPE, ProblemBody
from integration_core.service.schemas import AppliedCountsBody, RequeueBody

AUTH = (401, 403, 429)
BODY = (413, 415)
"""What `BodyLimit` may answer on any POST or PUT."""
PATH_ID = {"max_length": 128, "pattern": ID_PATTERN}
"""A canonical id in a path: one that cannot exist is a 422 naming it, not a 404."""


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    ref = {"$ref": "#/components/schemas/ProblemBody"}
    titles = {400: "Bad request", 401: "Missing or unknown API key",
              403: "Outside the key's scopes", 404: "Not found",
              409: "Conflict: an Idempotency-Key or a business id reused for different "
                   "content",
              413: "Request body over the size limit (refused before it is read whole)",
              415: "Request body is not application/json (UTF-8)",
              422: "Invalid request: the problem names the field", 429: "Rate limited",
              503: "Not ready"}
    out: dict[int | str, dict[str, Any]] = {}
    for c in codes:
        entry: dict[str, Any] = {"description": titles[c],
                                 "content": {MEDIA_TYPE: {"schema": ref}}}
        if c == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "Seconds to wait."}}
        out[c] = entry
    return out


def json_body(model_name: str, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a body the endpoint reads itself (read_json's limits)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model_name}"}}}}}


def schema_builder(app: FastAPI, batch_max: int) -> Callable[[], dict[str, Any]]:
    """`app.openapi`: FastAPI's document, plus the models named by `json_body`."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, summary=app.summary,
                              routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in (Movement, SalesOrder, Shipment, ShipmentMilestone, ProblemBody,
                          AppliedCountsBody, RequeueBody, Fault):
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(js.pop("$defs", {}))
                schemas[model.__name__] = js
            schemas["MovementBatch"] = {
                "type": "object", "required": ["movements"], "additionalProperties": False,
                "properties": {"movements": {
                    "type": "array", "minItems": 1, "maxItems": batch_max,
                    "items": {"$ref": "#/components/schemas/Movement"}}},
            }
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi
