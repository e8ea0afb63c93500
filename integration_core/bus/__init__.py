"""Idempotent event bus: dedupe on publish, per-key ordering, retry, dead letters, durable inbox,
replay; driven by the caller's clock."""

from integration_core.bus.core import INGRESS, Bus, Handler
from integration_core.bus.memory import MemoryStore
from integration_core.bus.policy import RetryPolicy
from integration_core.bus.postgres import PostgresStore  # psycopg is imported on open only
from integration_core.bus.records import (
    Counters,
    DeadLetter,
    Delivery,
    LogEntry,
    Outcome,
    PublishResult,
)
from integration_core.bus.sqlite import SQLiteStore
from integration_core.bus.store import Effect, Store, Tx

__all__ = [
    "Bus",
    "Counters",
    "DeadLetter",
    "Delivery",
    "Effect",
    "Handler",
    "INGRESS",
    "LogEntry",
    "MemoryStore",
    "Outcome",
    "PostgresStore",
    "PublishResult",
    "RetryPolicy",
    "SQLiteStore",
    "Store",
    "Tx",
]
