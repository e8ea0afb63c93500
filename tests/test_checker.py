from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from integration_core.checker import check


def test_classifies_every_kind_of_anomaly() -> None:
    r = check(
        attempted=["a", "b", "c", "d", "e"],
        acknowledged=["a", "b", "c"],
        applied=["a", "b", "b", "d", "z"],
    )
    assert r.lost == {"c"}
    assert r.duplicated == {"b": 2}
    assert r.unexpected == {"z"}
    assert r.recovered == {"d"}
    assert not r.ok
    s = r.summary()
    assert s["lost"] == 1 and s["examples"] == {
        "lost": ["c"], "duplicated": ["b"], "unexpected": ["z"], "recovered": ["d"]}


def test_clean_history_is_ok() -> None:
    assert check(["a", "b"], ["a", "b"], ["b", "a"]).ok


@given(st.sets(st.integers(0, 50)), st.data())
def test_exactly_once_of_the_acknowledged_is_ok(ids: set[int], data: st.DataObject) -> None:
    names = [str(i) for i in ids]
    acked = data.draw(st.sets(st.sampled_from(names))) if names else set()
    applied = list(acked) + [n for n in names if n not in acked and data.draw(st.booleans())]
    r = check(names, acked, applied)
    assert r.ok and r.recovered == set(applied) - acked


def test_check_counts_is_the_vectorised_classification() -> None:
    import numpy as np

    from integration_core.checker import check_counts

    acked = np.array([True, True, False, True, False])
    applied = np.array([1, 0, 1, 3, 0])
    r = check_counts(acked, applied, prefix="mv-")
    assert r.counts == {"lost": 1, "duplicated": 1, "unexpected": 0, "recovered": 1}
    assert r.lost == {"mv-1"} and r.duplicated == {"mv-3": 3} and r.recovered == {"mv-2"}
    assert not r.ok and r.summary()["lost"] == 1
    reference = check([f"mv-{i}" for i in range(5)],
                      [f"mv-{i}" for i in range(5) if acked[i]],
                      [f"mv-{i}" for i in range(5) for _ in range(applied[i])])
    assert reference.counts == r.counts
