"""Knobs of the saga: how long each wait may last, how often to resend, which carrier services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from integration_core.orchestrator.states import Status

_DAY = 86_400.0

#: Seconds an order may wait in each status before its timeout fires.
DEFAULT_TIMEOUTS: Mapping[Status, float] = MappingProxyType(
    {
        Status.VALIDATING: 60.0,
        Status.CREDIT_CHECK: 300.0,
        Status.ALLOCATING: 60.0,
        Status.BACKORDERED: _DAY,  # re-asks ATP once a day
        Status.RELEASING: 120.0,
        Status.IN_FULFILMENT: 2 * _DAY,
        Status.LABELLING: 120.0,
        Status.SHIPPING: _DAY,
        Status.SHIPPED: 14 * _DAY,  # invoices and deliveries of every shipment
        Status.RETURN_PENDING: 3_600.0,
        Status.CANCELLING: 600.0,
    }
)


@dataclass(frozen=True)
class OrchestratorConfig:
    timeouts: Mapping[Status, float] = field(default_factory=lambda: DEFAULT_TIMEOUTS)
    """Overrides of `DEFAULT_TIMEOUTS`; statuses not given keep their default."""
    max_attempts: int = 3
    """Requests sent in one wait (the first one included) before an exception is opened."""
    carrier_services: tuple[str, ...] = ("standard", "express", "freight")
    """Carrier services to book, in order of preference; a failure moves to the next one."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        services = self.carrier_services
        if not services or len(set(services)) != len(services):
            raise ValueError(f"carrier_services must be distinct and non-empty, got {services}")
        bad = {s.value: t for s, t in self.timeouts.items() if not t > 0}
        if bad:
            raise ValueError(f"timeouts must be positive, got {bad}")
        # Merge over the defaults and freeze, so the config stays a value.
        merged = MappingProxyType({**DEFAULT_TIMEOUTS, **self.timeouts})
        object.__setattr__(self, "timeouts", merged)

    def timeout(self, status: Status) -> float:
        try:
            return self.timeouts[status]
        except KeyError:
            raise ValueError(f"no timeout configured for status {status.value!r}") from None


DEFAULT_CONFIG = OrchestratorConfig()
