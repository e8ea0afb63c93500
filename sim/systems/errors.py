"""What a simulated partner API answers when a call does not succeed.

All are `TransientError`s, so the core's retry policies treat them as worth retrying. Each
names the failure reason it is counted under in `ApiServer.failed`.
"""

from __future__ import annotations

from enum import StrEnum

from integration_core.errors import TransientError


class FailureReason(StrEnum):
    """Why a call failed, as seen by its caller; one count per failed call."""

    UNAVAILABLE = "unavailable"  # down (outage or maintenance) at arrival or at its turn
    RATE_LIMITED = "rate_limited"  # over the per-minute limit at arrival
    TIMEOUT = "timeout"  # the caller gave up; the server may still apply the call
    SERVER_ERROR = "server_error"  # random failure after service; the op was not applied
    REJECTED = "rejected"  # the op itself raised (e.g. a validation error of the system)
    INTERRUPTED = "interrupted"  # the caller's SimPy process was interrupted while waiting


class ApiError(TransientError):
    """A call to the simulated API `system` failed at simulated time `at`."""

    reason: FailureReason

    def __init__(self, system: str, at: float, detail: str = "") -> None:
        self.system = system
        self.at = at
        msg = f"{system}: {self.reason.value} at t={at:.3f}s"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class Unavailable(ApiError):
    """The system is down (outage or maintenance window)."""

    reason = FailureReason.UNAVAILABLE
    status_hint = 503


class RateLimited(ApiError):
    """Too many calls in the last minute; `retry_after_s` says when one more would pass."""

    reason = FailureReason.RATE_LIMITED
    status_hint = 429

    def __init__(self, system: str, at: float, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(system, at, f"retry after {retry_after_s:.3f}s")


class CallTimeout(ApiError):
    """The caller stopped waiting. The outcome is ambiguous: the call may still be applied."""

    reason = FailureReason.TIMEOUT
    status_hint = 504


class ServerError(ApiError):
    """The system failed the call after serving it; the operation was not applied."""

    reason = FailureReason.SERVER_ERROR
    status_hint = 500
