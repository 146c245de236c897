"""Emergency changes after the fact: record the retroactive approval once their tickets are approved."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from gating.gather import gather_policy, gather_tickets
from gating.models import Emergency
from gating.policy.facts import GitHubPerson
from gating.policy.separation_of_duties import check_separation
from gating.policy.ticket_approval import evaluate_ticket_approval
from gating.services import Services

log = logging.getLogger(__name__)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def open_emergencies(services: Services, keys: Iterable[str] | None = None) -> list[Emergency]:
    with services.db.session() as session:
        rows = list(session.scalars(select(Emergency).where(Emergency.resolved_at.is_(None))).all())
    if keys is None:
        return rows
    wanted = set(keys)
    return [row for row in rows if wanted & set(row.tickets.split())]


def recheck_emergencies(services: Services, keys: Iterable[str] | None = None) -> list[int]:
    """Re-read the tickets of open emergencies (those naming `keys`, or all) and close the approved ones.

    Returns the ids of the emergencies resolved now. Separation of duties still applies: an approval
    by anyone who wrote, committed or requested the change does not count.
    """
    resolved = []
    for emergency in open_emergencies(services, keys):
        policy = services.github.with_installation(
            emergency.installation_id, lambda gh, repo=emergency.repository: gather_policy(gh, repo)
        )
        pending = emergency.tickets.split()
        lookup, error = gather_tickets(services.jira, pending, policy, fresh=True)
        if error:
            log.warning("emergency.recheck_failed", extra={"emergency": emergency.id, "error": error})
            continue
        people = [(role, GitHubPerson(login, name, email)) for role, login, name, email in json.loads(emergency.people)]
        approvals: list[dict[str, Any]] = []
        for key in pending:
            ticket = lookup.tickets.get(key)
            approval = evaluate_ticket_approval(ticket, policy).approval if ticket else None
            if approval is None:
                break
            problems: list[str] = []
            for approver in approval.approvers:
                conflicts, unresolved = check_separation(approver, people, policy.identities, {})
                problems += conflicts + unresolved
            if problems:
                break
            approvals.append(
                {
                    "key": key,
                    "status": ticket.status if ticket else None,
                    "approvers": [a.label() for a in approval.approvers],
                    "approved_at": approval.approved_at,
                    "approval_source": approval.source,
                    "approval_record": approval.record,
                }
            )
        else:
            _resolve(services, emergency, approvals)
            resolved.append(emergency.id)
    return resolved


def _resolve(services: Services, emergency: Emergency, approvals: list[dict[str, Any]]) -> None:
    now = services.clock()
    with services.db.session() as session:
        # Claim it first: of two workers re-checking at once, only one records the approval.
        claimed = session.execute(
            update(Emergency)
            .where(Emergency.id == emergency.id, Emergency.resolved_at.is_(None))
            .values(resolved_at=now)
        ).rowcount
        if not claimed:
            return
        entry = services.ledger.append(
            "emergency_retroactive_approval",
            {
                "emergency_entry_id": emergency.ledger_entry_id,
                "repository": emergency.repository,
                "environment": emergency.environment,
                "deployment_id": emergency.deployment_id,
                "sha": emergency.sha,
                "deadline": aware(emergency.deadline),
                "approved_within_deadline": all(a["approved_at"] <= aware(emergency.deadline) for a in approvals),
                "tickets": approvals,
                "captured_at": now,
            },
            index={
                "repository": emergency.repository,
                "environment": emergency.environment,
                "deployment_id": emergency.deployment_id,
                "sha": emergency.sha,
                "decision": "retroactively_approved",
            },
            session=session,
        )
        session.execute(update(Emergency).where(Emergency.id == emergency.id).values(resolution_entry_id=entry.id))
    log.info("emergency.resolved", extra={"emergency": emergency.id, "entry": entry.id})
