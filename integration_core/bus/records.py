"""Flat records the bus hands out: deliveries, dead letters, publish results, counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import NamedTuple

from integration_core.envelope import Envelope


class Delivery(NamedTuple):
    """One delivery attempt (a tuple: cheap to build on the hot path, and immutable)."""

    consumer: str
    position: int
    envelope: Envelope
    attempt: int
    """1 for the first delivery to this consumer, 2 for the first retry, and so on."""
    replay: bool = False


class PublishResult(NamedTuple):
    """What publishing one message did (a tuple, as `Delivery`: one per message)."""

    message_id: str
    position: int | None
    duplicate: bool
    conflict: bool = False
    """A duplicate whose content differs from what is stored under its id: nothing was
    stored, and the sender should hear about it (the same id was reused for another fact)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    consumer: str
    """Consumer that gave up, or "ingress" for a message that never parsed as an envelope."""
    position: int | None
    message_id: str | None
    envelope: Envelope | None
    raw: str | None
    """The original bytes as text, when the envelope itself was malformed."""
    cause_type: str
    cause_message: str
    attempts: int
    first_failure_at: float
    last_failure_at: float
    transient: bool = False
    """The cause was worth retrying and the bus ran out of attempts (a partner down for
    longer than the policy lasts): a redrive may succeed as it is. False: the message itself
    was refused (bad payload, unknown reference): fix the cause first."""


class LogEntry(NamedTuple):
    position: int
    published_at: float
    envelope: Envelope


class Outcome(StrEnum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    """Already in the consumer's inbox: acknowledged without running the effect again."""
    RETRY = "retry"
    DEAD = "dead"


@dataclass(slots=True)
class Counters:
    published: int = 0
    duplicate_publishes: int = 0
    conflicting_publishes: int = 0
    delivered: int = 0
    redelivered: int = 0
    acked: int = 0
    duplicates_skipped: int = 0
    retries: int = 0
    dead_lettered: int = 0
    requeued: int = 0
    replayed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
