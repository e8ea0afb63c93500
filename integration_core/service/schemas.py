"""Response bodies of the API (and the batch request), for the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from integration_core.models import Id
from integration_core.service.problems import ProblemBody


class Acknowledgement(BaseModel):
    """202: stored durably and queued for delivery. 200: a duplicate of a stored message."""

    status: Literal["accepted", "duplicate"]
    id: str = Field(description="The business id: movement, order or shipment id.")
    message_id: str
    position: int | None = Field(description="Log position; null for a duplicate.")


class BatchItem(BaseModel):
    index: int
    movement_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    message_id: str | None = None
    problem: ProblemBody | None = None


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    items: list[BatchItem]


class InventoryRow(BaseModel):
    location: str
    lot: str | None
    erp_on_hand: int
    wms_on_hand: int
    in_flight_units: int
    unexplained_units: int = Field(description="wms - erp - in flight.")


class InventoryView(BaseModel):
    sku: str
    erp_on_hand: int = Field(description="ERP twin's ledger (consumer state).")
    wms_on_hand: int = Field(description="Sum of the acknowledged movements.")
    in_flight_units: int = Field(description="Net units of movements not yet applied by the ERP.")
    in_flight_movements: int
    unexplained_units: int
    rows: list[InventoryRow]


class TraceEntry(BaseModel):
    at: float | None = Field(description="Unix time the service handled it (null: queued).")
    kind: Literal["message", "queued", "command", "event", "note"]
    name: str
    message_id: str | None
    correlation_id: str | None
    causation_id: str | None
    occurred_at: str | None
    detail: str


class OrderView(BaseModel):
    order_id: str
    status: str
    waiting_on: str | None
    lines: list[dict[str, Any]]
    shipments: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    pending_timeout: dict[str, Any] | None
    trace: list[TraceEntry]


class DeadLetterView(BaseModel):
    id: str
    consumer: str
    message_id: str | None
    type: str | None
    correlation_id: str | None
    cause_type: str
    cause_message: str
    attempts: int
    first_failure_at: float
    last_failure_at: float
    transient: bool = Field(description="The cause was worth retrying and the attempts ran "
                            "out (a partner down too long): requeue as it is. False: the "
                            "message was refused; fix the cause first.")
    envelope: dict[str, Any] | None
    raw: str | None


class DeadLetterList(BaseModel):
    total: int
    items: list[DeadLetterView]


class RequeueBody(BaseModel):
    envelope: dict[str, Any] | None = Field(
        None, description="The corrected envelope; required for an ingress dead letter only."
    )


class Requeued(BaseModel):
    id: str
    status: Literal["requeued"]


class BreakView(BaseModel):
    key: str
    kind: str
    erp_qty: int
    wms_qty: int
    in_flight_units: int
    residual: int
    severity: str
    age_s: float


class ReconcileView(BaseModel):
    run_id: str
    divergence_units: int
    in_flight_units: int
    unexplained_units: int
    skus_out_of_sync: int
    breaks: list[BreakView] = Field(description="Unexplained breaks first, at most 100.")
    proposed_repairs: list[str] = Field(description="The reconciler's audit reasons.")
    repairs_posted: int = Field(0, description="ERP adjustments this run posted: breaks that "
                                "persisted `repair_after_s` (none when that is unset).")


class AppliedCountsBody(BaseModel):
    movement_ids: list[Id] = Field(max_length=10_000)


class AppliedCounts(BaseModel):
    counts: dict[str, int] = Field(description="movement id -> times the ERP applied it.")
    received: dict[str, int] = Field(description="movement id -> times the ERP received it, "
                                     "redeliveries included (counted since the ERP started).")


class Health(BaseModel):
    status: Literal["ok", "not ready"]
    detail: str = ""
