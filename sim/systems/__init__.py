"""Simulated partner systems: a reusable API server model; ERP, WMS, carrier and shop twins."""

from sim.systems.api import ApiServer, ServiceRecords
from sim.systems.errors import (
    ApiError,
    CallTimeout,
    FailureReason,
    RateLimited,
    ServerError,
    Unavailable,
)

__all__ = [
    "ApiError",
    "ApiServer",
    "CallTimeout",
    "FailureReason",
    "RateLimited",
    "ServerError",
    "ServiceRecords",
    "Unavailable",
]
