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

import numpy as np
import numpy.typing as npt


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
    counts: dict[str, int] = field(default_factory=dict, hash=False)
    """Size of each class; the id sets may hold only examples (see `check_counts`)."""

    def __post_init__(self) -> None:
        if not self.counts:
            object.__setattr__(self, "counts", {
                "lost": len(self.lost), "duplicated": len(self.duplicated),
                "unexpected": len(self.unexpected), "recovered": len(self.recovered),
            })

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
            **self.counts,
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


def check_counts(
    acknowledged: npt.NDArray[np.bool_],
    applied_counts: npt.NDArray[np.int64],
    prefix: str = "",
    examples: int = 20,
) -> CheckResult:
    """The same classification for producers whose ids are 0..n-1 (a simulator's movements):
    vectorised, with example ids only (`prefix` + index) instead of every id.

    Every index counts as attempted, so `unexpected` is always empty here; counts of the
    classes are in `CheckResult.counts`."""
    if acknowledged.shape != applied_counts.shape:
        raise ValueError("acknowledged and applied_counts must have the same length")
    lost = np.flatnonzero(acknowledged & (applied_counts == 0))
    dup = np.flatnonzero(applied_counts > 1)
    rec = np.flatnonzero(~acknowledged & (applied_counts > 0))

    def ids(ix: npt.NDArray[np.intp]) -> frozenset[str]:
        return frozenset(f"{prefix}{i}" for i in ix[:examples])

    return CheckResult(
        attempted=len(acknowledged),
        acknowledged=int(acknowledged.sum()),
        applied=int((applied_counts > 0).sum()),
        lost=ids(lost),
        duplicated={f"{prefix}{i}": int(applied_counts[i]) for i in dup[:examples]},
        unexpected=frozenset(),
        recovered=ids(rec),
        counts={"lost": len(lost), "duplicated": len(dup), "unexpected": 0,
                "recovered": len(rec)},
    )
