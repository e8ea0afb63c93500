"""History checker, after Jepsen's queue checker.

Given what producers attempted, what was acknowledged to them and what consumers applied
(with repeats), classify every id:

- lost: acknowledged, never applied (the real damage);
- duplicated: applied more than once;
- unexpected: applied, never attempted;
- recovered: applied although never acknowledged (the producer saw an error or a timeout).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckResult:
    attempted: int
    acknowledged: int
    applied: int
    """Distinct ids applied at least once."""
    lost: frozenset[str]
    duplicated: dict[str, int] = field(hash=False)
    """id -> number of times applied (> 1)."""
    unexpected: frozenset[str]
    recovered: frozenset[str]

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def summary(self, examples: int = 5) -> dict[str, object]:
        """Counts and a few example ids per class, for reports and assertion messages."""

        def ex(ids: Iterable[str]) -> list[str]:
            return sorted(ids)[:examples]

        return {
            "attempted": self.attempted,
            "acknowledged": self.acknowledged,
            "applied": self.applied,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "unexpected": len(self.unexpected),
            "recovered": len(self.recovered),
            "ok": self.ok,
            "examples": {
                "lost": ex(self.lost),
                "duplicated": ex(self.duplicated),
                "unexpected": ex(self.unexpected),
                "recovered": ex(self.recovered),
            },
        }


def check(
    attempted: Iterable[str], acknowledged: Iterable[str], applied: Iterable[str]
) -> CheckResult:
    """Compare producer and consumer histories. `applied` lists every application, so an id
    applied twice appears twice."""
    tried = set(attempted)
    acked = set(acknowledged)
    counts = Counter(applied)
    done = set(counts)
    return CheckResult(
        attempted=len(tried),
        acknowledged=len(acked),
        applied=len(done),
        lost=frozenset(acked - done),
        duplicated={k: n for k, n in counts.items() if n > 1},
        unexpected=frozenset(done - tried - acked),
        recovered=frozenset((done & tried) - acked),
    )
