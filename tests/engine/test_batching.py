"""The batching policy: full batches at once, a partial one after its oldest waited."""

from __future__ import annotations

import pytest

from integration_core.bus import Delivery
from integration_core.engine.batching import Batcher, Batching
from tests.factories import env


def deliveries(n: int, start: int = 0) -> list[Delivery]:
    return [Delivery("erp", start + i, env(start + i), 1)
            for i in range(n)]


def test_full_batches_go_at_once_and_the_rest_waits_for_more() -> None:
    b = Batcher(Batching(max_size=3, max_wait_s=10, max_calls=3))
    b.add(deliveries(7), now=0)
    first, second = b.ready(0)
    assert [d.position for d in first] == [0, 1, 2] and [d.position for d in second] == [3, 4, 5]
    assert len(b.held) == 1 and b.room == 2 and b.next_at() == 10
    assert b.ready(9.9) == []
    b.add(deliveries(1, start=7), now=5)  # joins the waiting batch; the oldest sets the clock
    b.done()
    (rest,) = b.ready(10)
    assert [d.position for d in rest] == [6, 7] and b.next_at() is None


def test_no_wait_posts_whatever_is_due_and_a_crash_forgets_what_was_held() -> None:
    b = Batcher(Batching(max_size=500))
    b.add(deliveries(2), now=1)
    assert [len(x) for x in b.ready(1)] == [2]
    b = Batcher(Batching(max_size=5, max_wait_s=60))
    b.add(deliveries(2), now=1)
    assert len(b.drop()) == 2 and b.held == [] and b.ready(1000) == [] and b.calls == 0


def test_batches_wait_for_a_free_call_and_grow_meanwhile() -> None:
    b = Batcher(Batching(max_size=100, max_calls=1))
    b.add(deliveries(2), now=0)
    (first,) = b.ready(0)
    assert len(first) == 2 and b.calls == 1
    b.add(deliveries(5, start=2), now=1)
    assert b.ready(1) == [] and b.next_at() is None  # the one call is out: gather
    b.done()
    (second,) = b.ready(2)
    assert [d.position for d in second] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize(("size", "wait", "calls"), [(0, 0, 1), (1, -1, 1), (1, 0, 0)])
def test_a_policy_must_make_sense(size: int, wait: float, calls: int) -> None:
    with pytest.raises(ValueError):
        Batching(max_size=size, max_wait_s=wait, max_calls=calls)


def test_pacing_spaces_the_calls_and_the_batches_fill_meanwhile() -> None:
    b = Batcher(Batching(max_size=100, max_calls=5, min_interval_s=0.25))
    b.add(deliveries(3), now=0)
    assert [len(x) for x in b.ready(0)] == [3]
    b.add(deliveries(4, start=3), now=0.1)
    assert b.ready(0.1) == [] and b.next_at() == 0.25
    assert [len(x) for x in b.ready(0.25)] == [4]


def test_a_wake_at_the_due_time_read_back_through_an_epoch_finds_the_batch_due() -> None:
    # The twin wakes at (due - epoch) and reads epoch + that: at Unix magnitude the sum can
    # fall an ulp short of the due time. It must still count as due, or the driver wakes
    # again at the same instant for ever (found with max_wait_s = 0.01).
    epoch, wait = 1_767_571_200.0, 0.01
    for added_s in (0.0, 0.3, 17.123, 3599.999):
        b = Batcher(Batching(max_size=10, max_wait_s=wait))
        b.add(deliveries(1), now=epoch + added_s)
        due = b.next_at()
        assert due is not None
        woke = epoch + (due - epoch)
        assert len(b.ready(woke)) == 1, (added_s, woke - due)
    assert Batcher(Batching(max_size=10, max_wait_s=wait)).ready(epoch) == []
