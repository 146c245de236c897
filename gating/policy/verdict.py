"""What a gate decided and why: outcomes, findings and per-ticket results."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from gating.policy.facts import Commit


@enum.unique
class Outcome(enum.IntEnum):
    """Ordered so that the worst finding wins: max() of outcomes is the verdict."""

    PASSED = 1
    EMERGENCY = 2
    FAILED = 3
    ERROR = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def blocks(self) -> bool:
        return self >= Outcome.FAILED


@dataclass(frozen=True)
class TicketResult:
    key: str
    url: str | None
    status: str | None
    approvers: tuple[str, ...]
    approved_at: datetime | None
    outcome: Outcome
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    """A rule's result that is not about one ticket (coverage, review, config, Jira)."""

    rule: str
    outcome: Outcome
    summary: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    title: str
    tickets: tuple[TicketResult, ...]
    findings: tuple[Finding, ...]
    uncovered_commits: tuple[Commit, ...]
    commit_count: int
    evaluated_at: datetime

    @property
    def passed(self) -> bool:
        return not self.outcome.blocks

    def reasons(self) -> tuple[str, ...]:
        """Every reason for a non-pass, tickets first, in a stable order."""
        out: list[str] = []
        for ticket in self.tickets:
            if ticket.outcome is not Outcome.PASSED:
                out.extend(ticket.reasons)
        for finding in self.findings:
            if finding.outcome is not Outcome.PASSED:
                out.extend(finding.reasons or (finding.summary,))
        return tuple(out)
