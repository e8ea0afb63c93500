"""Simulated partner systems: the API endpoint model and worker pools; ERP and WMS twins."""

from sim.systems.endpoint import Endpoint, Reply, ServiceRecords, Status
from sim.systems.pool import WorkerPool

__all__ = [
    "Endpoint",
    "Reply",
    "ServiceRecords",
    "Status",
    "WorkerPool",
]
