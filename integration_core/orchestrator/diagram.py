"""Render the transition table as a Mermaid state diagram; never drawn by hand.

Regenerate the committed copy with::

    python -m integration_core.orchestrator docs/orchestrator.md
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from integration_core.orchestrator.events import EVENT_TYPES
from integration_core.orchestrator.states import TERMINAL, WAITING_ON, Status
from integration_core.orchestrator.table import TABLE, Key, Row, Transition

REGENERATE = "python -m integration_core.orchestrator docs/orchestrator.md"


def _edge_label(kind_name: str, row: Transition, alternatives: int) -> str:
    text = kind_name
    if row.guard is not None:
        text += f" [{row.guard.value.replace('_', ' ')}]"
    elif alternatives > 1:
        text += " [else]"
    if row.effects:
        text += " / " + ", ".join(fx.label for fx in row.effects)
    return text


def to_mermaid(table: Mapping[Key, Row] = TABLE) -> str:
    """`stateDiagram-v2` source: one edge per table row, labelled `Event [guard] / commands`."""
    out = ["stateDiagram-v2"]
    for status in Status:
        if status in TERMINAL:
            out.append(f'    state "{status.value} (terminal)" as {status.value}')
        else:
            waits = WAITING_ON[status].value
            out.append(f'    state "{status.value} - waits on {waits}" as {status.value}')
    out.append(f"    [*] --> {Status.NEW.value}")
    for (status, kind), rows in table.items():
        name = EVENT_TYPES[kind].__name__
        for row in rows:
            label = _edge_label(name, row, len(rows))
            out.append(f"    {status.value} --> {row.next.value}: {label}")
    for status in Status:
        if status in TERMINAL:
            out.append(f"    {status.value} --> [*]")
    return "\n".join(out) + "\n"


def render_markdown(table: Mapping[Key, Row] = TABLE) -> str:
    """The whole of docs/orchestrator.md."""
    return f"""# Order-to-ship orchestrator

The saga that takes a shop order through validation, credit check, allocation against
available-to-promise, release to the warehouse, pick/pack, carrier label, shipment confirmation,
invoicing and customer notification, with its exception paths. Generated from
`integration_core.orchestrator.table.TABLE`; do not edit by hand, regenerate with
`{REGENERATE}`.

Each edge is one table row, `Event [guard] / commands`. When an event has several rows, guards
on the order's data choose one (`[else]` is the last). Not drawn, because `handle` derives them:
`CloseException` for the blocking exceptions of a wait that ends, and `CancelTimeout` when an
order leaves a status without arming a new timer. Every non-terminal status has a pending
timeout or an open blocking exception (`is_settled`); each box names the party the order waits
on. An event without an edge from the current status raises `IllegalTransition` and changes
nothing.

```mermaid
{to_mermaid(table)}```
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: {REGENERATE}", file=sys.stderr)
        return 2
    Path(args[0]).write_text(render_markdown(), encoding="utf-8")
    return 0
