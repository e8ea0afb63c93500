"""Run functions the experiment tests inject instead of the twin (instant, deterministic and
module-level, so worker processes, spawned or Dask's, can import them by reference), and a tiny
scenario for the real runs."""

from __future__ import annotations

import os

import numpy as np

from sim.executors import RunOutput
from sim.scenario import Scenario
from sim.stats import replication_seeds

TINY = """
name = "tiny"
seed = 7
duration_h = 1
drain_h = 1
sample_interval_s = 120
[catalog]
skus = 50
[[warehouses]]
id = "WH1"
movements_per_hour = 300
[shop]
orders_per_hour = 0
[faults]
outages = [{ system = "erp", start_h = 0.25, duration_h = 0.25 }]
"""
"""A one-hour, 50-SKU scenario file: a real run takes about 40 ms."""

CRASH_BASE_SEED = 7
CRASH_SEED = replication_seeds(CRASH_BASE_SEED, 3)[1]
"""Replication 1 of a scenario with seed 7: the run the failing fakes break."""


def lag_run(scenario: Scenario) -> RunOutput:
    """p95 lag = movements per hour / 100 (+ noise with sd 0.5 from the seed); nothing is
    given up below 6,000 movements per hour, 10 per 1,000 above."""
    rate = scenario.warehouses[0].movements_per_hour
    noise = float(np.random.default_rng(scenario.seed).normal(0, 0.5))
    return RunOutput(kpis={
        "inventory_sync_p95_s": rate / 100 + noise,
        "updates_given_up": 0.0 if rate <= 6000 else rate / 100,
        "lost": 0.0,
    })


def raising_run(scenario: Scenario) -> RunOutput:
    """lag_run, except that the marked scenario's replication 1 raises."""
    if scenario.description == "crash" and scenario.seed == CRASH_SEED:
        raise RuntimeError("injected failure")
    return lag_run(scenario)


def dying_run(scenario: Scenario) -> RunOutput:
    """lag_run, except that the marked run kills its worker process outright."""
    if scenario.description == "crash" and scenario.seed == CRASH_SEED:
        os._exit(3)
    return lag_run(scenario)
