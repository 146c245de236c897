"""Missed deliveries: GitHub never redelivers by itself, so ask it to, for each one Countersign never got."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gating.models import Delivery as DeliveryRow
from gating.services import Services

log = logging.getLogger(__name__)

# GitHub keeps deliveries for redelivery for three days.
WINDOW = timedelta(days=3)


def missed(attempts: list[dict[str, Any]], recorded: set[str]) -> list[int]:
    """Per GUID whose attempts all failed and that Countersign never recorded: its latest attempt's id, once."""
    by_guid: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_guid.setdefault(str(attempt.get("guid")), []).append(attempt)
    wanted = []
    for guid, tries in by_guid.items():
        if guid in recorded or any(t.get("status") == "OK" for t in tries):
            continue
        wanted.append(max(int(t["id"]) for t in tries))
    return sorted(wanted)


def recover_missed_deliveries(services: Services, now: datetime | None = None) -> list[int]:
    """Ask GitHub to redeliver what failed while Countersign was down; the ids of the attempts redelivered."""
    now = now or services.clock()
    attempts = services.github.hook_deliveries(since=now - WINDOW)
    guids = {str(a.get("guid")) for a in attempts}
    with services.db.session() as session:
        ids = [f"github:{guid}" for guid in guids]
        recorded: set[str] = set()
        for start in range(0, len(ids), 500):
            rows = session.scalars(select(DeliveryRow.id).where(DeliveryRow.id.in_(ids[start : start + 500])))
            recorded.update(row.removeprefix("github:") for row in rows)
    asked = []
    for attempt_id in missed(attempts, recorded):
        try:
            services.github.redeliver(attempt_id)
        except Exception:  # one refused redelivery must not stop the others
            log.exception("recovery.redeliver_failed", extra={"attempt": attempt_id})
            continue
        asked.append(attempt_id)
    log.info("recovery.swept", extra={"attempts": len(attempts), "redelivered": len(asked)})
    return asked
