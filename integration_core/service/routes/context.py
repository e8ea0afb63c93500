"""What a route needs: the engine (once the lifespan opened it), the settings, the scope
checks, the metrics registry.

No ``from __future__ import annotations`` in the route modules: FastAPI reads the endpoints'
annotations at run time.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from integration_core.service.auth import Gatekeeper, Principal
from integration_core.service.config import Settings
from integration_core.service.intake import Intake
from integration_core.service.limits import JsonLimits
from integration_core.service.live import LiveEngine
from integration_core.service.metrics import Registry
from integration_core.service.problems import Problem
from integration_core.service.runner import Runner

RETRY_AFTER_S = 1
"""Seconds a client is asked to wait after a 503 (the store or a partner failing)."""
_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


@dataclass
class Holder:
    """Set by the app's lifespan while it runs; all None before and after."""

    engine: LiveEngine | None = None
    runner: Runner | None = None
    intake: Intake | None = None
    ready: bool = False


@dataclass(frozen=True)
class Context:
    settings: Settings
    held: Holder
    gate: Gatekeeper
    registry: Registry
    json_limits: JsonLimits

    def engine(self) -> LiveEngine:
        """The engine, or a 503 problem while the service is starting or stopping."""
        if self.held.engine is None:
            raise Problem(503, "unavailable", "Not ready", "the service is starting or "
                          "stopping")
        return self.held.engine

    def runner(self) -> Runner:
        self.engine()
        assert self.held.runner is not None  # set together with the engine
        return self.held.runner

    def intake(self) -> Intake:
        self.engine()
        assert self.held.intake is not None  # set together with the engine
        return self.held.intake

    def need(self, scope: str) -> Callable[..., Any]:
        """A dependency admitting a key (Bearer or X-API-Key) that holds `scope`."""
        gate = self.gate

        async def admit(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
            key: Annotated[str | None, Depends(_API_KEY)],
        ) -> Principal:
            secret = key or (credentials.credentials if credentials is not None else None)
            return gate.admit(secret, scope)

        return admit
