"""Jira deliveries: a ticket changed, so open PRs and emergencies that reference it are evaluated again."""

from __future__ import annotations

import logging

from gating.gates.emergencies import recheck_emergencies
from gating.gates.merge import gate_pull_request
from gating.gates.pull_requests import pull_requests_for_ticket
from gating.gates.ticket_changes import record_ticket_change
from gating.intake.deliveries import Delivery
from gating.intake.routing import EventRouter
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()


@router.register("jira:issue_updated")
@router.register("jira:issue_created")
@router.register("jira:issue_deleted")
def on_ticket_changed(delivery: Delivery, services: Services) -> None:
    """The webhook is only a hint: the PRs are re-evaluated with the ticket read fresh from Jira."""
    key = ((delivery.payload.get("issue") or {}).get("key") or "").upper()
    if not key:
        return
    # Recorded before anything is evaluated, so that every process stops trusting its cached copy
    # and every evaluation dated after this moment sees the change.
    record_ticket_change(services.db, key, services.clock())
    services.jira.invalidate(key)
    failures = []
    for ref in pull_requests_for_ticket(services.db, key):
        try:
            gate_pull_request(services, ref, fresh=True, delivery_id=delivery.id)
        except Exception as exc:  # one PR failing must not stop the others
            log.exception("gate.reevaluation_failed", extra={"ticket": key, "repository": ref.repository})
            failures.append(f"{ref.repository}#{ref.number}: {exc}")
    try:
        recheck_emergencies(services, [key])
    except Exception as exc:
        log.exception("emergency.recheck_failed", extra={"ticket": key})
        failures.append(f"emergencies: {exc}")
    if failures:
        raise RuntimeError("re-evaluation failed for " + "; ".join(failures))
