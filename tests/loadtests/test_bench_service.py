"""`loadtests.bench.service`: its command line (``--instances`` needs PostgreSQL), how the
instances' ``/v1/status`` documents add up, and a short real run of two instances on a
throwaway PostgreSQL (about 40 s; no figure asserted, only that both instances took load and
the integrity check holds), and that a failed start leaves no process behind."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtests.bench import service
from loadtests.bench.service import backlog, parse, run, table
from loadtests.pg import PgServer


def test_instances_need_postgres_and_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, said in ((["--instances", "2"], "--instances 2 needs --store postgres"),
                       (["--instances", "0", "--store", "postgres"], "--instances: 1 or more"),
                       (["--instances", "3", "--store", "sqlite"], "needs --store postgres")):
        with pytest.raises(SystemExit) as e:
            parse(argv)
        assert e.value.code == 2 and said in capsys.readouterr().err
    _, cfg, modes = parse(["--instances", "2", "--store", "postgres", "--modes", "batch"])
    assert (cfg.instances, cfg.store, modes) == (2, "postgres", ["batch"])
    assert parse([])[1].instances == 1


def _doc(wms: int, erp: int, shared: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"consumers": {"wms": {"backlog": wms}, "erp": {"backlog": erp}}}
    if shared is not None:
        doc["instance"] = shared
    return doc


def test_the_backlog_adds_up_every_instance() -> None:
    assert backlog([_doc(3, 4)]) == {"wms": 3, "erp": 4}
    # Two instances: their own partitions' backlogs add up; what a tail has not read yet
    # counts, and so do partitions nobody owns (every instance reports the same count).
    a = _doc(3, 0, {"tail_behind": 0, "unowned_partitions": 2})
    b = _doc(1, 5, {"tail_behind": 7, "unowned_partitions": 2})
    assert backlog([a, b]) == {"wms": 4, "erp": 5, "unread": 7, "unowned": 2}
    idle = _doc(0, 0, {"tail_behind": -1, "unowned_partitions": 0})
    assert sum(backlog([idle, idle]).values()) == 0


def test_two_instances_on_postgres_share_the_load(pg_server: PgServer) -> None:
    _, cfg, modes = parse(["--quick", "--store", "postgres", "--instances", "2",
                           "--modes", "batch"])
    log = io.StringIO()
    r = run(cfg, modes, 1, pg_server, log=log)
    assert r["instances"] == 2 and r["parameters"]["instances"] == 2
    assert "partitions at start: {'partitions': 64, 'owned': {'i1': 32, 'i2': 32}}" in (
        log.getvalue())
    check = r["integrity"][0]
    assert check["ok"], check
    assert check["movements_acked_to_generator"] > 0
    by_instance = check["bus_published_by_instance"]
    assert len(by_instance) == 2 and min(by_instance) > 0, by_instance
    steps = r["repeats"][0]["batch"]["service"]["steps"]
    assert steps and all("unowned" in s["delivery"]["backlog_by_consumer"] for s in steps)
    assert r["batch"]["target_movements_per_s"] is None  # issue 16's target is for one
    assert "2 service instance(s)" in table(r)


def test_a_failed_start_stops_what_it_started(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The twins started, but never answered in time: they are stopped, not left running."""
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        p = popen(*args, **kwargs)
        started.append(p)
        return p

    def never_ready(*_: object, **__: object) -> None:
        raise RuntimeError("not ready within 60 s")

    monkeypatch.setattr(subprocess, "Popen", recording)
    monkeypatch.setattr(service, "wait_http", never_ready)
    with (tmp_path / "log").open("wb") as log, pytest.raises(RuntimeError, match="not ready"):
        service.start_service(service.free_port(), tmp_path / "twin.db", {"wms": "k"}, log)
    assert len(started) == 1 and started[0].poll() is not None  # the twins, stopped
