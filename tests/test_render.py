"""What people read: the check run's table and details, and the deployment comment, from literal verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gating.gates.render import render_check_run
from gating.policy.verdict import Outcome, TicketResult, Verdict

CEST = timezone(timedelta(hours=2))


def test_times_labelled_utc_are_utc_whatever_zone_they_came_in() -> None:
    approved_at = datetime(2024, 1, 18, 8, 27, tzinfo=CEST)  # as Jira Data Center writes it: 08:27+0200
    ticket = TicketResult(
        "PAY-1", "https://jira.example/browse/PAY-1", "Approved", ("Bob",), approved_at, Outcome.PASSED, ()
    )
    verdict = Verdict(
        Outcome.PASSED, "1 ticket approved", (ticket,), (), (), 1, datetime(2024, 1, 18, 9, 0, tzinfo=CEST)
    )

    summary = render_check_run(verdict).summary

    assert (
        "| [PAY-1](https://jira.example/browse/PAY-1) | Approved | Bob | 2024-01-18 06:27 UTC | ✅ passed |  |"
        in summary
    )
    assert "evaluated 2024-01-18 07:00 UTC" in summary
    assert datetime(2024, 1, 18, 6, 27, tzinfo=UTC) == approved_at
