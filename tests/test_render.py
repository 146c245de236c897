"""What people read: the check run's table and details, and the deployment comment, from literal verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gating.gates.render import render_check_run
from gating.policy.verdict import Finding, Outcome, TicketResult, Verdict

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


def test_advice_goes_in_the_details_and_changes_nothing_else() -> None:
    advice = Finding("identities", Outcome.PASSED, "identities may not match", ("map `alice` to an accountId",))
    passed = Finding("required_checks", Outcome.PASSED, "build succeeded")
    verdict = Verdict(
        Outcome.PASSED, "1 ticket approved", (), (advice, passed), (), 1, datetime(2024, 1, 18, tzinfo=UTC)
    )

    output = render_check_run(verdict)

    assert output.text == "### Warnings\n\n- map `alice` to an accountId"
    assert output.conclusion == "success"
    assert "alice" not in output.summary
