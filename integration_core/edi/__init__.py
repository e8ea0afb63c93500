"""X12 EDI for the warehouse sets (940, 943, 944, 945, 846, 947, 856; 997 and TA1), sans-I/O.

`Gateway.receive` takes an interchange's bytes and returns a `Receipt`: the 997/TA1 reply,
the canonical messages, the errors (data, with X12 codes) and dead letters. `parse`,
`serialize`, `map_set`, `release_to_940` and `shipment_to_945` are the parts, for
outbound documents and tests.
"""

from integration_core.edi.delimiters import Delimiters
from integration_core.edi.document import FunctionalGroup, Interchange, Segment, TransactionSet
from integration_core.edi.errors import (
    AppCode,
    EdiError,
    ElementCode,
    GroupCode,
    NoteCode,
    SegmentCode,
    SetCode,
)
from integration_core.edi.gateway import DeadLetter, Gateway, MemorySeen, Receipt, Seen
from integration_core.edi.mapping import Context, map_set, release_to_940, shipment_to_945
from integration_core.edi.parser import Limits, Parsed, parse
from integration_core.edi.records import AckRecord, AsnLine, Message, OrderRelease, ReleaseAction
from integration_core.edi.serializer import serialize
from integration_core.edi.syntax import check_interchange

__all__ = [
    "AckRecord",
    "AppCode",
    "AsnLine",
    "Context",
    "DeadLetter",
    "Delimiters",
    "EdiError",
    "ElementCode",
    "FunctionalGroup",
    "Gateway",
    "GroupCode",
    "Interchange",
    "Limits",
    "MemorySeen",
    "Message",
    "NoteCode",
    "OrderRelease",
    "Parsed",
    "Receipt",
    "ReleaseAction",
    "Seen",
    "Segment",
    "SegmentCode",
    "SetCode",
    "TransactionSet",
    "check_interchange",
    "map_set",
    "parse",
    "release_to_940",
    "serialize",
    "shipment_to_945",
]
