"""The Mermaid diagram is generated from the table, and the committed copy is current."""

from __future__ import annotations

from pathlib import Path

from integration_core.orchestrator import TABLE, TERMINAL, Status, render_markdown, to_mermaid
from integration_core.orchestrator.diagram import REGENERATE, main

DOC = Path(__file__).resolve().parents[2] / "docs" / "orchestrator.md"


def test_committed_diagram_is_current() -> None:
    assert DOC.exists(), f"docs/orchestrator.md is missing; run `{REGENERATE}`"
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        f"docs/orchestrator.md is stale: the transition table changed; run `{REGENERATE}`"
    )


def test_diagram_has_one_edge_per_table_row() -> None:
    text = to_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    edges = [ln for ln in text.splitlines() if "-->" in ln and "[*]" not in ln]
    assert len(edges) == sum(len(rows) for rows in TABLE.values())
    assert "    [*] --> new" in text
    for status in TERMINAL:
        assert f"    {status.value} --> [*]" in text
    for status in Status:
        assert f" as {status.value}" in text


def test_edges_carry_event_guard_and_commands() -> None:
    text = to_mermaid()
    assert (
        "    releasing --> releasing: TimeoutFired [attempts left] / ReleaseToWms, ScheduleTimeout"
        in text
    )
    assert "    releasing --> releasing: TimeoutFired [else] / OpenException(no_response)" in text
    assert "    shipped --> completed: Delivered [complete]" in text


def test_diagram_follows_a_different_table() -> None:
    table = {key: rows for key, rows in TABLE.items() if key[0] is Status.NEW}
    edges = [ln for ln in to_mermaid(table).splitlines() if "-->" in ln and "[*]" not in ln]
    assert edges == ["    new --> validating: OrderPlaced / ValidateOrder, ScheduleTimeout"]


def test_main_writes_the_document(tmp_path: Path) -> None:
    out = tmp_path / "orchestrator.md"
    assert main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_markdown()
    assert main([]) == 2
