"""Reading request bodies: JSON, validation against the item master, problems that name the
field. Movement batches can be read off the event loop.

Parsing, validating and serialising a batch of 500 movements costs about 8 ms of Python. In the
service's single event loop that time is taken from storage and delivery and added to every
other request's wait, so `Intake` reads batches in a worker process (with its own item master,
built from the same settings) and hands back plain records: the loop only stores and routes
them. With ``intake_workers = 0``, or while a worker is being replaced after it died, the same
function runs in the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import pickle
import socket
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from integration_core.engine import MovementRecord
from integration_core.models import Canonical, Catalog, Movement
from integration_core.service.collector import tune_collector
from integration_core.service.config import Settings
from integration_core.service.limits import JsonLimits, read_json
from integration_core.service.problems import (
    FieldError,
    Problem,
    ProblemBody,
    from_validation_error,
    validation_problem,
)

log = logging.getLogger("interop_twin.service")
M = TypeVar("M", bound=Canonical)
B = TypeVar("B", bound=BaseModel)


@functools.cache
def _time_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(name for name, f in model.model_fields.items() if f.annotation is datetime)


_NUMBERS = (int, float)
"""A tuple, not ``int | float``: the union would be built again at every use."""


def parse_model(catalog: Catalog, model: type[M], data: Any, prefix: str = "") -> M:
    """Validate against the item master; errors name the field (under `prefix`)."""
    # A dict (what JSON gives) skips the abstract-class check, once per movement of a batch.
    if type(data) is not dict and not isinstance(data, Mapping):
        raise validation_problem([FieldError(field=prefix or "body",
                                             message="expected a JSON object")])
    # The schema says RFC 3339 strings; pydantic alone would read a number as Unix seconds.
    numeric_times = [FieldError(field=f"{prefix}.{name}" if prefix else name,
                                message="expected an RFC 3339 date-time string, got a number")
                     for name in _time_fields(model)
                     if isinstance(data.get(name), _NUMBERS)]
    if numeric_times:
        raise validation_problem(numeric_times)
    try:
        return catalog.parse(model, data)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix) from None


def parse_body(model: type[B], data: Any) -> B:
    """A request body that needs no item master (the admin and audit bodies)."""
    if not isinstance(data, Mapping):
        raise validation_problem([FieldError(field="body", message="expected a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


@dataclass(frozen=True, slots=True)
class BatchRead:
    """What `read_batch` found: valid movements by index, rejected items as BatchItem rows,
    or a problem with the whole body (title and field errors; raised by the caller)."""

    size: int = 0
    valid: list[tuple[int, MovementRecord]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    problem: tuple[str, list[dict[str, str]]] | None = None
    failure: str | None = None
    """The worker failed on this body (our bug, not the client's): the request is a 500."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The valid movements cross the worker's pipe as columns: pickled and rebuilt without
        # a Python call per record (a NamedTuple's own pickling makes two).
        # Payloads first: their twelve keys are memoised early, each later use is a short ref.
        indices, records = zip(*self.valid, strict=True) if self.valid else ((), ())
        ids, keys, times, payloads = zip(*records, strict=True) if records else ((),) * 4
        return _batch_read, (self.size, payloads, indices, ids, keys, times, self.rejected,
                             self.errors, self.problem, self.failure)

    def raise_problem(self) -> None:
        """The whole body is at fault, or no item is valid: a 422 naming the fields."""
        if self.failure is not None:
            raise IntakeFailed(self.failure)
        if self.problem is not None:
            title, errors = self.problem
            raise validation_problem([FieldError(**e) for e in errors], title)
        if not self.valid:
            raise validation_problem([FieldError(**e) for e in self.errors],
                                     "No movement in the batch is valid")


def _batch_read(size: int, payloads: tuple[dict[str, Any], ...], indices: tuple[int, ...],
                ids: tuple[str, ...], keys: tuple[str, ...], times: tuple[datetime, ...],
                rejected: list[dict[str, Any]], errors: list[dict[str, str]],
                problem: tuple[str, list[dict[str, str]]] | None,
                failure: str | None) -> BatchRead:
    """A pickled `BatchRead` again: records made by tuple.__new__, as MovementRecord's own
    constructor makes them, but in C."""
    fields = zip(ids, keys, times, payloads, strict=True)
    records = map(tuple.__new__, repeat(MovementRecord), fields)
    return BatchRead(size, list(zip(indices, records, strict=True)), rejected, errors, problem,
                     failure)


class IntakeFailed(Exception):
    """Reading a batch raised in the intake worker: a bug of ours, reported as a 500."""


def read_batch(catalog: Catalog, body: bytes, batch_max: int, limits: JsonLimits) -> BatchRead:
    """A ``{"movements": [...]}`` body, item by item. Returns plain data (it crosses a process
    boundary): a `Problem` is turned into its field errors here. JSON-level faults (limits,
    number literals, keys twice) refuse the whole body; a field at fault rejects its item."""
    try:
        data = read_json(body, limits)
    except Problem as p:
        return BatchRead(problem=(p.title, _errors(p)))
    items = data.get("movements") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return BatchRead(problem=("Request body is invalid", [
            {"field": "movements", "message": "a non-empty list of movements is required"}]))
    if len(items) > batch_max:
        return BatchRead(problem=("Request body is invalid", [
            {"field": "movements",
             "message": f"{len(items)} movements; at most {batch_max} per batch"}]))
    out = BatchRead(size=len(items))
    for i, item in enumerate(items):
        try:
            m = parse_model(catalog, Movement, item, f"movements[{i}]")
        except Problem as p:
            out.errors.extend(_errors(p))
            mid = item.get("movement_id") if isinstance(item, dict) else None
            out.rejected.append({
                "index": i, "movement_id": mid if isinstance(mid, str) else None,
                "status": "rejected", "message_id": None,
                "problem": ProblemBody.model_validate(p.body()).model_dump(mode="json")})
            continue
        out.valid.append((i, MovementRecord.of(m)))
    return out


def _errors(p: Problem) -> list[dict[str, str]]:
    return [e.model_dump() for e in p.errors]


# -- the worker processes -----------------------------------------------------------------------
#
# Not a ProcessPoolExecutor: its feeder and result threads need the GIL, which the busy event
# loop holds for up to the switch interval each time, and under load that added more latency
# than the parsing saved. Here the loop itself writes a body to the worker's socket and reads
# the answer when the socket is readable; the worker answers in order.

_HEADER = struct.Struct("!Q")


def _serve(sock: socket.socket, settings: Settings) -> None:
    """The worker: read a body, answer its `BatchRead`, until the service closes the socket.
    No input ends it: the limits refuse what would break the reader, and anything else that
    raises is answered as a failure (the loop would only read the same body again)."""
    catalog = settings.catalog()
    limits = settings.json_limits()
    tune_collector()  # as in the service's own process: validation allocates as much
    with sock:
        while True:
            body = _recv_frame(sock)
            if body is None:
                return
            try:
                read = read_batch(catalog, body, settings.batch_max, limits)
            except Exception as exc:
                log.exception("intake worker: reading a batch of %d bytes failed", len(body))
                read = BatchRead(failure=f"{type(exc).__name__}: {exc}"[:500])
            answer = pickle.dumps(read, protocol=5)
            sock.sendall(_HEADER.pack(len(answer)) + answer)


def _recv_frame(sock: socket.socket) -> bytes | None:
    header = _recv_exactly(sock, _HEADER.size)
    return None if header is None else _recv_exactly(sock, _HEADER.unpack(header)[0])


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            return None
        got += k
    return bytes(buf)


class WorkerGone(Exception):
    """The intake worker exited before it answered."""


class _Worker:
    """One intake process and the loop's end of its socket."""

    def __init__(self, settings: Settings) -> None:
        ours, theirs = socket.socketpair()
        # spawn, not fork: the loop, the SQLite connection and the HTTP client stay here.
        self.proc = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, settings), name="twin-intake", daemon=True)
        self.proc.start()
        theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self.waiting: deque[asyncio.Future[BatchRead]] = deque()
        self._buf = bytearray()
        self._send = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(ours.fileno(), self._readable)
        self.alive = True

    async def read_batch(self, body: bytes) -> BatchRead:
        if not self.alive:
            raise WorkerGone("the intake worker has exited")
        answer: asyncio.Future[BatchRead] = self._loop.create_future()
        async with self._send:  # frames must not interleave; answers come in this order
            self.waiting.append(answer)
            try:
                await self._loop.sock_sendall(self.sock, _HEADER.pack(len(body)) + body)
            except OSError as exc:
                self._gone(exc)
        return await answer

    def _readable(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    self._gone(None)
                    return
                self._buf += chunk
        except BlockingIOError:
            pass
        except OSError as exc:
            self._gone(exc)
            return
        buf = self._buf
        while len(buf) >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf)
            if len(buf) < _HEADER.size + n:
                break
            answer = pickle.loads(memoryview(buf)[_HEADER.size:_HEADER.size + n])
            del buf[:_HEADER.size + n]
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(answer)

    def _gone(self, exc: OSError | None) -> None:
        if not self.alive:
            return
        self.alive = False
        self.close()
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(WorkerGone(f"the intake worker exited ({exc or 'EOF'})"))

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # already removed or closed
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(timeout=2)


class Intake:
    """Reads movement batches in `settings.intake_workers` processes (none: in the loop)."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.limits = settings.json_limits()
        self._workers: list[_Worker] = []
        self.replaced = 0
        """Workers replaced after one died (each time, its batches in hand were read in the
        loop instead: nothing of them had been stored)."""

    async def start(self) -> None:
        self._workers = [_Worker(self.settings) for _ in range(self.settings.intake_workers)]
        # One batch each: the workers have imported the models and built their item master
        # before the first request pays for it.
        warm = b'{"movements": [{}]}'
        await asyncio.gather(*(w.read_batch(warm) for w in self._workers))

    async def read_batch(self, body: bytes) -> BatchRead:
        if not self._workers:
            return read_batch(self.catalog, body, self.settings.batch_max, self.limits)
        w = min(self._workers, key=lambda w: len(w.waiting))
        try:
            return await w.read_batch(body)
        except WorkerGone:
            log.warning("an intake worker died; starting another")
            if w in self._workers:
                self.replaced += 1
                w.close()
                self._workers[self._workers.index(w)] = _Worker(self.settings)
            return read_batch(self.catalog, body, self.settings.batch_max, self.limits)

    @property
    def pids(self) -> list[int | None]:
        return [w.proc.pid for w in self._workers]

    def close(self) -> None:
        for w in self._workers:
            w.close()
        self._workers = []
