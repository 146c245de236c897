"""What the console reads from the database: deployment decisions by search, open emergency changes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select

from gating.console.scope import Scope
from gating.db import Database
from gating.ledger import LedgerEntryView
from gating.models import Emergency, LedgerEntry
from gating.policy.emergency import is_overdue

KIND = "deployment_decision"
DECISIONS = ("approved", "rejected", "emergency")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_SHA = re.compile(r"^[0-9a-fA-F]{1,64}$")


def iso(value: datetime | None) -> str | None:
    """A stored time as the API shows it: UTC, to the second."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BadParameter(ValueError):
    """A search parameter that cannot be understood; `name` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class DeploymentQuery:
    repo: str | None = None
    environment: str | None = None
    ticket: str | None = None
    sha: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    limit: int | None = DEFAULT_LIMIT

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, max_limit: int | None = MAX_LIMIT) -> DeploymentQuery:
        """From query-string style arguments; blank values are ignored. Raises BadParameter."""

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            return value or None

        decision = text("decision")
        if decision is not None:
            decision = decision.lower()
            if decision not in DECISIONS:
                raise BadParameter("decision", f"{decision!r} is not one of {', '.join(DECISIONS)}")
        sha = text("sha")
        if sha is not None and not _SHA.match(sha):
            raise BadParameter("sha", f"{sha!r} is not a hexadecimal commit SHA or prefix")
        limit: int | None = DEFAULT_LIMIT
        raw_limit = text("limit")
        if raw_limit is not None:
            try:
                limit = int(raw_limit)
            except ValueError:
                raise BadParameter("limit", f"{raw_limit!r} is not an integer") from None
            if limit < 1 or (max_limit is not None and limit > max_limit):
                raise BadParameter("limit", f"must be between 1 and {max_limit}")
        since = parse_when(text("since"), "since")
        until = parse_when(text("until"), "until", end_of_day=True)
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "must be later than since")
        return cls(
            repo=text("repo"),
            environment=text("environment"),
            ticket=text("ticket"),
            sha=sha.lower() if sha else None,
            since=since,
            until=until,
            decision=decision,
            limit=limit,
        )


def parse_when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """ISO-8601 date or datetime, as UTC when it names no zone. A bare date as an upper bound covers that day."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadParameter(
            name, f"{value!r} is not an ISO-8601 date or datetime (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def deployment_conditions(query: DeploymentQuery, scope: Scope) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a search within `scope`: `sha` matches as a prefix; `ticket` as a whole key."""
    conditions = [LedgerEntry.kind == KIND, scope.clause(LedgerEntry.repository)]
    if query.repo is not None:
        conditions.append(LedgerEntry.repository == query.repo)
    if query.environment is not None:
        conditions.append(LedgerEntry.environment == query.environment)
    if query.decision is not None:
        conditions.append(LedgerEntry.decision == query.decision)
    if query.sha is not None:
        conditions.append(LedgerEntry.sha.like(f"{query.sha}%"))
    if query.since is not None:
        conditions.append(LedgerEntry.created_at >= query.since)
    if query.until is not None:
        conditions.append(LedgerEntry.created_at < query.until)
    if query.ticket is not None:
        escaped = query.ticket.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(LedgerEntry.payload.like(f'%"{escaped}"%', escape="\\"))
    return conditions


def search_deployments(db: Database, query: DeploymentQuery, scope: Scope) -> list[LedgerEntryView]:
    """Deployment decisions in `scope` matching `query`, newest first. `sha` matches as a prefix; `ticket` as a
    whole key."""
    statement = select(LedgerEntry).where(*deployment_conditions(query, scope)).order_by(LedgerEntry.sequence.desc())
    if query.limit is not None:
        statement = statement.limit(query.limit)
    with db.session() as session:
        return [LedgerEntryView.of(row) for row in session.scalars(statement)]


def stream_deployments(
    db: Database, query: DeploymentQuery, scope: Scope, *, through: int | None = None, chunk: int = 500
) -> Iterator[LedgerEntryView]:
    """Deployment decisions matching `query`, oldest first, read `chunk` at a time (never all at once); with
    `through`, only entries up to that sequence."""
    conditions = deployment_conditions(query, scope)
    if through is not None:
        conditions.append(LedgerEntry.sequence <= through)
    after = 0
    while True:
        statement = (
            select(LedgerEntry)
            .where(*conditions, LedgerEntry.sequence > after)
            .order_by(LedgerEntry.sequence)
            .limit(chunk)
        )
        with db.session() as session:
            views = [LedgerEntryView.of(row) for row in session.scalars(statement)]
        yield from views
        if len(views) < chunk:
            return
        after = views[-1].sequence


def emergency_listing(
    db: Database, now: datetime, scope: Scope, *, overdue: bool | None = None
) -> list[dict[str, Any]]:
    """Unresolved emergency changes in `scope`, earliest deadline first; `overdue` True/False keeps only those
    past/before it."""
    statement = (
        select(Emergency)
        .where(Emergency.resolved_at.is_(None), scope.clause(Emergency.repository))
        .order_by(Emergency.deadline, Emergency.id)
    )
    found = []
    with db.session() as session:
        for row in session.scalars(statement):
            deadline = row.deadline
            late = is_overdue(deadline, now)
            if overdue is not None and late != overdue:
                continue
            found.append(
                {
                    "id": row.id,
                    "repository": row.repository,
                    "environment": row.environment,
                    "deployment_id": row.deployment_id,
                    "sha": row.sha,
                    "tickets": row.tickets.split(),
                    "deadline": iso(deadline),
                    "overdue": late,
                    "created_at": iso(row.created_at),
                    "ledger_entry_id": row.ledger_entry_id,
                    "links": {"page": f"/deployments/{row.ledger_entry_id}"},
                }
            )
    return found
