"""Live service throughput: durable movements per second at p99 < 100 ms, single posts and
batches, against the ceiling of a bare uvicorn endpoint that only parses the same JSON,
measured in the same run.

    python -m loadtests.bench.service [--quick] [--repeat 3] [--batch-size 500] [--table]
                                      [--store sqlite|postgres] [--instances N]

Three processes: the server under test (``twin serve``, started exactly as
`loadtests/run.py` starts it, or the bare app `loadtests.bench.bare` under uvicorn), the
open-model load generator (`loadtests.bench.httpload`, its own spawned process) and this
script, which only orchestrates. Everything runs on 127.0.0.1.

For each mode (``single``: POST /v1/movements; ``batch``: POST /v1/movements:batch of
``--batch-size``) and each server:

1. a closed-loop probe finds the saturation throughput (every connection busy all the time);
2. open-model steps (Poisson arrivals, latency from the intended send time) search the highest
   offered rate whose p99 < 100 ms with zero errors (every response 200/202) and whose
   delivery backlog drains afterwards (for the service): start at 60% of
   saturation, step up x1.3 until a step fails (down x0.5 if the first fails), then bisect
   geometrically. A step stops early once its p99 cannot pass any more. A step is measured for
   ``--step-s`` after a warm-up, longer (up to 3x) when that holds fewer than 200 requests, so
   a slow batch step's p99 is not merely its maximum. A failed step during which the generator
   itself ran late (scheduler lag p99 > 20 ms: the shared machine, not the server) is run once
   more, at most twice per search; every run, discarded or not, is in the JSON.

"Durable movements/s" is movements acknowledged per second in the best step's measured window:
the service answers 202 only after the store's transaction holding them committed. Every movement
has a fresh ``movement_id`` (duplicates would be cheap 200s). After each service step the
script reads ``GET /v1/status``: the delivery backlog left at the end of the step, and the time
the delivery loop takes to drain it (bounded by ``--drain-deadline-s``); the next step starts
after the drain. At the end, the bus counters must show no duplicate publish and at least as many
published messages as movements the generator saw acknowledged.

The ERP and WMS twins stand in for systems that in production run on other machines; here they
share the 2 cores with the service, so by default their process runs at niceness 10: it gets
the CPU the service leaves idle, as a remote ERP would take none of the service's. They must
still keep up: a step passes only if the backlog it leaves drains within the deadline.
``--partners-nice 0`` runs them at the service's priority (the figure is lower; README has both).

JSON on stdout (and in ``--out FILE``); ``--table`` adds a human-readable table. The ratio is
service / bare: the bare app is raw ASGI (no Starlette, no FastAPI), so the ratio prices the
framework as well as validation, auth and storage.

``--store postgres``: the service's durable state (bus and idempotency records) on a throwaway
PostgreSQL (`loadtests/pg.py`: initdb + pg_ctl on loopback, fsync and synchronous_commit on),
``twin serve --store postgresql://...``, a fresh schema per repeat; the partner twins stay on
SQLite. Each repeat also measures the database's own ceiling on the same server before the
servers start: the hand-written bus cycle in SQL of `loadtests.bench.postgres` (insert a batch;
claim it ``FOR UPDATE SKIP LOCKED``, inbox rows ``ON CONFLICT DO NOTHING``, upsert balances,
mark delivered), reported beside the bare-app ratio as ``service / hand-written``.

``--instances N`` (N > 1, PostgreSQL only): N ``twin serve`` processes share the schema
(``--instance-id i1`` ... ``iN``, as `loadtests/run.py` starts them) and call the same partner
twins; the generator spreads its connections round-robin over them. The first step waits until
every instance is ready and every partition is leased, each instance holding its fair share.
The delivery check and the integrity check add up every instance's ``/v1/status``: each reports
the backlog of the partitions it owns and the counters of its own bus; the dead letters are
the shared store's (each instance sees them all). One instance runs as without the option
(its state cache on); several cannot keep it (docs/postgres.md, "Several instances").
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from integration_core.bus.partitions import fair_share
from loadtests.bench.common import machine
from loadtests.bench.httpload import LoadProcess, Payload, Step, StepResult, Target
from loadtests.pg import PgServer, throwaway

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SYSTEMS = ("shop", "wms", "erp", "carrier", "admin")
SLO_S = 0.100
TARGETS = {"single": 1_000, "batch": 20_000}
TARGETS_PG: dict[str, int | None] = {"single": None, "batch": 10_000}
"""Issue 16: batched >= 10,000 movements/s at p99 < 100 ms with one instance; no single-post
target on PostgreSQL."""
STORES = ("sqlite", "postgres")
MODES = ("single", "batch")


# -- the servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start_service(ports: int | list[int], db: Path, keys: dict[str, str], log: IO[bytes],
                  partners_nice: int = 0, store: tuple[str, str] | None = None
                  ) -> list[subprocess.Popen[bytes]]:
    """The ERP/WMS twins (`twin twins`) and one ``twin serve`` per port calling them over
    HTTP, as `loadtests/run.py` starts them: keys and rates from the environment. Returns the
    processes, the twins first, then the instances in port order. The twins run at niceness
    `partners_nice` (see `main`). `store`: (PostgreSQL URL, schema) of the service's state;
    None: the SQLite file `db`. Several ports: the instances share the schema, each with its
    own ``--instance-id`` (``i1``, ...) and SQLite file (``twin-2.db``, ...). One port may be
    given as an int.

    The one place to adapt when ``twin serve`` gains options."""
    ports = [ports] if isinstance(ports, int) else ports
    if len(ports) > 1 and store is None:
        raise ValueError("several instances need a PostgreSQL store to share")
    twins_port = free_port()
    env = {**os.environ, "TWIN_PARTNER_KEY": secrets.token_urlsafe(24),
           **{f"TWIN_API_KEY_{s.upper()}": k for s, k in keys.items()},
           **{f"TWIN_RATE_{s.upper()}": "1000000" for s in SYSTEMS}}
    cli = [sys.executable, "-c", "from sim.cli import app; app()"]
    twins = subprocess.Popen(
        [*cli, "twins", "--host", HOST, "--port", str(twins_port), "--db",
         str(db.with_name("twins.db")), "--log-level", "warning"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )
    procs = [twins]
    try:  # the caller gets every process or none: a failed start stops what it started
        if partners_nice:
            os.setpriority(os.PRIO_PROCESS, twins.pid, partners_nice)
        wait_http(f"http://{HOST}:{twins_port}", twins, "/healthz", 200)
        url = f"http://{HOST}:{twins_port}"
        on_pg = [] if store is None else ["--store", store[0], "--store-schema", store[1]]
        for k, port in enumerate(ports, 1):
            shared = ["--instance-id", f"i{k}"] if len(ports) > 1 else []
            own_db = db if k == 1 else db.with_name(f"{db.stem}-{k}{db.suffix}")
            procs.append(subprocess.Popen(
                [*cli, "serve", "--host", HOST, "--port", str(port), "--db", str(own_db),
                 "--log-level", "warning", "--erp-url", f"{url}/erp", "--wms-url",
                 f"{url}/wms", *on_pg, *shared],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            ))
    except BaseException:
        for p in procs:
            stop_process(p)
        raise
    return procs


def start_bare(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """The bare app under uvicorn's defaults (the same ones ``twin serve`` runs with)."""
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "loadtests.bench.bare:app", "--host", HOST,
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_http(base: str, proc: subprocess.Popen[bytes], path: str, want: int | None,
              timeout_s: float = 60.0) -> None:
    """Until `path` answers `want` (any status when None); fail if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} while starting")
        try:
            code = httpx.get(f"{base}{path}", timeout=2.0).status_code
            if want is None or code == want:
                return
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base} was not ready within {timeout_s} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Server:
    """A server under test: one process per instance (the bare app: one), in port order."""

    name: str
    procs: list[subprocess.Popen[bytes]]
    ports: list[int]
    paths: dict[str, str]
    headers: tuple[tuple[str, str], ...] = ()
    admins: list[httpx.Client] = field(default_factory=list)
    """One admin client per instance (the service only)."""
    log: Path | None = None
    acked_movements: int = 0
    notes: list[str] = field(default_factory=list)

    def target(self, mode: str) -> Target:
        return Target.spread(HOST, self.ports, self.paths[mode], self.headers)

    def check_alive(self) -> None:
        for k, proc in enumerate(self.procs, 1):
            if proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log else ""
                raise RuntimeError(f"the {self.name} server (instance {k} of "
                                   f"{len(self.procs)}) exited with {proc.returncode}:\n{tail}")

    def statuses(self) -> list[dict[str, Any]]:
        """Every instance's ``GET /v1/status``."""
        out = []
        for admin in self.admins:
            r = admin.get("/v1/status")
            r.raise_for_status()
            out.append(r.json())
        return out


def wait_partitions(svc: Server, timeout_s: float = 60.0) -> dict[str, Any]:
    """Several instances: until no partition is unowned and each instance holds its fair share
    (`fair_share`, by its rank among the instance ids). Returns what each owns."""
    deadline = time.monotonic() + timeout_s
    while True:
        svc.check_alive()
        docs = [d["instance"] for d in svc.statuses()]
        ids = sorted(d["id"] for d in docs)
        owned = {d["id"]: len(d["owned"]) for d in docs}
        fair = all(owned[i] >= fair_share(docs[0]["partitions"], len(ids), rank)
                   for rank, i in enumerate(ids))
        if fair and all(d["unowned_partitions"] == 0 for d in docs):
            return {"partitions": docs[0]["partitions"], "owned": owned}
        if time.monotonic() > deadline:
            raise RuntimeError(f"the partitions were not shared out within {timeout_s} s: "
                               f"{docs}")
        time.sleep(0.2)


@contextlib.contextmanager
def servers(workdir: Path, partners_nice: int = 0, store: tuple[str, str] | None = None,
            instances: int = 1) -> Iterator[tuple[Server, Server]]:
    """The bare app and the service (`instances` processes), all listening and, with several
    instances, the partitions shared out; stopped on the way out."""
    keys = {s: secrets.token_urlsafe(24) for s in SYSTEMS}  # fresh per run, never printed
    logs = [(workdir / "bare.log").open("wb"), (workdir / "service.log").open("wb")]
    procs: list[subprocess.Popen[bytes]] = []
    admins: list[httpx.Client] = []
    try:
        p_bare, p_svc = free_port(), [free_port() for _ in range(instances)]
        procs.append(start_bare(p_bare, logs[0]))
        procs.extend(start_service(p_svc, workdir / "twin.db", keys, logs[1], partners_nice,
                                   store))
        wait_http(f"http://{HOST}:{p_bare}", procs[0], "/", None)
        serving = procs[-instances:]
        for port, proc in zip(p_svc, serving, strict=True):
            wait_http(f"http://{HOST}:{port}", proc, "/readyz", 200)
            admins.append(httpx.Client(base_url=f"http://{HOST}:{port}", timeout=30.0,
                                       headers={"X-API-Key": keys["admin"]}))
        bare = Server("bare", procs[:1], [p_bare],
                      {"single": "/movements", "batch": "/movements:batch"},
                      log=workdir / "bare.log")
        svc = Server("service", serving, p_svc,
                     {"single": "/v1/movements", "batch": "/v1/movements:batch"},
                     headers=(("X-API-Key", keys["wms"]),), admins=admins,
                     log=workdir / "service.log")
        if instances > 1:
            svc.notes.append(f"partitions at start: {wait_partitions(svc)}")
        yield bare, svc
    finally:
        for admin in admins:
            admin.close()
        for p in procs:
            stop_process(p)
        for f in logs:
            f.close()


# -- delivery -----------------------------------------------------------------------------------


def backlog(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Per consumer, the backlog summed over the instances' ``/v1/status`` (each counts the
    partitions it owns); with several instances, ``unread`` adds what some instance's tail
    has not read from the log yet and ``unowned`` the partitions nobody holds (their backlog
    is nobody's, so it would sum to zero)."""
    out: dict[str, int] = {}
    for d in docs:
        for c, v in d["consumers"].items():
            out[c] = out.get(c, 0) + v["backlog"]
    shared = [d["instance"] for d in docs if "instance" in d]
    if shared:
        out["unread"] = sum(max(0, s["tail_behind"]) for s in shared)
        out["unowned"] = max(s["unowned_partitions"] for s in shared)
    return out


def delivery(admins: list[httpx.Client], deadline_s: float) -> dict[str, Any]:
    """Backlog right now (every instance's), then poll until every consumer is drained on
    every instance or the deadline passes."""
    def statuses() -> list[dict[str, Any]]:
        return [a.get("/v1/status").json() for a in admins]

    t0 = time.monotonic()
    docs = statuses()
    first = backlog(docs)
    left = sum(first.values())
    while left and time.monotonic() - t0 < deadline_s:
        time.sleep(0.1)
        docs = statuses()
        left = sum(backlog(docs).values())
    return {
        "backlog_at_end": sum(first.values()), "backlog_by_consumer": first,
        "drained": left == 0,
        "drain_s": round(time.monotonic() - t0, 2) if left == 0 else None,
        "backlog_left": left,
        # The store's dead letters: every instance sees them all, so the most any reports.
        "dead_letters": max(sum(v["dead_letters"] for v in d["consumers"].values())
                            for d in docs),
        "background_failures": sum(d.get("background_failures", 0) for d in docs),
    }


# -- the search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    step_s: float
    warmup_s: float
    min_requests: int
    max_step_factor: float
    probe_s: float
    batch_size: int
    connections: dict[str, int]
    arrivals: str
    seed: int
    start_fraction: float
    up_factor: float
    bisect_steps: int
    resolution: float
    max_steps: int
    lag_retry_ms: float
    lag_retries: int
    drain_deadline_s: float
    timeout_s: float
    partners_nice: int
    store: str = "sqlite"
    ceiling_rows: int = 20_000
    instances: int = 1


def _ms(x: float) -> float | None:
    """Rounded, or None for NaN (no measured request completed): JSON has no NaN."""
    return None if math.isnan(x) else round(x, 2)


def _step_row(res: StepResult, movements: int, drain: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "offered_requests_per_s": round(res.rate, 1),
        "offered_movements_per_s": round(res.rate * movements),
        "movements_per_s": round(res.movements_per_s),
        "requests": res.scheduled,
        "duration_s": round(res.duration_s, 2),
        "p50_ms": _ms(res.latency_ms["p50"]),
        "p99_ms": _ms(res.latency_ms["p99"]),
        "max_ms": _ms(res.latency_ms["max"]),
        "errors": res.errors,
        "passed": res.passed,
        "client_cpu_fraction": res.client["cpu_fraction"],
        "client_sched_lag_p99_ms": _ms(res.client["sched_lag_p99_ms"]),
    }
    if res.stopped:
        row["stopped"] = res.stopped
    if res.unfinished:
        row["unfinished"] = res.unfinished
    if res.errors or set(res.statuses) - {"200", "202"}:
        row["statuses"] = res.statuses
    if drain is not None:
        row["delivery"] = drain
    return row


def search(gen: LoadProcess, srv: Server, mode: str, cfg: Config, tag: str,
           log: IO[str]) -> dict[str, Any]:
    """Saturation probe, then open-model steps up to the best rate with p99 < SLO, 0 errors."""
    batch = mode == "batch"
    movements = cfg.batch_size if batch else 1
    conns = cfg.connections[mode]
    target = srv.target(mode)
    unique = srv.name == "service"  # the bare app does not dedupe: a pool of bodies will do

    def payload(prefix: str) -> Payload:
        return Payload(kind="batch" if batch else "single", batch_size=movements,
                       id_prefix=f"{tag}-{prefix}", unique=unique)

    def settle() -> dict[str, Any] | None:
        srv.check_alive()
        if not srv.admins:
            time.sleep(0.2)
            return None
        return delivery(srv.admins, cfg.drain_deadline_s)

    sat = gen.saturate(target, payload("sat"), conns, cfg.probe_s)
    srv.acked_movements += int(sat["ok_movements_total"])
    settle()
    steps: list[dict[str, Any]] = []
    results: list[StepResult] = []
    passes: list[bool] = []  # the step's latency and errors passed, and its backlog drained

    tried = [0]  # search steps, not counting retries
    retries = [cfg.lag_retries]

    def attempt(rate: float) -> bool:
        tried[0] += 1
        while True:
            k = len(steps)
            # Enough measured requests for a p99 that is not just the maximum, within reason.
            duration = max(cfg.step_s, min(cfg.step_s * cfg.max_step_factor,
                                           cfg.min_requests / rate))
            step = Step(rate=rate, duration_s=duration, warmup_s=cfg.warmup_s,
                        connections=conns,
                        arrivals="poisson" if cfg.arrivals == "poisson" else "constant",
                        seed=cfg.seed + 1000 * k + (7 if batch else 0),
                        timeout_s=cfg.timeout_s, slo_s=SLO_S, stop_on_error=True)
            res = gen.step(target, payload(f"s{k}"), step)
            srv.acked_movements += res.ok_movements_total
            drain = settle()
            # A rate the delivery cannot keep up with is not sustained, however fast the acks.
            passed = res.passed and (drain is None or drain["drained"])
            row = _step_row(res, movements, drain)
            row["passed"] = passed
            lag = row["client_sched_lag_p99_ms"] or 0.0
            # A failure while the generator itself ran late says more about the machine than
            # about the server: run that step once more (a pass is never re-run).
            retry = not passed and lag > cfg.lag_retry_ms and retries[0] > 0
            if retry:
                retries[0] -= 1
                row["discarded"] = f"the generator lagged ({lag} ms p99): step run again"
            steps.append(row)
            results.append(res)
            passes.append(passed)
            print(f"  {srv.name:>7} {mode:<6} {rate * movements:>9.0f} mv/s offered  "
                  f"p99 {row['p99_ms'] if row['p99_ms'] is not None else '-':>8} ms  "
                  f"{'pass' if passed else 'FAIL'}"
                  f"{'  (' + res.stopped + ')' if res.stopped else ''}"
                  f"{'  (backlog not drained)' if res.passed and not passed else ''}"
                  f"{'  generator lagged: again' if retry else ''}", file=log, flush=True)
            if not retry:
                return passed

    cap = float(sat["requests_per_s"])
    lo: float | None = None
    hi: float | None = None
    if cap > 0:
        r = cfg.start_fraction * cap
        while tried[0] < cfg.max_steps and r * movements >= 1.0:
            if attempt(r):
                lo = r
                break
            hi, r = r, r * 0.5
        if lo is not None and hi is None:
            r = lo * cfg.up_factor
            while tried[0] < cfg.max_steps:
                if not attempt(r):
                    hi = r
                    break
                lo, r = r, r * cfg.up_factor
        n_bisect = 0
        while (lo is not None and hi is not None and n_bisect < cfg.bisect_steps
               and hi / lo > 1.0 + cfg.resolution and tried[0] < cfg.max_steps):
            mid = math.sqrt(lo * hi)
            if attempt(mid):
                lo = mid
            else:
                hi = mid
            n_bisect += 1
    passing = [i for i, ok in enumerate(passes) if ok]
    best_i = max(passing, key=lambda i: results[i].movements_per_s) if passing else None
    best = steps[best_i] if best_i is not None else None
    return {
        "movements_per_s": best["movements_per_s"] if best else 0,
        "best_step": best,
        "saturation": {"requests_per_s": round(cap, 1),
                       "movements_per_s": round(float(sat["movements_per_s"])),
                       "connections": conns, "errors": sat["errors"]},
        "connections": conns,
        "steps": steps,
    }


def sql_ceiling(dsn: str, n: int, batch: int) -> dict[str, Any]:
    """The hand-written bus cycle in SQL (`loadtests.bench.postgres`) on `n` movement rows in
    batches of `batch`, on the server the service will use: the database's own ceiling."""
    from loadtests.bench.bus import envelopes
    from loadtests.bench.postgres import run_handwritten

    rows = [(i + 1, e.message_id, e.type, 0.0, e.model_dump_json())
            for i, e in enumerate(envelopes(n))]
    t0 = time.perf_counter()
    run_handwritten(dsn, rows, batch)
    took = time.perf_counter() - t0
    return {"rows": n, "batch": batch, "seconds": round(took, 3), "rows_per_s": round(n / took)}


def one_repeat(gen: LoadProcess, cfg: Config, modes: list[str], rep: int,
               log: IO[str], pg: PgServer | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store = None
    if pg is not None:
        out["handwritten_sql_cycle"] = sql_ceiling(pg.dsn, cfg.ceiling_rows, cfg.batch_size)
        print(f"  hand-written SQL bus cycle: {out['handwritten_sql_cycle']['rows_per_s']} "
              "rows/s", file=log, flush=True)
        store = (pg.url, f"bench_service_{rep}")
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp, servers(
            Path(tmp), cfg.partners_nice, store, cfg.instances) as (bare, svc):
        for note in svc.notes:
            print(f"  {note}", file=log, flush=True)
        for mode in modes:
            out[mode] = {srv.name: search(gen, srv, mode, cfg, f"r{rep}{mode[0]}", log)
                         for srv in (bare, svc)}
        out["integrity"] = integrity(svc)
    return out


def integrity(svc: Server) -> dict[str, Any]:
    """Every instance's bus counts what it published itself: their sums must show no
    duplicate and at least every movement the generator saw acknowledged."""
    counters = [d["counters"] for d in svc.statuses()]
    published = [c["published"] for c in counters]
    duplicates = sum(c["duplicate_publishes"] for c in counters)
    return {
        "movements_acked_to_generator": svc.acked_movements,
        "bus_published": sum(published),
        **({"bus_published_by_instance": published} if len(published) > 1 else {}),
        "bus_duplicate_publishes": duplicates,
        "ok": duplicates == 0 and sum(published) >= svc.acked_movements,
    }


# -- report -------------------------------------------------------------------------------------


def _median_index(values: list[float]) -> int:
    order = sorted(range(len(values)), key=lambda i: values[i])
    return order[(len(order) - 1) // 2]


def summarize(reps: list[dict[str, Any]], modes: list[str], cfg: Config,
              wall_s: float, load: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"benchmark": "service", "store": cfg.store,
                           "instances": cfg.instances,
                           "slo": {"p99_ms_below": SLO_S * 1000, "errors": 0}}
    targets: dict[str, int | None] = dict(TARGETS_PG if cfg.store == "postgres" else TARGETS)
    if cfg.instances > 1:  # issue 16 sets targets for one instance only
        targets = dict.fromkeys(targets)
    sql: float | None = None
    if cfg.store == "postgres":
        runs = [float(r["handwritten_sql_cycle"]["rows_per_s"]) for r in reps]
        sql = statistics.median(runs)
        out["handwritten_sql_cycle"] = {"rows_per_s": round(sql),
                                        "per_repeat": [round(x) for x in runs],
                                        "rows": cfg.ceiling_rows, "batch": cfg.batch_size}
    for mode in modes:
        svc = [float(r[mode]["service"]["movements_per_s"]) for r in reps]
        bare = [float(r[mode]["bare"]["movements_per_s"]) for r in reps]
        s_med, b_med = statistics.median(svc), statistics.median(bare)
        rep = reps[_median_index(svc)][mode]
        best_s, best_b = rep["service"]["best_step"], rep["bare"]["best_step"]
        target = targets[mode]
        out[mode] = {
            "service_movements_per_s": round(s_med),
            "bare_movements_per_s": round(b_med),
            "ratio": round(s_med / b_med, 3) if b_med else None,
            **({} if sql is None else
               {"ratio_to_handwritten_sql": round(s_med / sql, 3) if sql else None}),
            "target_movements_per_s": target,
            "pass": None if target is None else s_med >= target,
            "service_p50_ms": best_s["p50_ms"] if best_s else None,
            "service_p99_ms": best_s["p99_ms"] if best_s else None,
            "bare_p50_ms": best_b["p50_ms"] if best_b else None,
            "bare_p99_ms": best_b["p99_ms"] if best_b else None,
            "delivery_at_best_step": best_s.get("delivery") if best_s else None,
            "saturation_movements_per_s": {"service": rep["service"]["saturation"]
                                           ["movements_per_s"],
                                           "bare": rep["bare"]["saturation"]
                                           ["movements_per_s"]},
            "per_repeat": [{"service": round(s), "bare": round(b),
                            "ratio": round(s / b, 3) if b else None}
                           for s, b in zip(svc, bare, strict=True)],
        }
    out["integrity"] = [r["integrity"] for r in reps]
    out["parameters"] = {
        "repeat": len(reps), "step_s": cfg.step_s, "warmup_s": cfg.warmup_s,
        "step_min_requests": cfg.min_requests, "step_max_s": cfg.step_s * cfg.max_step_factor,
        "probe_s": cfg.probe_s, "batch_size": cfg.batch_size, "connections": cfg.connections,
        "partners_nice": cfg.partners_nice, "store": cfg.store, "instances": cfg.instances,
        "arrivals": cfg.arrivals, "seed": cfg.seed, "drain_deadline_s": cfg.drain_deadline_s,
        "search": {"start_fraction_of_saturation": cfg.start_fraction,
                   "up_factor": cfg.up_factor, "bisect_steps": cfg.bisect_steps,
                   "resolution": cfg.resolution, "max_steps": cfg.max_steps,
                   "rerun_failed_step_if_generator_lag_p99_ms_over": cfg.lag_retry_ms,
                   "reruns_per_search": cfg.lag_retries},
        "server": "uvicorn, 1 worker, asyncio loop, "
                  + ("httptools" if importlib.util.find_spec("httptools") else "h11"),
        "bare_app": "raw ASGI (loadtests/bench/bare.py): read body, json.loads, 202",
        "generator": "loadtests/bench/httpload.py: open model, own process, asyncio streams",
    }
    out["host"] = {**machine(), "cpus_usable": len(os.sched_getaffinity(0)), **load}
    out["wall_s"] = round(wall_s, 1)
    out["repeats"] = reps
    return out


def table(r: dict[str, Any]) -> str:
    head = (f"{'mode':<8}{'service mv/s':>13}{'bare mv/s':>11}{'ratio':>7}{'target':>8}"
            f"{'pass':>6}{'svc p50/p99 ms':>16}{'backlog':>9}{'drain s':>9}")
    lines = [head]
    for mode in MODES:
        if mode not in r:
            continue
        m = r[mode]
        d = m["delivery_at_best_step"] or {}
        drain = d.get("drain_s")
        lat = (f"{m['service_p50_ms']}/{m['service_p99_ms']}" if m["service_p50_ms"] is not None
               else "-")
        target = m["target_movements_per_s"]
        verdict = "-" if m["pass"] is None else "yes" if m["pass"] else "NO"
        lines.append(
            f"{mode:<8}{m['service_movements_per_s']:>13,}{m['bare_movements_per_s']:>11,}"
            f"{m['ratio'] if m['ratio'] is not None else '-':>7}"
            f"{'-' if target is None else format(target, ','):>8}{verdict:>6}{lat:>16}"
            f"{d.get('backlog_at_end', '-'):>9}"
            f"{drain if drain is not None else ('>' + str(r['parameters']['drain_deadline_s'])):>9}"
        )
    lines.append(f"p99 < {SLO_S * 1000:.0f} ms with 0 errors; batch size "
                 f"{r['parameters']['batch_size']}; medians of {r['parameters']['repeat']} "
                 f"repeat(s); {r['host']['cpus']} CPUs, load {r['host']['loadavg_before']}; "
                 f"partner twins at nice {r['parameters']['partners_nice']}; store "
                 f"{r['store']}, {r.get('instances', 1)} service instance(s)")
    if "handwritten_sql_cycle" in r:
        ratios = ", ".join(f"{mode} {r[mode]['ratio_to_handwritten_sql']}" for mode in MODES
                           if mode in r)
        lines.append(f"hand-written SQL bus cycle on the same server: "
                     f"{r['handwritten_sql_cycle']['rows_per_s']:,} rows/s; service / it: "
                     f"{ratios}")
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Config, list[str]]:
    """The command line: its arguments, the run's `Config` and the modes (exits on bad ones)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short steps: a smoke test (< 60 s)")
    p.add_argument("--step-s", type=float, help="measured seconds per step (default 4; 1.5 "
                   "with --quick)")
    p.add_argument("--warmup-s", type=float, help="unmeasured seconds before each step "
                   "(default 1; 0.5 with --quick)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--repeat", type=int, default=1, help="whole runs; figures are medians")
    p.add_argument("--modes", default="single,batch", help="comma-separated: single,batch")
    p.add_argument("--connections-single", type=int, default=32)
    p.add_argument("--connections-batch", type=int, default=8)
    p.add_argument("--arrivals", choices=("poisson", "constant"), default="poisson")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--partners-nice", type=int, default=10, help="niceness of the ERP/WMS "
                   "twins' process (default 10; 0: the service's priority)")
    p.add_argument("--drain-deadline-s", type=float, help="longest wait for the delivery "
                   "backlog after a step (default 20; 5 with --quick)")
    p.add_argument("--store", choices=STORES, default="sqlite", help="the service's durable "
                   "state: its SQLite file, or a throwaway PostgreSQL (loadtests/pg.py)")
    p.add_argument("--instances", type=int, default=1, help="service processes sharing the "
                   "PostgreSQL schema (N > 1 needs --store postgres); the generator spreads "
                   "its connections over them")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--table", action="store_true", help="also print a human-readable table")
    a = p.parse_args(argv)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        p.error(f"--modes: a comma-separated subset of {MODES}")
    if not 0 <= a.partners_nice <= 19:
        p.error("--partners-nice: 0 to 19")
    if not 1 <= a.batch_size <= 1000:
        p.error("--batch-size: 1 to 1000 (the service's batch_max)")
    if a.instances < 1:
        p.error(f"--instances: 1 or more, got {a.instances}")
    if a.instances > 1 and a.store != "postgres":
        p.error(f"--instances {a.instances} needs --store postgres (several instances share "
                "its schema; a SQLite file has one owner)")
    if a.repeat < 1:
        p.error(f"--repeat: 1 or more, got {a.repeat}")
    q = a.quick
    cfg = Config(
        step_s=a.step_s or (1.5 if q else 4.0), warmup_s=a.warmup_s or (0.5 if q else 1.0),
        min_requests=200, max_step_factor=2.0 if q else 3.0,
        probe_s=1.0 if q else 2.0, batch_size=a.batch_size,
        connections={"single": a.connections_single, "batch": a.connections_batch},
        arrivals=a.arrivals, seed=a.seed, start_fraction=0.6, up_factor=1.3,
        bisect_steps=1 if q else 3, resolution=0.05, max_steps=4 if q else 7,
        lag_retry_ms=20.0, lag_retries=0 if q else 2,
        drain_deadline_s=a.drain_deadline_s or (5.0 if q else 20.0),
        timeout_s=5.0 if q else 10.0, partners_nice=a.partners_nice, store=a.store,
        ceiling_rows=5_000 if q else 20_000, instances=a.instances,
    )
    return a, cfg, modes


def run(cfg: Config, modes: list[str], repeat: int, pg: PgServer | None = None,
        log: IO[str] = sys.stderr) -> dict[str, Any]:
    """`repeat` whole runs (on `pg` when the store is PostgreSQL), summarized."""
    if (pg is None) != (cfg.store != "postgres"):
        raise ValueError(f"store {cfg.store!r} with {'no' if pg is None else 'a'} PostgreSQL")
    load = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.monotonic()
    reps = []
    with LoadProcess() as gen:
        for rep in range(repeat):
            print(f"repeat {rep + 1}/{repeat}", file=log, flush=True)
            reps.append(one_repeat(gen, cfg, modes, rep, log, pg))
    load["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return summarize(reps, modes, cfg, time.monotonic() - t0, load)


def main(argv: list[str] | None = None) -> int:
    a, cfg, modes = parse(argv)
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(throwaway()) if a.store == "postgres" else None
        result = run(cfg, modes, a.repeat, pg)
    text = json.dumps(result, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    if a.table:
        print()
        print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
