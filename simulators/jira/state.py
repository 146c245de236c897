"""The simulated Jira's data: users, tickets with their changelog and JSM approvals, and the ids Jira hands out."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Fixed ids for the statuses tests use, numbered as Jira does (Open 1, In Progress 3); others get one on first use.
KNOWN_STATUS_IDS = {
    "To Do": "10000",
    "Open": "1",
    "In Progress": "3",
    "In Review": "10002",
    "Approved": "10003",
    "Done": "10001",
    "Closed": "6",
    "Declined": "10004",
}
KEY_RE = re.compile(r"^([A-Z][A-Z0-9_]*)-(\d+)$")
DECISIONS = ("approved", "declined", "pending")  # what a JSM approver can answer


@dataclass
class _User:
    account_id: str
    display_name: str
    email: str | None
    name: str | None
    key: str
    hide_email: bool = False  # the profile hides the e-mail: Jira leaves `emailAddress` out

    @property
    def visible_email(self) -> str | None:
        return None if self.hide_email else self.email


@dataclass
class _History:
    id: str
    author: str | None  # account id
    created: datetime
    items: list[dict[str, Any]]
    recorded: float  # monotonic time it was written, for the search-lag switch


@dataclass
class _Approval:
    id: str
    name: str
    final_decision: str
    approvers: list[tuple[str, str]]
    created: datetime
    completed: datetime | None


@dataclass
class _Ticket:
    id: str
    key: str
    summary: str
    initial_status: str
    status: str
    issue_type: str
    reporter: str | None
    created: datetime
    updated: datetime
    histories: list[_History] = field(default_factory=list)
    approvals: list[_Approval] = field(default_factory=list)

    def as_seen_before(self, recorded: float) -> tuple[list[_History], str]:
        """The changelog and status written up to monotonic time `recorded`: what a lagging search still shows."""
        histories = [h for h in self.histories if h.recorded <= recorded]
        status = self.initial_status
        for history in histories:
            for item in history.items:
                if item["field"] == "status":
                    status = item["toString"]
        return histories, status


def chronological(histories: list[_History]) -> list[_History]:
    """Oldest first, as Jira lists a changelog; tests may record changes out of order."""
    return sorted(histories, key=lambda h: h.created)


class JiraState:
    """Everything the simulated site holds, behind one lock the HTTP handlers share with the test-facing API.

    The lock is re-entrant because a transition renders its webhook payload while still holding it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, _User] = {}  # by account id, and by username when there is one
        self.tickets: dict[str, _Ticket] = {}
        self.status_ids: dict[str, str] = dict(KNOWN_STATUS_IDS)
        self._next_issue_id = 10000
        self._next_history_id = 100000
        self._next_approval_id = 1
        self._next_user_key = 10000

    # ----- lookups -----

    def ticket(self, key: str) -> _Ticket:
        try:
            return self.tickets[key]
        except KeyError:
            raise KeyError(f"no ticket {key!r} in the simulator") from None

    def find(self, key_or_id: str) -> _Ticket | None:
        """The ticket a REST path names: Jira accepts the issue key or its numeric id."""
        found = self.tickets.get(key_or_id)
        if found is not None:
            return found
        return next((t for t in self.tickets.values() if t.id == key_or_id), None)

    def user(self, who: str | None) -> _User:
        if who is None:
            raise KeyError("no user given")
        try:
            return self.users[who]
        except KeyError:
            raise KeyError(f"no user {who!r} in the simulator; add_user() first") from None

    def status_id(self, name: str) -> str:
        if name not in self.status_ids:
            self.status_ids[name] = str(10100 + len(self.status_ids))
        return self.status_ids[name]

    # ----- changes -----

    def add_user(
        self, account_id: str, display_name: str, email: str | None, name: str | None, *, hide_email: bool = False
    ) -> _User:
        with self.lock:
            key = f"JIRAUSER{self._next_user_key}"
            self._next_user_key += 1
            user = _User(account_id, display_name, email, name, key, hide_email)
            self.users[account_id] = user
            if name:
                self.users[name] = user
            return user

    def add_ticket(self, key: str, summary: str, status: str, issue_type: str, reporter: str | None) -> _Ticket:
        if not KEY_RE.match(key):
            raise ValueError(f"{key!r} is not a Jira issue key like PAY-12")
        now = datetime.now(UTC)
        with self.lock:
            if reporter is not None:
                self.user(reporter)  # fail early on a typo
            self.status_id(status)
            ticket = _Ticket(
                id=str(self._next_issue_id),
                key=key,
                summary=summary or f"Work for {key}",
                initial_status=status,
                status=status,
                issue_type=issue_type,
                reporter=self.user(reporter).account_id if reporter else None,
                created=now,
                updated=now,
            )
            self._next_issue_id += 1
            self.tickets[key] = ticket
            return ticket

    def transition(
        self,
        key: str,
        to_status: str,
        by: str | None,
        at: datetime | None,
        extra_items: list[dict[str, Any]] | None = None,
    ) -> _History:
        """Move the ticket to `to_status`, recording the change (and `extra_items`) as Jira's changelog does."""
        with self.lock:
            ticket = self.ticket(key)
            item = {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": self.status_id(ticket.status),
                "fromString": ticket.status,
                "to": self.status_id(to_status),
                "toString": to_status,
            }
            history = self._append_history(ticket, item, by, at)
            history.items.extend(extra_items or [])
            ticket.status = to_status
            return history

    def change_field(
        self, key: str, field: str, from_string: str | None, to_string: str | None, by: str | None, at: datetime
    ) -> _History:
        """Record a change to a field other than status; Jira leaves the raw values out for these."""
        with self.lock:
            item = {
                "field": field,
                "fieldtype": "jira",
                "fieldId": field,
                "from": None,
                "fromString": from_string,
                "to": None,
                "toString": to_string,
            }
            return self._append_history(self.ticket(key), item, by, at)

    def _append_history(self, ticket: _Ticket, item: dict[str, Any], by: str | None, at: datetime | None) -> _History:
        author = self.user(by).account_id if by is not None else None
        created = at or datetime.now(UTC)
        if created.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        history = _History(str(self._next_history_id), author, created, [item], time.monotonic())
        self._next_history_id += 1
        ticket.histories.append(history)
        ticket.updated = max(ticket.updated, created)
        return history

    def add_approval(
        self,
        key: str,
        name: str,
        approvers: list[tuple[str, str]],
        final_decision: str,
        created: datetime | None,
        completed: datetime | None,
    ) -> _Approval:
        """Add a JSM approval, created with the ticket unless `created` says otherwise."""
        for decision in [final_decision, *(d for _, d in approvers)]:
            if decision not in DECISIONS:
                raise ValueError(f"decision must be approved, declined or pending, not {decision!r}")
        with self.lock:
            ticket = self.ticket(key)
            approval = _Approval(
                id=str(self._next_approval_id),
                name=name,
                final_decision=final_decision,
                approvers=[(self.user(u).account_id, d) for u, d in approvers],
                created=created or ticket.created,
                completed=completed,
            )
            self._next_approval_id += 1
            ticket.approvals.append(approval)
            return approval

    def delete_ticket(self, key: str) -> None:
        with self.lock:
            self.tickets.pop(key, None)
