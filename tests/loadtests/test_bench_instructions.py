"""The instruction-count benchmark's arithmetic (valgrind itself is not run here: a minute)."""

from __future__ import annotations

import pytest

from loadtests.bench.instructions import collected, per_movement

LOG = """==403== Callgrind, a call-graph generating cache profiler
==403== Events    : Ir
==403== Collected : 4098024950
==403== I   refs:      4,098,024,950
"""


def test_the_count_is_read_from_callgrinds_summary() -> None:
    assert collected(LOG) == 4_098_024_950
    with pytest.raises(RuntimeError, match="Collected"):
        collected("==1== nothing here")


def test_start_up_cancels_out_of_the_difference() -> None:
    start_up = 3_000_000_000
    short, long = (start_up + 2452 * 400_000, 2452), (start_up + 7284 * 400_000, 7284)
    assert per_movement(short, long) == per_movement(long, short) == 400_000
    with pytest.raises(ValueError):
        per_movement(short, short)
