"""ExceptionQueue: records listed by age and by severity, closed once."""

from __future__ import annotations

import pytest

from integration_core.errors import NotFound
from integration_core.orchestrator import (
    EXCEPTION_SPECS,
    ExceptionQueue,
    ExceptionRecord,
    ExceptionType,
    Severity,
    System,
)


def rec(xid: str, severity: Severity, opened_at: float, order_id: str = "SO-1") -> ExceptionRecord:
    return ExceptionRecord(
        exception_id=xid,
        type=ExceptionType.NO_RESPONSE,
        severity=severity,
        owner=System.WMS,
        order_id=order_id,
        opened_at=opened_at,
    )


@pytest.fixture
def queue() -> ExceptionQueue:
    q = ExceptionQueue()
    q.open(rec("x-medium-old", Severity.MEDIUM, 10.0))
    q.open(rec("x-high-new", Severity.HIGH, 30.0))
    q.open(rec("x-low-oldest", Severity.LOW, 5.0, order_id="SO-2"))
    q.open(rec("x-high-old", Severity.HIGH, 20.0))
    q.open(rec("x-critical", Severity.CRITICAL, 40.0))
    return q


def ids(records: list[ExceptionRecord]) -> list[str]:
    return [r.exception_id for r in records]


def test_by_age_lists_oldest_first(queue: ExceptionQueue) -> None:
    assert ids(queue.by_age()) == [
        "x-low-oldest",
        "x-medium-old",
        "x-high-old",
        "x-high-new",
        "x-critical",
    ]


def test_by_severity_lists_most_severe_first_then_oldest(queue: ExceptionQueue) -> None:
    assert ids(queue.by_severity()) == [
        "x-critical",
        "x-high-old",
        "x-high-new",
        "x-medium-old",
        "x-low-oldest",
    ]


def test_lists_filter_by_order(queue: ExceptionQueue) -> None:
    assert ids(queue.by_age(order_id="SO-2")) == ["x-low-oldest"]
    assert len(queue.by_severity(order_id="SO-1")) == 4


def test_close_removes_a_record_from_the_lists_and_keeps_the_first_close_time(
    queue: ExceptionQueue,
) -> None:
    closed = queue.close("x-critical", at=50.0)
    assert closed.closed_at == 50.0 and not closed.is_open
    assert "x-critical" not in ids(queue.by_severity())
    assert len(queue) == 4
    assert queue.close("x-critical", at=99.0).closed_at == 50.0
    assert ids(queue.closed()) == ["x-critical"]
    assert "x-critical" in queue


def test_close_of_an_unknown_id_is_not_found(queue: ExceptionQueue) -> None:
    with pytest.raises(NotFound):
        queue.close("nope", at=1.0)


def test_opening_an_id_twice_keeps_the_first_record(queue: ExceptionQueue) -> None:
    again = queue.open(rec("x-high-new", Severity.LOW, 99.0))
    assert (again.severity, again.opened_at) == (Severity.HIGH, 30.0)
    assert len(queue) == 5


def test_age_is_measured_from_opening() -> None:
    assert rec("x", Severity.LOW, 100.0).age(now=160.0) == 60.0


def test_severity_ranks_are_ordered() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3]


def test_every_exception_type_has_a_spec() -> None:
    assert set(EXCEPTION_SPECS) == set(ExceptionType)
