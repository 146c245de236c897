"""Emergency changes after the fact: re-read their tickets and record the retroactive approval once given."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import select, update

from gating.db import Database, rows_updated
from gating.gates.gather import gather_policy, gather_tickets
from gating.models import Emergency
from gating.policy.emergency import Involved, approved_within_deadline, evaluate_retroactive_approval
from gating.policy.facts import GitHubPerson
from gating.services import Services

log = logging.getLogger(__name__)


def awaiting_approval(db: Database, keys: Iterable[str] | None = None) -> list[Emergency]:
    """Emergency changes not yet approved after the fact: all of them, or those naming any of `keys`."""
    with db.session() as session:
        rows = list(session.scalars(select(Emergency).where(Emergency.resolved_at.is_(None))).all())
    if keys is None:
        return rows
    wanted = set(keys)
    return [row for row in rows if wanted & set(row.tickets.split())]


def stored_people(people: list[Involved]) -> str:
    """The people of an emergency as its row keeps them: [role, login, name, e-mail] lists."""
    return json.dumps([[role, p.login, p.name, p.email] for role, p in people])


def _loaded_people(text: str) -> list[Involved]:
    return [(role, GitHubPerson(login, name, email)) for role, login, name, email in json.loads(text)]


def recheck_emergencies(services: Services, keys: Iterable[str] | None = None) -> list[int]:
    """Re-read the tickets of open emergencies (those naming `keys`, or all) and close the approved ones.

    Returns the ids of the emergencies resolved now.
    """
    resolved = []
    for emergency in awaiting_approval(services.db, keys):
        policy = services.github.with_installation(
            emergency.installation_id, partial(gather_policy, repository=emergency.repository)
        )
        pending = emergency.tickets.split()
        lookup, error = gather_tickets(services.jira, pending, policy, fresh=True)
        if error:
            log.warning("emergency.recheck_failed", extra={"emergency": emergency.id, "error": error})
            continue
        approvals = evaluate_retroactive_approval(pending, lookup.tickets, _loaded_people(emergency.people), policy)
        if approvals is not None and _resolve(services, emergency, approvals):
            resolved.append(emergency.id)
    return resolved


def _resolve(services: Services, emergency: Emergency, approvals: Sequence[Mapping[str, Any]]) -> bool:
    now = services.clock()
    with services.db.session() as session:
        # Claim it first: of two workers re-checking at once, only one records the approval.
        claimed = rows_updated(
            session,
            update(Emergency)
            .where(Emergency.id == emergency.id, Emergency.resolved_at.is_(None))
            .values(resolved_at=now),
        )
        if not claimed:
            return False
        entry = services.ledger.append(
            "emergency_retroactive_approval",
            {
                "emergency_entry_id": emergency.ledger_entry_id,
                "repository": emergency.repository,
                "environment": emergency.environment,
                "deployment_id": emergency.deployment_id,
                "sha": emergency.sha,
                "deadline": emergency.deadline,
                "approved_within_deadline": approved_within_deadline(approvals, emergency.deadline),
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
    return True
