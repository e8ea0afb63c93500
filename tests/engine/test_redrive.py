"""The redrive policy's data, and what a redrive may requeue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from integration_core.bus import INGRESS, DeadLetter
from integration_core.engine.redrive import Redrive, When, awaiting_us, redrivable


def letter(i: int, consumer: str, transient: bool) -> DeadLetter:
    return DeadLetter(id=f"d{i}", consumer=consumer, position=i, message_id=f"m{i}",
                      envelope=None, raw=None, cause_type="X", cause_message="x", attempts=12,
                      first_failure_at=0.0, last_failure_at=1.0, transient=transient)


def test_only_transient_letters_of_a_consumer_are_redriven() -> None:
    letters = [letter(1, "erp", True), letter(2, "erp", False), letter(3, INGRESS, True),
               letter(4, "wms", True)]
    assert [d.id for d in redrivable(letters)] == ["d1", "d4"]


def test_documents_refused_back_to_their_sender_are_not_ours_to_act_on() -> None:
    edi = replace(letter(5, INGRESS, False), cause_type="EdiRejected")
    letters = [letter(1, "erp", True), letter(3, INGRESS, False), edi]
    assert [d.id for d in awaiting_us(letters)] == ["d1", "d3"]


def test_policy_describes_itself_and_refuses_nonsense() -> None:
    assert Redrive().describe() == "nobody redrives dead letters"
    assert "every 30 min" in Redrive(When.EVERY, every_s=1800).describe()
    assert "5 min after" in Redrive(When.AFTER_RECOVERY, after_s=300).describe()
    with pytest.raises(ValueError):
        Redrive(When.EVERY, every_s=0)
