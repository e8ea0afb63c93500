"""The drop-folder protocol, as pure functions: which names are ready, what kind a file is,
where it goes afterwards, and the ledger entry that makes a file's effects happen once.

Layout (the service supplies the folder; nothing here touches a file):

- ``<feed>/``: producers write ``name.part``, then rename it to ``name`` (a rename within one
  file system is atomic, so a name without ``.part`` is a complete file);
- ``<feed>/processed/``: files carried out whole (and, for X12, the reply next to them,
  ``name.ack.x12``);
- ``<feed>/failed/``: files of which some part (or all) was not carried out, with
  ``name.error.json`` beside them naming the line or segment and the cause; the file's content
  is kept as it came.

A file is known by the SHA-256 of its content. The ledger entry (``FEED_NS``, key = digest) is
written in the transaction that carries out the file's last part, so a file whose entry exists
had all its effects; one without an entry is processed (again) from the start, and the bus's
message ids (a movement's id, an interchange's control number) make the second pass add
nothing that the first committed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

FEED_NS = "feed.file"
"""Ledger: file digest -> the verdict, where the file went, and its counts."""
PART_SUFFIX = ".part"
PROCESSED = "processed"
FAILED = "failed"
ERROR_SUFFIX = ".error.json"
ACK_SUFFIX = ".ack.x12"
X12_SUFFIXES = (".x12", ".edi")
CSV_SUFFIXES = (".csv",)


class FileKind(StrEnum):
    X12 = "x12"
    CSV = "csv"
    """Inventory movements, one a row (`feed.movements_csv`)."""
    UNSUPPORTED = "unsupported"
    """A complete file of no kind the feed reads: moved to failed/ with the reason."""


class NameState(StrEnum):
    READY = "ready"
    PARTIAL = "partial"
    """Still being written (``.part``): left alone."""
    IGNORED = "ignored"
    """Hidden (a leading dot), or one of the feed's own files."""


def name_state(name: str) -> NameState:
    if name.startswith(".") or name.endswith((ERROR_SUFFIX, ACK_SUFFIX)):
        return NameState.IGNORED
    if name.endswith(PART_SUFFIX):
        return NameState.PARTIAL
    return NameState.READY


def ready(names: Iterable[str]) -> list[str]:
    """The complete files among a folder's entries, oldest name first (sorted: producers that
    name files by time get them processed in order)."""
    return sorted(n for n in names if name_state(n) is NameState.READY)


def file_kind(name: str) -> FileKind:
    lower = name.lower()
    if lower.endswith(X12_SUFFIXES):
        return FileKind.X12
    if lower.endswith(CSV_SUFFIXES):
        return FileKind.CSV
    return FileKind.UNSUPPORTED


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileVerdict(StrEnum):
    PROCESSED = "processed"
    """Every part carried out (or nothing in it was new: a duplicate)."""
    FAILED = "failed"
    """Some part, or all of it, was not carried out."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing of a file that was not carried out. `line`: 1-based line of a CSV record
    (header is line 1); `segment`/`position`/`element`: an X12 segment id, its position in
    the interchange, the element's position."""

    cause: str
    line: int | None = None
    raw: str | None = None
    field: str | None = None
    segment: str | None = None
    position: int | None = None
    element: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("line", self.line), ("field", self.field),
                                  ("segment", self.segment), ("position", self.position),
                                  ("element", self.element), ("cause", self.cause),
                                  ("raw", self.raw)) if v is not None}


@dataclass(frozen=True, slots=True)
class FileOutcome:
    name: str
    digest: str
    kind: FileKind
    verdict: FileVerdict
    problems: tuple[Problem, ...] = ()
    carried_out: int = 0
    """Rows, or canonical messages of an interchange, handed to the engine."""
    duplicates: int = 0
    """Of those, how many the bus had already (a resend, or a second pass after a crash)."""
    dead_letters: int = 0
    ack: bytes | None = None
    """An X12 file's reply (997 / TA1), written beside the file."""
    repeat_of: str | None = None
    """Same content as a file processed before (its name): nothing carried out again."""
    detail: str = ""

    @property
    def folder(self) -> str:
        return PROCESSED if self.verdict is FileVerdict.PROCESSED else FAILED

    def ledger(self) -> dict[str, Any]:
        """The ledger entry (what a repeat of the same content is answered with)."""
        return {"name": self.name, "kind": self.kind.value, "verdict": self.verdict.value,
                "carried_out": self.carried_out, "duplicates": self.duplicates,
                "dead_letters": self.dead_letters, "detail": self.detail,
                "problems": [p.as_dict() for p in self.problems],
                "ack": None if self.ack is None else self.ack.decode("latin-1")}

    @classmethod
    def repeat(cls, name: str, file_digest: str, entry: dict[str, Any]) -> FileOutcome:
        """A file whose content is in the ledger: its first verdict again, nothing done."""
        ack = entry.get("ack")
        return cls(name, file_digest, FileKind(entry["kind"]), FileVerdict(entry["verdict"]),
                   tuple(Problem(**p) for p in entry.get("problems", [])),
                   ack=None if ack is None else ack.encode("latin-1"),
                   repeat_of=entry["name"], detail=entry.get("detail", ""))

    def report(self) -> dict[str, Any]:
        """The ``.error.json`` written beside a failed file."""
        return {"file": self.name, "sha256": self.digest, "kind": self.kind.value,
                "verdict": self.verdict.value, "detail": self.detail,
                "carried_out": self.carried_out, "duplicates": self.duplicates,
                "dead_letters": self.dead_letters, "repeat_of": self.repeat_of,
                "problems": [p.as_dict() for p in self.problems]}


def destination(name: str, file_digest: str, taken: Callable[[str], bool]) -> str:
    """The name a file gets in processed/ or failed/: its own, unless `taken` there, then
    with the digest's first 12 characters before the suffix (and a counter after them, for a
    file never read or the same content again)."""
    if not taken(name):
        return name
    stem, dot, suffix = name.rpartition(".")
    tag = file_digest[:12]
    for n in itertools.count(1):
        t = tag if n == 1 else f"{tag}-{n}"
        candidate = f"{stem}.{t}.{suffix}" if dot and stem else f"{name}.{t}"
        if not taken(candidate):
            return candidate
    raise AssertionError("unreachable")
