from __future__ import annotations

from loadtests.bench.edi import documents, gateway_run, run


def test_generated_documents_are_clean_and_deterministic() -> None:
    docs = documents(30, seed=3)
    assert docs == documents(30, seed=3) and docs != documents(30, seed=4)
    messages, errors = gateway_run(docs)
    assert errors == 0 and messages >= 30


def test_run_reports_both_sides_of_the_comparison() -> None:
    out = run(20, repeat=1, seed=1)
    assert out["segments"] > 20 * 5 and out["gateway_documents_per_s"] > 0
    assert out["gateway_time_over_bare_split"] > 1
