"""Plain facts read from Jira: tickets, the people in them and their status history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JiraUnavailable(Exception):
    """Jira could not answer (down, timing out, 5xx after retries, bad credentials).

    `str()` is the `detail`, for the log: Jira's URL, the request and what Jira answered. `summary` is
    what may be published — check runs and deployment comments are read by everyone who can read
    the repository, who need not learn Jira's internal address or its error bodies: what went wrong
    in a few words, and what to do.
    """

    def __init__(self, detail: str, *, kind: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind  # unavailable | timeout | connection | credentials | unexpected
        self.status = status

    @property
    def summary(self) -> str:
        http = f"HTTP {self.status}" if self.status is not None else "an error"
        if self.kind == "credentials":
            return (
                f"Jira refused Countersign's credentials ({http}); an administrator must check JIRA_USER and "
                "JIRA_TOKEN, then re-run"
            )
        if self.kind == "unexpected":
            return (
                f"Jira answered {http} to a ticket read; re-run, and if it happens again an administrator "
                "will find the details in Countersign's log (jira.unavailable)"
            )
        if self.kind == "timeout":
            return "Jira did not answer in time; re-run when it is back"
        if self.kind == "connection" or self.status is None:
            return "Jira could not be reached; re-run when it is back"
        return f"Jira answered {http}; re-run when it is back"


@dataclass(frozen=True)
class JiraUser:
    """A Jira person as Jira shows them; any field may be missing (Cloud hides e-mails)."""

    account_id: str | None = None  # Cloud
    name: str | None = None  # Data Center username
    key: str | None = None  # Data Center user key
    email: str | None = None
    display_name: str | None = None

    def identifiers(self) -> frozenset[str]:
        """Every value a config mapping may use to name this person (e-mail lower-cased)."""
        values = {self.account_id, self.name, self.key, self.email.lower() if self.email else None}
        return frozenset(v for v in values if v)

    def label(self) -> str:
        return self.display_name or self.email or self.name or self.account_id or "unknown Jira user"


@dataclass(frozen=True)
class StatusChange:
    """One status transition from the changelog."""

    from_status: str | None
    from_status_id: str | None
    to_status: str
    to_status_id: str | None
    author: JiraUser | None  # absent for some automation
    at: datetime  # timezone-aware
    history_id: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class JsmApprovalDecision:
    """One Jira Service Management approval of a request (no per-approver time exists)."""

    approval_id: str
    name: str
    final_decision: str  # approved | declined | pending
    approvers: tuple[tuple[JiraUser, str], ...]  # (approver, their decision: approved | declined | pending)
    completed_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    created_at: datetime | None = None  # when the approval was asked for


@dataclass(frozen=True)
class Ticket:
    """A Jira issue with what the gates need: its status now and how it got there."""

    key: str
    summary: str
    status: str
    status_id: str | None
    issue_type: str
    url: str
    status_changes: tuple[StatusChange, ...]  # oldest first, complete (paged past truncation)
    jsm_approvals: tuple[JsmApprovalDecision, ...] | None = None  # None: not fetched
    fetched_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class TicketLookup:
    """The answer to one batched fetch: found tickets by key, and keys Jira does not know."""

    tickets: dict[str, Ticket]
    unknown: frozenset[str]
