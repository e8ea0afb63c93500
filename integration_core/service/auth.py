"""API keys per calling system, scopes, and per-key rate limits (token buckets).

A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key or an unknown
one: 401. A known key without the route's scope: 403. Over the key's rate: 429 with
Retry-After. Keys are compared in constant time and never logged or echoed: problems name the
calling *system*, not its key.
"""

from __future__ import annotations

import hmac
import math
import secrets
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


# -- browser sessions ---------------------------------------------------------------------------

SESSION_COOKIE = "twin_session"
SESSION_TTL_S = 8 * 3600.0
MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's login: who it is, and the token its state-changing requests must echo in
    ``X-CSRF-Token`` (a cross-site page can neither read it nor set that header)."""

    principal: Principal
    csrf: str
    expires_at: float


@dataclass
class Sessions:
    """Server-side sessions for the dashboard. The browser holds only a random id in an
    HttpOnly cookie: the API key is exchanged once at login and never stored client-side, so
    it cannot leak through a URL, a log line or page script. In memory: a restart logs
    everyone out, which is harmless (log in again)."""

    ttl_s: float = SESSION_TTL_S
    limit: int = MAX_SESSIONS
    clock: Callable[[], float] = time.monotonic
    _by_id: dict[str, Session] = field(default_factory=dict)

    def open(self, principal: Principal) -> tuple[str, Session]:
        now = self.clock()
        self._expire(now)
        while len(self._by_id) >= self.limit:  # bounded: the oldest login goes first
            del self._by_id[next(iter(self._by_id))]
        sid = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(24), now + self.ttl_s)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is not None and session.expires_at <= self.clock():
            del self._by_id[sid]
            return None
        return session

    def close(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def _expire(self, now: float) -> None:
        for sid in [s for s, v in self._by_id.items() if v.expires_at <= now]:
            del self._by_id[sid]
