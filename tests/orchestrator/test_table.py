"""The transition table, exhaustively: every status x every event kind is either allowed
(`handle` returns) or raises IllegalTransition and leaves the state as it was."""

from __future__ import annotations

import functools
from collections import deque

import pytest

from integration_core.errors import IllegalTransition
from integration_core.orchestrator import (
    DEFAULT_TIMEOUTS,
    EXCEPTION_SPECS,
    TABLE,
    TERMINAL,
    CommandKind,
    EventKind,
    InvalidEvent,
    OrderState,
    Status,
    Validated,
    allowed_events,
    handle,
    is_allowed,
)
from integration_core.orchestrator.table import Effect, Guard, Transition, _check
from tests.orchestrator.factories import PATHS, T0, order, reach, sample_event

PAIRS = [(status, kind) for status in Status for kind in EventKind]


@functools.cache
def state_in(status: Status) -> OrderState:
    return reach(status)


def test_every_status_has_a_path_in_the_factories() -> None:
    assert set(PATHS) == set(Status)


@pytest.mark.parametrize(("status", "kind"), PAIRS, ids=[f"{s.value}-{k.value}" for s, k in PAIRS])
def test_pair_is_allowed_or_illegal_and_unchanged(status: Status, kind: EventKind) -> None:
    state = state_in(status)
    event = sample_event(kind, state)
    if is_allowed(status, kind):
        new, _ = handle(state, event, T0 + 1_000)
        assert new.status in {row.next for row in TABLE[(status, kind)]}
        assert new != state  # the sample events are real news, not duplicates
    else:
        with pytest.raises(IllegalTransition) as err:
            handle(state, event, T0 + 1_000)
        assert (err.value.state, err.value.event) == (status.value, kind.value)
        assert err.value.status_hint == 409
    # Frozen values: the input is never modified, allowed or not.
    assert state == reach(status)


def test_event_for_another_order_is_rejected_unchanged() -> None:
    state = state_in(Status.VALIDATING)
    with pytest.raises(InvalidEvent):
        handle(state, Validated("SO-OTHER"), T0)
    assert state == reach(Status.VALIDATING)


def test_terminal_statuses_accept_nothing_but_a_return() -> None:
    assert allowed_events(Status.CANCELLED) == []
    assert allowed_events(Status.REJECTED) == []
    assert allowed_events(Status.COMPLETED) == [EventKind.RETURN_AUTHORIZED]


def test_every_status_is_reachable_and_every_non_terminal_can_finish() -> None:
    edges: dict[Status, set[Status]] = {s: set() for s in Status}
    for (status, _), rows in TABLE.items():
        edges[status].update(row.next for row in rows)

    def reachable(start: Status) -> set[Status]:
        seen, todo = {start}, deque([start])
        while todo:
            for nxt in edges[todo.popleft()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    assert reachable(Status.NEW) == set(Status)
    for status in Status:
        assert reachable(status) & TERMINAL, f"{status} cannot reach a terminal status"


def test_entering_a_waiting_status_arms_a_timer_or_opens_a_blocking_exception() -> None:
    """The static half of `is_settled`: the property test checks the dynamic half."""
    for (status, kind), rows in TABLE.items():
        for row in rows:
            if row.next in TERMINAL or row.next is status:
                continue
            commands = {fx.command for fx in row.effects}
            blocking = any(
                fx.exception is not None and EXCEPTION_SPECS[fx.exception].blocking
                for fx in row.effects
            )
            assert CommandKind.SCHEDULE_TIMEOUT in commands or blocking, (status, kind, row)


def test_every_armed_status_has_a_default_timeout_and_a_timeout_row() -> None:
    for (_, _), rows in TABLE.items():
        for row in rows:
            if any(fx.command is CommandKind.SCHEDULE_TIMEOUT for fx in row.effects):
                assert row.next in DEFAULT_TIMEOUTS
                assert is_allowed(row.next, EventKind.TIMEOUT_FIRED)


def test_table_rules_reject_a_bad_edit() -> None:
    unguarded_first = {
        (Status.NEW, EventKind.ORDER_PLACED): (
            Transition(Status.VALIDATING),
            Transition(Status.REJECTED),
        )
    }
    with pytest.raises(AssertionError, match="guard"):
        _check(unguarded_first)
    derived = {
        (Status.NEW, EventKind.ORDER_PLACED): (
            Transition(Status.VALIDATING, (Effect(CommandKind.CANCEL_TIMEOUT),)),
        )
    }
    with pytest.raises(AssertionError, match="derived"):
        _check(derived)
    guarded_last = {
        (Status.NEW, EventKind.ORDER_PLACED): (Transition(Status.VALIDATING, guard=Guard.COMPLETE),)
    }
    with pytest.raises(AssertionError, match="guard"):
        _check(guarded_last)


def test_new_state_needs_no_catalog_for_base_unit_lines() -> None:
    state = OrderState.new(order(4, 1))
    assert [(ln.sku, ln.ordered) for ln in state.lines] == [("A", 4), ("B", 1)]
