"""The live service: the integration core in real time behind an HTTP API (FastAPI).

The only package of `integration_core` that does I/O (asyncio, HTTP, files). It drives the
core's `Engine` (integration_core.engine) in real time on SQLite: `create_app(settings)` builds
the app; `twin serve` runs it under uvicorn.
"""

from integration_core.service.app import create_app
from integration_core.service.config import SCOPES, SYSTEMS, ApiKey, Settings
from integration_core.service.live import LiveEngine
from integration_core.service.runner import Runner

__all__ = [
    "ApiKey",
    "LiveEngine",
    "Runner",
    "SCOPES",
    "SYSTEMS",
    "Settings",
    "create_app",
]
