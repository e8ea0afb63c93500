from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from integration_core.envelope import Envelope, UnknownMessageType, open_payload, upcast, wrap
from integration_core.errors import PayloadError
from integration_core.models import Catalog, Item, Movement, MovementKind
from tests.factories import T0, env

V1_MOVEMENT = {
    "id": "mv-old-1", "movement_type": "pick", "sku": "A", "warehouse_location": "WH1-A01",
    "qty": -5, "ts": "2025-06-01T10:00:00Z",
}


def test_v1_movement_still_loads_through_the_upcaster() -> None:
    old = env("old", type="inventory.movement", payload=V1_MOVEMENT, schema_version=1)
    up = upcast(old)
    assert up.schema_version == 2 and up.message_id == old.message_id
    m = open_payload(old, Catalog([Item(sku="A")]))
    assert isinstance(m, Movement)
    assert (m.movement_id, m.kind, m.location, m.quantity_base) == (
        "mv-old-1", MovementKind.PICK, "WH1-A01", -5)
    assert m.quantity == 5 and m.unit is None


def test_v1_adjustment_keeps_its_sign() -> None:
    old = env("a", type="inventory.movement", payload={**V1_MOVEMENT, "movement_type":
                                                           "adjustment", "qty": -2})
    m = open_payload(old)
    assert isinstance(m, Movement) and m.quantity == -2 and m.quantity_base == -2


def test_malformed_v1_names_the_missing_field() -> None:
    bad = {k: v for k, v in V1_MOVEMENT.items() if k != "qty"}
    with pytest.raises(PayloadError, match=r"payload\.qty: missing in inventory.movement v1"):
        upcast(env("b", type="inventory.movement", payload=bad))


def test_unknown_type_and_future_version_are_rejected() -> None:
    with pytest.raises(UnknownMessageType, match="unknown message type"):
        upcast(env(1, type="nope"))
    with pytest.raises(UnknownMessageType, match="newer than"):
        upcast(env(1, type="inventory.movement", schema_version=3))


def test_wrap_uses_natural_id_and_ordering_key() -> None:
    m = Movement(movement_id="mv9", kind="receipt", sku="A", location="L1", quantity=3,
                 occurred_at=T0)
    e = wrap(m, source="wms-east", occurred_at=T0)
    assert (e.message_id, e.type, e.key, e.schema_version) == (
        "inventory.movement:mv9", "inventory.movement", "A@L1", 2)
    assert open_payload(e) == m
    assert Envelope.model_validate_json(e.model_dump_json()) == e


def test_envelope_requires_identity() -> None:
    with pytest.raises(ValidationError) as info:
        Envelope.model_validate({"type": "x", "payload": {}, "occurred_at": datetime.now(UTC)})
    missing = {e["loc"][0] for e in info.value.errors()}
    assert {"message_id", "source", "correlation_id", "key"} <= missing


def test_trusted_envelope_equals_the_validated_one() -> None:
    from integration_core.envelope import trusted_envelope

    fields = env(5).model_dump()
    fast = trusted_envelope(**fields)
    assert fast == env(5) and fast.model_dump_json() == env(5).model_dump_json()
    with pytest.raises(ValueError, match="exactly the fields"):
        trusted_envelope(message_id="x")
