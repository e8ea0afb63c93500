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
