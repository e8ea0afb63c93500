"""Inbound feeds, sans-I/O: X12 interchanges carried out on the engine (`EdiInbox`, with the
gateway's `Seen` port on the bus store). The live service supplies the HTTP route
(POST /v1/edi/x12)."""

from integration_core.feed.seen import StoreSeen
from integration_core.feed.x12 import REPLY_NS, SNAPSHOT_NS, EdiInbox, EdiOutcome, Verdict

__all__ = [
    "EdiInbox",
    "EdiOutcome",
    "REPLY_NS",
    "SNAPSHOT_NS",
    "StoreSeen",
    "Verdict",
]
