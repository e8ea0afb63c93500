from __future__ import annotations

import numpy as np
import pytest

from sim.rng import Streams


def draws(streams: Streams, name: str, n: int = 8) -> list[float]:
    out: list[float] = streams.get(name).random(n).tolist()
    return out


def test_same_seed_and_name_give_identical_draws() -> None:
    assert draws(Streams(7), "arrivals") == draws(Streams(7), "arrivals")


def test_a_stream_is_cached_per_name() -> None:
    s = Streams(7)
    assert s.get("arrivals") is s.get("arrivals")
    first = s.get("arrivals").random()
    assert s.get("arrivals").random() != first  # continues, does not restart
    assert s.names() == ["arrivals"]


def test_different_names_give_different_draws() -> None:
    s = Streams(7)
    assert draws(s, "arrivals") != draws(s, "service")
    assert draws(s, "erp") != draws(s, "erp ")


def test_order_of_requests_does_not_matter() -> None:
    a, b = Streams(7), Streams(7)
    first_a = draws(a, "arrivals"), draws(a, "service")
    b.get("unrelated").random(1000)
    first_b_service = draws(b, "service")
    first_b_arrivals = draws(b, "arrivals")
    assert first_a == (first_b_arrivals, first_b_service)


def test_different_seeds_differ() -> None:
    assert draws(Streams(1), "arrivals") != draws(Streams(2), "arrivals")


def test_streams_look_independent() -> None:
    s = Streams(3)
    x, y = s.get("a").random(20_000), s.get("b").random(20_000)
    # Independent uniforms: correlation ~ N(0, 1/n), sd 0.007; 0.03 is over 4 sd.
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.03


def test_derivation_is_pinned() -> None:
    # Changing how names map to seeds would silently change every run's numbers; this golden
    # value makes such a change deliberate.
    assert Streams(42).get("arrivals").random() == pytest.approx(0.643084710970875, abs=1e-15)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "1"])
def test_bad_seed_is_refused(seed: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        Streams(seed)  # type: ignore[arg-type]


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="name"):
        Streams(1).get("")
