"""A partner's fault switch: decides, per call, whether the call goes through.

Pure: it draws from its own seeded generator and returns a verdict; the app does the waiting
and the refusing. ``flaky`` fails half of its failures *after* the work is done (the answer
is lost on the way back), which is what makes the partner's idempotency matter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from integration_core.service.partners import Fault, FaultState, PartnerName


class Verdict(Enum):
    OK = "ok"
    REFUSE = "refuse"
    """Fail before doing anything."""
    LOSE_ANSWER = "lose_answer"
    """Do the work, then fail: the caller cannot tell it happened."""


@dataclass
class FaultSwitch:
    system: PartnerName
    seed: int = 0

    def __post_init__(self) -> None:
        self.fault = Fault(mode="up")
        self.rng = random.Random(f"{self.system}:{self.seed}")
        self.calls = self.refused = self.lost_answers = 0

    def set(self, fault: Fault) -> None:
        self.fault = fault

    def delay_s(self) -> float:
        return self.fault.latency_s if self.fault.mode == "slow" else 0.0

    def decide(self) -> Verdict:
        self.calls += 1
        mode = self.fault.mode
        if mode == "down":
            self.refused += 1
            return Verdict.REFUSE
        if mode == "flaky" and self.rng.random() < self.fault.failure_rate:
            if self.rng.random() < 0.5:
                self.refused += 1
                return Verdict.REFUSE
            self.lost_answers += 1
            return Verdict.LOSE_ANSWER
        return Verdict.OK

    def state(self) -> FaultState:
        return FaultState(system=self.system, calls=self.calls, refused=self.refused,
                          lost_answers=self.lost_answers, **self.fault.model_dump())
