"""The drop folder's watcher: an asyncio task that polls `settings.feed_dir` and hands each
complete file to the core's `FileFeed` (docs/edi.md, "The file feed").

The service's part is I/O only: listing the folder, the size check before a file is read,
reading it (off the loop, as is parsing a CSV file), writing the reply and the error report,
and moving the file. Order of the writes, so that a crash anywhere repeats nothing: the core
commits the file's effects and its ledger entry; then the reply / report are written (to a
temporary name, then renamed); then the file is moved. A file still in the folder after a
restart is looked up in the ledger by its digest and only moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from integration_core.feed import (
    CsvFile,
    CsvLimits,
    FileFeed,
    FileKind,
    FileOutcome,
    Problem,
    destination,
    digest,
    file_kind,
    read_movements,
    ready,
)
from integration_core.feed.files import ACK_SUFFIX, ERROR_SUFFIX, FAILED, PROCESSED
from integration_core.feed.movements_csv import check_limits
from integration_core.service.config import Settings
from integration_core.service.edi import inbox_for
from integration_core.service.live import LiveEngine

log = logging.getLogger("interop_twin.feed")


@dataclass(slots=True)
class FeedStats:
    processed: int = 0
    failed: int = 0
    errors: int = 0
    """Files (or polls) that raised (the store failed, a file unreadable): tried again at the
    next poll."""


class FeedWatcher:
    def __init__(self, engine: LiveEngine, settings: Settings, folder: Path) -> None:
        self.engine = engine
        self.folder = folder
        self.poll_s = settings.feed_poll_s
        self.csv_limits = CsvLimits(settings.feed_max_bytes, settings.feed_max_rows)
        self.x12_max_bytes = settings.max_edi_bytes
        self.feed = FileFeed(engine, inbox_for(engine, settings.max_edi_bytes),
                             settings.feed_source, settings.feed_chunk_rows)
        self.stats = FeedStats()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        for sub in (PROCESSED, FAILED):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="feed")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.poll()
            except Exception:  # the store or the disk failed: the file stays, next poll
                self.stats.errors += 1
                log.exception("file feed: poll failed; retrying")
            await asyncio.sleep(self.poll_s)

    async def poll(self) -> list[FileOutcome]:
        """Carry out every complete file in the folder now (oldest name first)."""
        names = [e.name for e in os.scandir(self.folder) if e.is_file()]
        out = []
        for name in ready(names):
            try:
                outcome = await self.take(name)
            except Exception:  # this file stays for the next poll; the others go on
                self.stats.errors += 1
                log.exception("file feed: %s failed; it stays for the next poll", name)
                continue
            if outcome is not None:
                out.append(outcome)
        return out

    async def take(self, name: str) -> FileOutcome | None:
        path = self.folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:  # taken away meanwhile
            return None
        kind = file_kind(name)
        limit = self.x12_max_bytes if kind is FileKind.X12 else self.csv_limits.max_bytes
        too_big = check_limits(size, CsvLimits(limit, self.csv_limits.max_rows))
        if kind is FileKind.UNSUPPORTED:
            outcome = self.feed.refused(name, kind, Problem(
                "not a file the feed reads: name it .csv (movements) or .x12 / .edi (X12)"))
        elif too_big is not None:  # refused before it is read
            outcome = self.feed.refused(name, kind, too_big)
        else:
            data = await asyncio.to_thread(path.read_bytes)
            outcome = await self._carry_out(name, kind, data)
        self._settle(path, outcome)
        return outcome

    async def _carry_out(self, name: str, kind: FileKind, data: bytes) -> FileOutcome:
        file_digest = digest(data)
        known = self.feed.known(name, file_digest)
        if known is not None:
            return known
        if kind is FileKind.X12:
            return self.feed.x12(name, file_digest, data)
        parsed: CsvFile = await asyncio.to_thread(
            read_movements, data, self.engine.catalog, file_digest, self.csv_limits)
        steps = self.feed.csv_steps(name, file_digest, parsed)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                outcome: FileOutcome = done.value
                return outcome
            await asyncio.sleep(0)  # requests get the loop between two chunks

    def _settle(self, path: Path, outcome: FileOutcome) -> None:
        where = self.folder / outcome.folder
        target = destination(path.name, outcome.digest or "unread",
                             lambda n: (where / n).exists())
        if outcome.ack is not None:
            _write_atomic(where / (target + ACK_SUFFIX), outcome.ack)
        if outcome.folder == FAILED:
            report = json.dumps(outcome.report(), indent=2, ensure_ascii=False) + "\n"
            _write_atomic(where / (target + ERROR_SUFFIX), report.encode())
            self.stats.failed += 1
        else:
            self.stats.processed += 1
        os.replace(path, where / target)
        log.info("file feed: %s -> %s/%s (%s)", path.name, outcome.folder, target,
                 outcome.detail)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
