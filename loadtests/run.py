"""End-to-end load test: start the service on a free loopback port, run locust headless
against it as a load plan says (rate over time, downstream faults), then prove through the
API that every acknowledged movement was applied exactly once and nothing is left
unexplained, and hold locust's numbers to the thresholds file.

    python -m loadtests.run [--plan loadtests/shapes/default.toml] [--workers 0]
                            [--thresholds loadtests/thresholds.toml] [--out results/loadtest]
                            [--duration S] [--rate R] [--users N] [--seed N]
                            [--outage-at S] [--outage-s S]
                            [--store sqlite|postgres] [--instances N] [--lease-ttl-s S]
                            [--process-faults]

The plan (`loadtests/plan.py`, shipped: ``loadtests/shapes/{default,ramp,spike,soak}.toml``)
gives the run's length, the offered arrival rate over time, the users and the faults.
``--duration``/``--rate`` replace its stages by one flat stage, ``--outage-at``/``--outage-s``
its faults by one ERP outage (``--outage-s 0``: none). ``--workers N`` runs locust distributed
on this machine: a master and N worker processes, on loopback.

The service calls the ERP and WMS twins (`twin twins`, a process of their own) over HTTP.
When the plan puts toxics on a link (``[[faults]]`` with ``link = "erp"``), that partner is
called through a fault proxy (`loadtests.proxy`, a process of its own, seeded from the plan's
seed): the core gets ``--erp-url http://127.0.0.1:<proxy>/erp``, locust switches the toxics on
the plan's clock through the proxy's control endpoint, and the verdict requires each planned
toxic to have fired (``links`` in ``summary.json``: the proxies' counters).

``--store postgres`` starts a throwaway PostgreSQL (`loadtests.pg`) for the service's state;
``--instances N`` runs N service processes sharing its schema (``--instance-id i1`` ...), and
locust's users are spread over them (``TWIN_LOAD_HOSTS``; a user whose instance stops
answering moves to the next). The verdict then also checks per-key order from the database
(`key_order`: each consumer applied every key's messages in log order). ``--process-faults``
(3 instances) SIGKILLs one, pauses another past its lease and crashes the database under load
(`loadtests.pg_faults`), and holds each takeover to its bound.
Writes locust's HTML report and CSVs, the service's and the twins' logs, the service's status
sampled each second (``status.csv``), the effective plan (``plan.json``) and
``summary.json`` (with the verdict) to ``--out``, prints the verdict table, and exits
non-zero when a threshold is breached (latency, error rate, any 5xx, exceptions in the load
generator), when locust itself failed, when the checker finds a movement lost or applied
twice, or when divergence or a dead letter is left after the drain. Traffic goes to
127.0.0.1 only; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np

from integration_core.checker import check
from loadtests.pg import PgServer
from loadtests.pg_faults import FaultRecord, ProcessFaults
from loadtests.plan import DEFAULT_PLAN, LINKS, LINKS_ENV, PLAN_ENV, Plan, PlanError, load_plan
from loadtests.proxy import ProxyControl, ProxyStats, parse_ready
from loadtests.thresholds import (
    DEFAULT_THRESHOLDS,
    Check,
    ThresholdsError,
    evaluate_run,
    format_table,
    load_thresholds,
)

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
SYSTEMS = ("shop", "wms", "erp", "carrier", "admin")
EXPECT_WORKERS_S = 60  # how long the master waits for its workers to connect
HOSTS_ENV = "TWIN_LOAD_HOSTS"
"""The instances' base URLs, comma-separated: locust's users are spread over them."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0,
               probe: str = "/readyz") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} while starting")
        try:
            if httpx.get(f"{base}{probe}", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"the service was not ready within {timeout_s} s")


def drain(api: httpx.Client, timeout_s: float, others: list[str] | None = None
          ) -> dict[str, Any]:
    """Until the service says it is drained; with `others` (the other instances' bases),
    until every one of them does too (on a shared store an instance is drained when its
    partitions are, every partition has a live owner and it has read the whole log)."""
    deadline = time.monotonic() + timeout_s
    while True:
        doc: dict[str, Any] = api.get("/v1/status").json()
        docs = [doc]
        for b in others or []:
            docs.append(httpx.get(f"{b}/v1/status", headers=api.headers, timeout=30).json())
        if all(d["drained"] for d in docs):
            return doc
        if time.monotonic() > deadline:
            raise SystemExit(f"not drained within {timeout_s} s: "
                             f"{[(d['consumers'], d['outbox'], d.get('instance')) for d in docs]}")
        time.sleep(0.2)


def read_log(path: Path) -> tuple[list[str], list[str]]:
    attempted: list[str] = []
    acked: list[str] = []
    if path.exists():
        for line in path.read_text().splitlines():
            what, _, mid = line.partition(" ")
            (attempted if what == "attempt" else acked).append(mid)
    return attempted, acked


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout_s: float = 30.0) -> None:
    """SIGTERM the ones still running, then SIGKILL what has not exited within the timeout."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


# -- the service under test ----------------------------------------------------------------


@dataclass
class Service:
    """A running service: where it listens, its API keys (fresh per run, never printed), the
    control endpoints of the fault proxies on its links, and the processes and log files to
    clean up."""

    base: str
    keys: dict[str, str]
    links: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    """Every instance's base URL, `base` first (one unless ``--instances``)."""
    instances: list[subprocess.Popen[bytes]] = field(default_factory=list)
    """The service's processes, in `bases` order."""
    pg: PgServer | None = None
    """The throwaway PostgreSQL of ``--store postgres``."""
    schema: str = "interop_twin"

    def alive(self) -> list[str]:
        """The bases of the instances whose process still runs."""
        return [b for b, p in zip(self.bases, self.instances, strict=True) if p.poll() is None]

    def stop(self) -> None:
        for p in self.instances:  # a paused instance cannot take its SIGTERM
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        stop_processes(self.processes)
        for f in self.logs:
            f.close()
        if self.pg is not None:
            self.pg.remove()


def link_seeds(seed: int) -> dict[str, int]:
    """Each link's proxy gets its own child of the plan seed's SeedSequence (principle 7), in
    `LINKS` order, so faulting one link never changes the draws on another."""
    children = np.random.SeedSequence(seed).spawn(len(LINKS))
    return {link: int(c.generate_state(1)[0]) for link, c in zip(LINKS, children, strict=True)}


def start_proxy(link: str, upstream_port: int, seed: int, out: Path, max_s: float
                ) -> tuple[int, str, subprocess.Popen[bytes], IO[bytes]]:
    """A fault proxy for `link` in front of the twins: (its port, its control URL, the
    process, its log ``out/proxy-<link>.log``), once its control endpoint answers. It binds
    free ports itself and says which in its first line."""
    path = out / f"proxy-{link}.log"
    log = path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtests.proxy", "--listen", "127.0.0.1:0",
         "--upstream", f"127.0.0.1:{upstream_port}", "--admin", "127.0.0.1:0",
         "--seed", str(seed), "--max-s", f"{max_s:g}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the {link} fault proxy exited with {proc.returncode} while "
                                 f"starting (see {path})")
            first = path.read_text().partition("\n")
            if first[1]:
                port, control = parse_ready(first[0])
                if control is None:
                    raise SystemExit(f"the {link} fault proxy has no control endpoint")
                ProxyControl(control, timeout_s=2).wait_ready(10)
                return port, control, proc, log
            if time.monotonic() > deadline:
                raise SystemExit(f"the {link} fault proxy was not ready within 30 s")
            time.sleep(0.05)
    except BaseException:
        stop_processes([proc])
        log.close()
        raise


def start_service(workdir: Path, out: Path, links: dict[str, int] | None = None,
                  proxy_max_s: float = 3600.0, store: str = "sqlite", instances: int = 1,
                  lease_ttl_s: float | None = None) -> Service:
    """Start the ERP/WMS twins (`twin twins`) and the live service calling them over HTTP,
    each on a free loopback port (stores in `workdir`, logs in ``out/server.log`` and
    ``out/twins.log``), and return once both are ready. `links` (link -> seed): put a fault
    proxy on the core's way to those partners (it stops by itself after `proxy_max_s`).
    Everything about how the service is started is here; the rest of the run only needs
    `Service.base`, `Service.keys` and `Service.links`.

    ``store="postgres"``: a throwaway PostgreSQL (`loadtests.pg`) holds the state, and with
    `instances` > 1 that many service processes share its schema (``--instance-id i1``, ...;
    logs ``server.log``, ``server-2.log``, ...), each on its own port."""
    keys = {s: secrets.token_urlsafe(24) for s in SYSTEMS}
    partner_key = secrets.token_urlsafe(24)
    twins_port = free_port()
    ports = [free_port() for _ in range(instances)]
    twins, base = f"http://127.0.0.1:{twins_port}", f"http://127.0.0.1:{ports[0]}"
    cli = [sys.executable, "-c", "from sim.cli import app; app()"]
    env = {**os.environ, "TWIN_PARTNER_KEY": partner_key,
           **{f"TWIN_API_KEY_{s.upper()}": k for s, k in keys.items()},
           **{f"TWIN_RATE_{s.upper()}": "1000000" for s in SYSTEMS}}
    if lease_ttl_s is not None:
        env["TWIN_LEASE_TTL_S"] = f"{lease_ttl_s:g}"
    service = Service(base, keys)
    try:
        store_args: list[str] = []
        if store == "postgres":
            service.pg = PgServer()
            service.pg.init()
            service.pg.start()
            store_args = ["--store", service.pg.url, "--store-schema", service.schema]
        service.logs.append((out / "twins.log").open("wb"))
        service.processes.append(subprocess.Popen(
            [*cli, "twins", "--host", "127.0.0.1", "--port", str(twins_port), "--db",
             str(workdir / "twins.db"), "--log-level", "warning"],
            env=env, cwd=REPO, stdout=service.logs[-1], stderr=subprocess.STDOUT))
        wait_ready(twins, service.processes[-1], probe="/healthz")
        partner = {"erp": twins, "wms": twins}
        for link, seed in (links or {}).items():
            proxy_port, control, proc, log = start_proxy(link, twins_port, seed, out,
                                                         proxy_max_s)
            service.processes.append(proc)
            service.logs.append(log)
            service.links[link] = control
            partner[link] = f"http://127.0.0.1:{proxy_port}"
        for k, port in enumerate(ports, 1):
            name = "" if k == 1 else f"-{k}"
            shared = ["--instance-id", f"i{k}"] if instances > 1 else []
            service.logs.append((out / f"server{name}.log").open("wb"))
            proc = subprocess.Popen(
                [*cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--db",
                 str(workdir / f"twin{name}.db"), "--log-level", "warning", "--erp-url",
                 f"{partner['erp']}/erp", "--wms-url", f"{partner['wms']}/wms",
                 *store_args, *shared],
                env=env, cwd=REPO, stdout=service.logs[-1], stderr=subprocess.STDOUT)
            service.processes.append(proc)
            service.instances.append(proc)
            service.bases.append(f"http://127.0.0.1:{port}")
        for b, proc in zip(service.bases, service.instances, strict=True):
            wait_ready(b, proc)
    except BaseException:
        service.stop()
        raise
    return service


class Sampler(threading.Thread):
    """Samples ``/v1/status`` once a second while the load runs: backlog per consumer, open
    outbox calls, dead letters and event-loop lag, written to ``status.csv`` (how the
    service coped, over time: an outage shows as a growing ERP backlog, then its drain)."""

    COLUMNS = ("t_s", "backlog_wms", "backlog_erp", "backlog_orders", "outbox_open_calls",
               "dead_letters", "event_loop_lag_s", "erp_posting_failed_calls")

    def __init__(self, service: Service, path: Path, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.service, self.path, self.every_s = service, path, every_s
        self.stopping = threading.Event()
        self.rows: list[tuple[float, ...]] = []

    def run(self) -> None:
        t0 = time.monotonic()
        bases = self.service.bases or [self.service.base]
        with httpx.Client(timeout=5.0,
                          headers={"X-API-Key": self.service.keys["admin"]}) as api:
            while not self.stopping.wait(self.every_s):
                rows = []
                for b in bases:  # several instances: their sums (a dead one is a gap)
                    try:
                        d = api.get(f"{b}/v1/status").json()
                    except (httpx.HTTPError, ValueError):
                        continue  # a sample missed under load is a gap, not a failure
                    c = d["consumers"]
                    rows.append((
                        c["wms"]["backlog"], c["erp"]["backlog"], c["orders"]["backlog"],
                        d["outbox"]["open_calls"],
                        sum(v["dead_letters"] for v in c.values()), d["event_loop_lag_s"],
                        d["erp_posting"]["failed_calls"]))
                if rows:
                    summed = [sum(col) for col in zip(*rows, strict=True)]
                    # Dead letters are the shared store's (each instance sees them all);
                    # the loop lag is each instance's: the worst, not sums.
                    summed[4] = max(r[4] for r in rows)
                    summed[5] = max(r[5] for r in rows)
                    self.rows.append((round(time.monotonic() - t0, 2), *summed))

    def stop(self) -> dict[str, float]:
        self.stopping.set()
        self.join(timeout=10)
        with self.path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.COLUMNS)
            w.writerows(self.rows)
        if not self.rows:
            return {}
        return {"max_erp_backlog": max(r[2] for r in self.rows),
                "max_event_loop_lag_s": max(r[6] for r in self.rows)}


# -- the load generator --------------------------------------------------------------------


def start_locust(plan_path: Path, service: Service, load_log: Path, out: Path,
                 workers: int) -> list[subprocess.Popen[bytes]]:
    """Locust headless against the service: one process, or (``workers`` > 0) a master and
    that many workers on loopback. The master (or the single process) is first in the list;
    it writes the CSVs and the HTML report, and sends the plan's faults."""
    env = {**os.environ, PLAN_ENV: str(plan_path), "TWIN_LOAD_LOG": str(load_log),
           "TWIN_LOAD_KEY_WMS": service.keys["wms"], "TWIN_LOAD_KEY_SHOP": service.keys["shop"],
           "TWIN_LOAD_KEY_ADMIN": service.keys["admin"], LINKS_ENV: json.dumps(service.links),
           HOSTS_ENV: ",".join(service.bases or [service.base])}
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    report = ["--headless", "--host", service.base, "--stop-timeout", "10",
              "--csv", str(out / "locust"), "--html", str(out / "locust.html"), "--only-summary",
              "--exit-code-on-error", "0"]  # failed requests: the thresholds decide
    if workers <= 0:
        return [subprocess.Popen([*locust, *report], env=env, cwd=REPO)]
    port = free_port()
    procs = [subprocess.Popen(
        [*locust, *report, "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--expect-workers", str(workers),
         "--expect-workers-max-wait", str(EXPECT_WORKERS_S)], env=env, cwd=REPO)]
    for i in range(workers):
        with (out / f"locust-worker-{i}.log").open("wb") as log:  # the child keeps its copy
            procs.append(subprocess.Popen(
                [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    return procs


def link_checks(plan: Plan, stats: dict[str, ProxyStats]) -> list[Check]:
    """One check per (link, toxic kind) of the plan: it fired at least once (a fault that
    never happened proves nothing)."""
    checks = []
    for link, kind in dict.fromkeys((f.link, f.kind) for f in plan.link_faults):
        toxic = stats[link].toxics.get(kind) if link in stats else None
        fired = toxic.fired if toxic else 0
        said = f"{fired} (taken {toxic.taken} of {toxic.drawn} draws)" if toxic else "0"
        checks.append(Check(f"link {link}: {kind} fired", ">= 1", said, fired >= 1))
    return checks


def key_order(pg: PgServer, schema: str) -> dict[str, Any]:
    """Per-key order, from the database: for each consumer, the messages of one ordering key
    in the order they were applied (the inbox records' sequence, written with the effect or
    the ack) must be in log order. Counts, per consumer, the messages applied and those that
    came after a later message of their key."""
    import psycopg

    s = '"' + schema.replace('"', '""') + '"'
    sql = f"""
        SELECT consumer, count(*), count(*) FILTER (WHERE prev > position) FROM (
            SELECT i.consumer, m.position, lag(m.position) OVER (
                PARTITION BY i.consumer, m.envelope::json->>'key' ORDER BY i.seq) AS prev
            FROM {s}.inbox i JOIN {s}.messages m ON m.message_id = i.message_id
        ) applied GROUP BY consumer ORDER BY consumer"""
    with psycopg.connect(pg.dsn) as conn:
        rows = conn.execute(sql).fetchall()
    return {c: {"applied": int(n), "out_of_order": int(bad)} for c, n, bad in rows}


def order_checks(order: dict[str, Any]) -> list[Check]:
    if not order:
        return []
    bad = sum(v["out_of_order"] for v in order.values())
    said = ", ".join(f"{c} {v['out_of_order']} of {v['applied']}" for c, v in order.items())
    return [Check("per-key order (applied after a later message of the key)", "0", said,
                  bad == 0 and "wms" in order and "erp" in order)]


def fault_checks(records: list[FaultRecord], ttl: float, expected: bool) -> list[Check]:
    """Each process fault happened and was taken over within the stated bound: the lease's
    time to live, a heartbeat interval (a third of it), and 5 s for recovering the
    partitions' unfinished messages on a loaded machine."""
    out = []
    bound = ttl + ttl / 3 + 5.0
    for r in records:
        if r.error is not None:
            out.append(Check(r.what, "no error", r.error, False))
            continue
        took = "never" if r.takeover_s is None else f"{r.takeover_s:.2f} s"
        if r.what.startswith("database"):
            out.append(Check(f"{r.what}: every partition owned again", f"<= {bound + 30:g} s",
                             took, r.takeover_s is not None and r.takeover_s <= bound + 30))
            continue
        out.append(Check(f"{r.what}: takeover", f"<= {bound:g} s", took,
                         r.takeover_s is not None and r.takeover_s <= bound))
        if r.what.startswith("SIGSTOP"):
            back = "never" if r.rejoin_s is None else f"{r.rejoin_s:.2f} s"
            out.append(Check("instance 3 rejoined with its fair share", "yes", back,
                             r.rejoin_s is not None))
    if expected and len([r for r in records if r.error is None]) < 3:
        out.append(Check("process faults carried out", "3", f"{len(records)}", False))
    return out


def effective_plan(args: argparse.Namespace) -> Plan:
    plan = load_plan(args.plan)
    outage = ((args.outage_at, args.outage_s)
              if args.outage_at is not None or args.outage_s is not None else None)
    return plan.with_overrides(duration_s=args.duration, rate_per_s=args.rate,
                               users=args.users, seed=args.seed, outage=outage)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", type=Path, default=DEFAULT_PLAN,
                    help="load plan: stages, users, seed, faults (TOML)")
    ap.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS,
                    help="pass/fail limits (TOML)")
    ap.add_argument("--workers", type=int, default=0,
                    help="locust worker processes (0: a single locust process)")
    ap.add_argument("--duration", type=float, help="seconds of load at one flat rate "
                    "(replaces the plan's stages; rate: --rate or the plan's peak)")
    ap.add_argument("--rate", type=float, help="requests per second offered, flat "
                    "(replaces the plan's stages; length: --duration or the plan's)")
    ap.add_argument("--users", type=int, help="locust users sharing the rate")
    ap.add_argument("--seed", type=int, help="seed of the users' arrival schedules")
    ap.add_argument("--outage-at", type=float, help="one ERP outage from here (s) "
                    "(replaces the plan's faults)")
    ap.add_argument("--outage-s", type=float, help="its length (s); 0: no fault at all")
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                    help="the service's durable state: its SQLite file, or a throwaway "
                    "PostgreSQL started for the run")
    ap.add_argument("--instances", type=int, default=1,
                    help="service processes sharing the PostgreSQL schema (--store postgres); "
                    "locust's users are spread over them")
    ap.add_argument("--lease-ttl-s", type=float, default=None,
                    help="the instances' lease time to live (default: the service's, 5 s)")
    ap.add_argument("--process-faults", action="store_true",
                    help="with 3 instances: SIGKILL one, SIGSTOP another past its lease, "
                    "crash and restart the database, under load (loadtests/pg_faults.py); "
                    "the takeover times go into summary.json")
    ap.add_argument("--out", type=Path, default=Path("results/loadtest"))
    ap.add_argument("--twin", action="store_true",
                    help="after the run, calibrate the twin from it, run the twin on the same "
                    "plan with 3 seeds and write prediction.md (loadtests/predict.py)")
    args = ap.parse_args(argv)
    if args.twin:  # the partner twins record their calls for the calibration
        os.environ["TWIN_PARTNER_CALLS_CSV"] = str((args.out / "partner_calls.csv").resolve())
    if args.instances < 1 or (args.instances > 1 and args.store != "postgres"):
        print("--instances N > 1 needs --store postgres (several instances share its schema)",
              file=sys.stderr)
        return 2
    if args.process_faults and (args.store != "postgres" or args.instances < 3):
        print("--process-faults needs --store postgres --instances 3 (or more)", file=sys.stderr)
        return 2
    try:
        plan = effective_plan(args)
        thresholds = load_thresholds(args.thresholds)
    except (PlanError, ThresholdsError) as e:
        print(e, file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    plan_path = (out / "plan.json").resolve()
    plan_path.write_text(plan.model_dump_json(indent=2) + "\n")
    links = plan.links
    print(f"plan: {plan.duration_s:g} s, {plan.mean_rate_per_s:g} requests/s on average "
          f"(peak {plan.peak_rate_per_s:g}), {plan.users} users, {len(plan.faults)} fault(s)"
          f"{' (fault proxies on links ' + ', '.join(links) + ')' if links else ''}; "
          f"locust: {'1 process' if args.workers <= 0 else f'master + {args.workers} workers'}; "
          f"service: {args.instances} instance(s) on {args.store}"
          f"{', process faults' if args.process_faults else ''}", flush=True)
    faults: ProcessFaults | None = None
    fault_records: list[FaultRecord] = []
    order: dict[str, Any] = {}
    locust: list[subprocess.Popen[bytes]] = []
    seeds = link_seeds(plan.seed)
    link_stats: dict[str, ProxyStats] = {}
    started = time.monotonic()
    load_before = os.getloadavg()  # the host is shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="twin-load-") as tmp:
        load_log = Path(tmp) / "movements.log"
        service = start_service(Path(tmp), out, {link: seeds[link] for link in links},
                                proxy_max_s=plan.duration_s + EXPECT_WORKERS_S + 600,
                                store=args.store, instances=args.instances,
                                lease_ttl_s=args.lease_ttl_s)
        try:
            sampler = Sampler(service, out / "status.csv")
            sampler.start()
            locust = start_locust(plan_path, service, load_log, out, args.workers)
            if args.process_faults:
                assert service.pg is not None
                faults = ProcessFaults(service.bases, service.instances, service.pg,
                                       service.keys["admin"], plan.duration_s,
                                       args.lease_ttl_s or 5.0)
                faults.start()
            with httpx.Client(base_url=service.base, timeout=30.0,
                              headers={"X-API-Key": service.keys["admin"]}) as api:
                locust_rc = locust[0].wait(timeout=plan.duration_s + EXPECT_WORKERS_S + 120)
                for worker in locust[1:]:  # they quit with their master
                    try:
                        worker.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        stop_processes([worker])
                over_time = sampler.stop()
                if faults is not None:
                    fault_records = faults.stop()
                load_ended, load_after = time.monotonic(), os.getloadavg()
                for control in service.links.values():  # whatever locust left on: off
                    ProxyControl(control).clear()
                alive = service.alive()
                if service.base not in alive:
                    raise SystemExit("the first instance died; it is the one the run asks")
                status = drain(api, timeout_s=120.0, others=alive[1:])
                drain_s = time.monotonic() - load_ended
                attempted, acked = read_log(load_log)
                counts: dict[str, int] = {}
                received: dict[str, int] = {}  # deliveries the ERP got, redeliveries included
                for i in range(0, len(attempted), 10_000):
                    r = api.post("/v1/erp/applied-counts",
                                 json={"movement_ids": attempted[i:i + 10_000]})
                    r.raise_for_status()
                    counts.update(r.json()["counts"])
                    received.update(r.json()["received"])
                rec = api.post("/v1/reconcile").json()
                dead = api.get("/v1/dead-letters").json()["total"]
                link_stats = {link: ProxyControl(control).stats()
                              for link, control in service.links.items()}
                if service.pg is not None and args.instances > 1:
                    order = key_order(service.pg, service.schema)
        finally:
            stop_processes(locust)
            service.stop()
    applied = [mid for mid, n in counts.items() for _ in range(n)]
    result = check(attempted=attempted, acknowledged=acked, applied=applied)
    c = result.counts
    checks = [
        Check("load generator exit code", "0", f"{locust_rc}", locust_rc == 0),
        Check("checker: lost / duplicated / unexpected", "0 / 0 / 0",
              f"{c['lost']} / {c['duplicated']} / {c['unexpected']} (of {len(acked)} acked)",
              result.ok),
        Check("divergence after the drain (units)", "0", f"{rec['divergence_units']}",
              rec["divergence_units"] == 0),
        Check("unexplained units", "0", f"{rec['unexplained_units']}",
              rec["unexplained_units"] == 0),
        Check("dead letters", "0", f"{dead}", dead == 0),
        *link_checks(plan, link_stats),
        *order_checks(order),
        *fault_checks(fault_records, args.lease_ttl_s or 5.0, args.process_faults),
        *evaluate_run(thresholds, out / "locust"),
    ]
    if not result.ok:  # every id, for whoever looks into it
        (out / "checker.json").write_text(json.dumps({
            "lost": sorted(result.lost), "duplicated": dict(sorted(result.duplicated.items())),
            "unexpected": sorted(result.unexpected)}, indent=2) + "\n")
    ok = all(ch.ok for ch in checks)
    summary = {
        "ok": ok, "locust_exit_code": locust_rc, "duration_s": plan.duration_s,
        "offered_rate_per_s": plan.mean_rate_per_s, "peak_rate_per_s": plan.peak_rate_per_s,
        "workers": args.workers, "plan": {"source": str(args.plan), **plan.model_dump()},
        "checker": result.summary(),
        "erp_deliveries": {  # redelivered after a lost answer: the ERP booked them once
            "received": sum(received.values()), "booked": sum(counts.values()),
            "received_more_than_once": sum(1 for n in received.values() if n > 1)},
        "reconcile": {k: rec[k] for k in ("divergence_units", "in_flight_units",
                                          "unexplained_units", "skus_out_of_sync")},
        "dead_letters": dead, "bus_counters": status["counters"], "service": over_time,
        # occurred -> booked in the ERP, the twin's inventory_sync (the first instance's)
        "inventory_sync_lag_s": status.get("inventory_sync_lag_s"),
        "store": args.store, "instances": args.instances, "key_order": order,
        "process_faults": [r.as_dict() for r in fault_records],
        "drain_s": round(drain_s, 2), "wall_s": round(time.monotonic() - started, 2),
        "host": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after_load": [round(x, 2) for x in load_after]},
        "links": {link: st.model_dump(mode="json") for link, st in link_stats.items()},
        "thresholds": str(args.thresholds),
        "verdict": [ch.as_dict() for ch in checks],
        "reports": {"html": str(out / "locust.html"), "csv": str(out / "locust_stats.csv")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "verdict"}, indent=2))
    print(f"\n{format_table(checks)}\n\n{'PASSED' if ok else 'FAILED'}")
    if not ok:
        replay = ["python", "-m", "loadtests.run", "--plan", str(plan_path), "--thresholds",
                  str(args.thresholds), "--workers", str(args.workers), "--out", str(out),
                  "--store", args.store, "--instances", str(args.instances),
                  *(["--lease-ttl-s", f"{args.lease_ttl_s:g}"] if args.lease_ttl_s else []),
                  *(["--process-faults"] if args.process_faults else [])]
        print(f"replay the same offered load: {shlex.join(replay)}")
    if args.twin:
        from loadtests.predict import predict_run
        print(predict_run(out, [1, 2, 3]).read_text())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
