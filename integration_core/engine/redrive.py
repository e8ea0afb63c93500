"""Operations as a policy: who redrives dead letters, and when.

A dead letter whose cause was transient (the partner was down longer than the retry policy
lasts) may succeed as it is once the partner is back; one the partner refused (bad payload,
unknown reference) needs a fix first and is never redriven by a policy. The idempotency key
makes a redrive safe: a letter the partner did apply before its answer was lost is booked
once. The driver (the twin's clock, the live service's runner) decides *when* from the policy;
*what* is redriven is `redrivable`, here, the same for both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from integration_core.bus import INGRESS, DeadLetter


class When(StrEnum):
    NEVER = "never"
    """Nobody redrives: dead letters stay until someone looks (they count as damage)."""
    EVERY = "every"
    """The operations team redrives every `every_s` seconds."""
    AFTER_RECOVERY = "after_recovery"
    """Redriven `after_s` seconds after a partner's outage ends (an alert that clears)."""


@dataclass(frozen=True, slots=True)
class Redrive:
    when: When = When.NEVER
    every_s: float = 1800.0
    after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.every_s <= 0 or self.after_s < 0:
            raise ValueError("a redrive policy needs every_s > 0 and after_s >= 0")

    def describe(self) -> str:
        """The policy in plain words, for reports."""
        if self.when is When.EVERY:
            return f"transient dead letters are redriven every {self.every_s / 60:g} min"
        if self.when is When.AFTER_RECOVERY:
            return (f"transient dead letters are redriven {self.after_s / 60:g} min after a "
                    "partner's outage ends")
        return "nobody redrives dead letters"


REFUSED_TO_SENDER = frozenset({"EdiRejected"})
"""Causes of inbound documents the core refused back to their sender (a negative 997 or TA1):
the correction is the partner's, and it arrives as a new document."""


def awaiting_us(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """The letters someone on our side must act on: all but the documents refused back to
    their sender. Those stay for the audit; if the partner never corrects one, what it
    carried shows as missing stock, not as a letter we forgot."""
    return [d for d in letters if d.cause_type not in REFUSED_TO_SENDER]


def redrivable(letters: Iterable[DeadLetter]) -> list[DeadLetter]:
    """The letters a policy may requeue as they are: transient causes of a consumer (a letter
    that never parsed, at ingress, has no consumer to retry)."""
    return [d for d in letters if d.consumer != INGRESS and d.transient]
