"""Inbound feeds, sans-I/O: X12 interchanges carried out on the engine (`EdiInbox`, with the
gateway's `Seen` port on the bus store), and the drop folder's files (`FileFeed`: X12 files
and CSV movement files, `files` the folder's protocol, `movements_csv` the CSV layout). The
live service supplies the HTTP route (POST /v1/edi/x12) and the folder watcher."""

from integration_core.feed.file_feed import FileFeed
from integration_core.feed.files import (
    FEED_NS,
    FileKind,
    FileOutcome,
    FileVerdict,
    NameState,
    Problem,
    destination,
    digest,
    file_kind,
    name_state,
    ready,
)
from integration_core.feed.movements_csv import COLUMNS, CsvFile, CsvLimits, read_movements
from integration_core.feed.seen import StoreSeen
from integration_core.feed.x12 import REPLY_NS, SNAPSHOT_NS, EdiInbox, EdiOutcome, Verdict

__all__ = [
    "COLUMNS",
    "CsvFile",
    "CsvLimits",
    "EdiInbox",
    "EdiOutcome",
    "FEED_NS",
    "FileFeed",
    "FileKind",
    "FileOutcome",
    "FileVerdict",
    "NameState",
    "Problem",
    "REPLY_NS",
    "SNAPSHOT_NS",
    "StoreSeen",
    "Verdict",
    "destination",
    "digest",
    "file_kind",
    "name_state",
    "read_movements",
    "ready",
]
