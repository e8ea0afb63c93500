"""The integration engine, sans-I/O: bus consumers, the order desk, inventory posting, timers
and reconciliation over the `Store` port and an injected `Clock`. The live service
(`integration_core.service`) drives it in real time on SQLite; the partner port's records are
in `integration_core.engine.partners`."""

from integration_core.engine.core import (
    CONSUMERS,
    EPOCH,
    WMS_ON_HAND,
    Accepted,
    Engine,
    MovementRecord,
    divergence,
)
from integration_core.engine.desk import OrderDesk
from integration_core.engine.ledger import Ledger, RowKey, add_deltas, movement_fields
from integration_core.engine.redrive import Redrive
from integration_core.envelope import MOVEMENT

__all__ = [
    "Accepted",
    "CONSUMERS",
    "EPOCH",
    "Engine",
    "Ledger",
    "MOVEMENT",
    "MovementRecord",
    "OrderDesk",
    "Redrive",
    "RowKey",
    "WMS_ON_HAND",
    "add_deltas",
    "divergence",
    "movement_fields",
]
