"""API keys per calling system, scopes, and per-key rate limits (token buckets).

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key or an unknown
one: 401. A known key without the route's scope: 403. Over the key's rate: 429 with
Retry-After. Keys are compared in constant time and never logged or echoed: problems name the
calling *system*, not its key.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from integration_core.service.config import ApiKey
from integration_core.service.problems import forbidden, rate_limited, unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the system behind the key, and what it may do."""

    system: str
    scopes: frozenset[str]


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class Gatekeeper:
    """Authenticates, authorizes and rate-limits; `clock` is monotonic seconds."""

    keys: tuple[ApiKey, ...]
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    """(status code as text) -> count, for metrics."""
    limited: dict[str, int] = field(default_factory=dict)
    """system -> requests refused with 429."""

    def __post_init__(self) -> None:
        now = self.clock()
        self._secrets = [(k.key.get_secret_value().encode(), k) for k in self.keys]
        for k in self.keys:
            self.buckets[k.system] = TokenBucket(k.rate_per_s, float(k.burst), float(k.burst), now)

    def identify(self, secret: str | None) -> ApiKey | None:
        if not secret:
            return None
        given = secret.encode()
        found = None
        for known, key in self._secrets:  # no early exit: every check takes the same time
            if hmac.compare_digest(given, known):
                found = key
        return found

    def admit(self, secret: str | None, scope: str) -> Principal:
        """The principal behind `secret` if it holds `scope` and is within its rate; else
        raises the matching Problem (401, 403, 429)."""
        key = self.identify(secret)
        if key is None:
            self._count("401")
            raise unauthorized("send a valid API key as 'Authorization: Bearer <key>' or "
                               "'X-API-Key: <key>'" if secret else "no API key was sent")
        if scope not in key.scopes:
            self._count("403")
            raise forbidden(f"the {key.system} key lacks the scope {scope!r}")
        wait = self.buckets[key.system].take(self.clock())
        if wait > 0:
            self._count("429")
            self.limited[key.system] = self.limited.get(key.system, 0) + 1
            raise rate_limited(max(1, math.ceil(wait)), key.system)
        return Principal(key.system, key.scopes)

    def _count(self, status: str) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1


def secret_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def scopes_of(keys: Iterable[ApiKey]) -> dict[str, list[str]]:
    """System -> sorted scopes, for documentation (never the keys)."""
    return {k.system: sorted(k.scopes) for k in keys}
