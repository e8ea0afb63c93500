"""Files of the drop folder carried out on the engine, sans-I/O: the service reads the bytes
and moves the file; this decides what the file does and what it says afterwards.

Exactly once, across crashes: every message of a file goes through the bus under a
deterministic id (a movement's ``movement_id``, or the file digest and line for a row without
one; an interchange's sender and ISA13), and the file's ledger entry (`files.FEED_NS`) is
written in the transaction of its last part. A CSV file is published in chunks of
`chunk_rows` rows, one transaction each, so a large file does not hold the store (or the
service's event loop) for long; a process that dies between two chunks processes the file
again from the start on restart, and the bus answers the chunks it has with duplicates.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from integration_core.bus import INGRESS, Tx
from integration_core.bus import DeadLetter as BusDeadLetter
from integration_core.edi import EdiError
from integration_core.engine import Engine
from integration_core.feed.files import (
    FEED_NS,
    FileKind,
    FileOutcome,
    FileVerdict,
    Problem,
)
from integration_core.feed.movements_csv import CsvFile
from integration_core.feed.x12 import EdiInbox, Verdict, describe

FEED_CONSUMER = "feed"
"""The inbox the ledger entries are written under (not a bus subscriber)."""
DEFAULT_SOURCE = "wms"
_X12_DONE = (Verdict.ACCEPTED, Verdict.DUPLICATE)
Steps = Generator[int, None, FileOutcome]
"""Yields the rows committed so far after each chunk; returns the file's outcome."""


class FileFeed:
    def __init__(self, engine: Engine, inbox: EdiInbox, source: str = DEFAULT_SOURCE,
                 chunk_rows: int = 1000) -> None:
        """`source`: the system the file's messages are published as (the folder's owner:
        the WMS or 3PL that drops them)."""
        self.engine = engine
        self.inbox = inbox
        self.source = source
        self.chunk_rows = chunk_rows

    def known(self, name: str, file_digest: str) -> FileOutcome | None:
        """The outcome of a file with this content carried out before (its ledger entry)."""
        entry = self.engine.store.get_state(FEED_NS, file_digest)
        return None if entry is None else FileOutcome.repeat(name, file_digest, entry)

    @staticmethod
    def refused(name: str, kind: FileKind, problem: Problem, file_digest: str = ""
                ) -> FileOutcome:
        """A file refused whole before anything in it was carried out (over a limit, not of
        a kind the feed reads, a CSV header that is wrong): nothing to record."""
        return FileOutcome(name, file_digest, kind, FileVerdict.FAILED, (problem,),
                           detail=problem.cause)

    def csv_steps(self, name: str, file_digest: str, parsed: CsvFile) -> Steps:
        """Publish a read CSV file's valid rows, dead-letter its bad rows (line and raw
        text), and record the file, chunk by chunk."""
        if parsed.refused is not None:
            return self.refused(name, FileKind.CSV, parsed.refused, file_digest)
        engine, now = self.engine, self.engine.clock.now()
        problems = list(parsed.rejected)
        duplicates = 0
        rows = parsed.movements
        chunks = [rows[i:i + self.chunk_rows] for i in range(0, len(rows), self.chunk_rows)]
        for n, chunk in enumerate(chunks or [[]], 1):
            last = n == max(1, len(chunks))
            with engine.bus.transaction(now):
                accepted = engine.accept_movements([m for _, m in chunk], self.source)
                for (line, m), a in zip(chunk, accepted, strict=True):
                    if a.conflict:
                        problem = Problem(f"movement_id {m.movement_id!r} was stored before "
                                          "with different content", line=line,
                                          field="movement_id",
                                          raw=m.model_dump_json(exclude_none=True))
                        problems.append(problem)
                        self._bury(file_digest, name, problem, now, a.message_id)
                    elif a.duplicate:
                        duplicates += 1
                if last:
                    for p in parsed.rejected:
                        self._bury(file_digest, name, p, now)
                    outcome = self._outcome(name, file_digest, len(rows), duplicates,
                                            problems)
                    self._record(file_digest, outcome)
            if not last:
                yield n * self.chunk_rows
        return outcome

    def process_csv(self, name: str, file_digest: str, parsed: CsvFile) -> FileOutcome:
        """`csv_steps` run to the end."""
        steps = self.csv_steps(name, file_digest, parsed)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                outcome: FileOutcome = done.value
                return outcome

    def x12(self, name: str, file_digest: str, data: bytes) -> FileOutcome:
        """One interchange, carried out by the EDI inbox in one transaction with the file's
        ledger entry."""
        held: dict[str, FileOutcome] = {}

        def ledger(verdict: Verdict, reply: bytes | None, errors: tuple[EdiError, ...]
                   ) -> list[tuple[str, str, Any]]:
            outcome = FileOutcome(
                name, file_digest, FileKind.X12,
                FileVerdict.PROCESSED if verdict in _X12_DONE else FileVerdict.FAILED,
                tuple(_x12_problem(e) for e in errors) if verdict not in _X12_DONE else (),
                ack=reply, detail=f"interchange {verdict.value}")
            held["outcome"] = outcome
            return [(FEED_NS, file_digest, outcome.ledger())]

        got = self.inbox.receive(data, self.source, origin=name, also=ledger)
        published = sum(got.published.values()) + sum(got.recorded.values())
        if got.verdict is Verdict.DUPLICATE:
            # The inbox publishes nothing for a duplicate interchange: the file is recorded
            # here, alone (it changes nothing else, so it needs no shared transaction).
            outcome = FileOutcome(name, file_digest, FileKind.X12, FileVerdict.PROCESSED,
                                  ack=got.ack, detail=f"duplicate of interchange "
                                  f"{got.interchange} received before: nothing carried out")
            self._record(file_digest, outcome)
            return outcome
        first = held.get("outcome")
        if first is None:  # the inbox wrote nothing (cannot happen for a file: it has a name)
            first = FileOutcome(name, file_digest, FileKind.X12, FileVerdict.FAILED,
                                detail="nothing recorded")
        return FileOutcome(first.name, file_digest, FileKind.X12, first.verdict,
                           first.problems, published, dead_letters=len(got.dead_letters),
                           ack=got.ack, detail=first.detail)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _outcome(name: str, file_digest: str, rows: int, duplicates: int,
                 problems: list[Problem]) -> FileOutcome:
        verdict = FileVerdict.FAILED if problems else FileVerdict.PROCESSED
        carried = rows - sum(p.field == "movement_id" for p in problems)
        detail = (f"{carried} rows carried out ({duplicates} known before), "
                  f"{len(problems)} rejected")
        return FileOutcome(name, file_digest, FileKind.CSV, verdict, tuple(problems),
                           carried, duplicates, len(problems), detail=detail)

    def _record(self, file_digest: str, outcome: FileOutcome) -> None:
        entry = outcome.ledger()

        def write(tx: Tx) -> None:
            tx.put(FEED_NS, file_digest, entry)

        self.engine.store.apply(FEED_CONSUMER, f"feed.file:{file_digest}", write)

    def _bury(self, file_digest: str, name: str, p: Problem, now: float,
              message_id: str | None = None) -> None:
        # Deterministic id: a second pass over the file writes the same dead letter again.
        self.engine.store.put_dead_letter(BusDeadLetter(
            id=f"{INGRESS}/feed/{file_digest[:16]}/{p.line}", consumer=INGRESS, position=None,
            message_id=message_id, envelope=None, raw=p.raw or "",
            cause_type="FeedRowRejected", cause_message=f"{name} line {p.line}: {p.cause}",
            attempts=1, first_failure_at=now, last_failure_at=now))


def _x12_problem(e: EdiError) -> Problem:
    return Problem(describe(e), segment=e.segment_id or None,
                   position=e.segment_position or None, element=e.element_position or None)
