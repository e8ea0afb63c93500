"""JSON Schema of the public canonical models, committed as docs/schema/canonical.json.

Regenerate with ``make schema`` (``python -m integration_core.schema docs/schema/canonical.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from integration_core.envelope import Envelope
from integration_core.models import (
    Customer,
    InventoryBalance,
    Invoice,
    Item,
    Location,
    Movement,
    ReturnAuthorization,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
    Warehouse,
)

PUBLIC_MODELS = (
    Customer, Envelope, InventoryBalance, Invoice, Item, Location, Movement,
    ReturnAuthorization, SalesOrder, Shipment, ShipmentMilestone, Warehouse,
)


def public_schema() -> dict[str, Any]:
    _, schema = models_json_schema(
        [(m, "validation") for m in PUBLIC_MODELS], title="interop-twin canonical models"
    )
    return schema


def render() -> str:
    return json.dumps(public_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schema/canonical.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render())
    print(f"wrote {out}")
