"""Ticket changes every process sees: a Jira webhook reaches one process, every process's cache must hear of it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gating.db import Database, rows_updated
from gating.models import TicketChange
from jira_client.models import Ticket

# A cached copy read up to this long after a recorded change may still predate it: the read was in
# flight when the ticket changed (a batch's changelogs take a while), or the hosts' clocks differ.
# Such a copy is read again, fresh; a ticket that has not changed for this long is cached as usual.
READ_MARGIN = timedelta(minutes=2)


def record_ticket_change(db: Database, key: str, changed_at: datetime) -> None:
    """Remember that `key` changed at `changed_at` (kept if a later change is already recorded)."""
    key = key.upper()
    for _ in range(2):
        with db.session() as session:
            changed = rows_updated(
                session,
                update(TicketChange)
                .where(TicketChange.key == key, TicketChange.changed_at < changed_at)
                .values(changed_at=changed_at),
            )
            if changed or session.get(TicketChange, key) is not None:
                return
        try:
            with db.session() as session:
                session.add(TicketChange(key=key, changed_at=changed_at))
            return
        except IntegrityError:
            continue  # another process recorded it first: compare with theirs


def changed_since_read(db: Database, tickets: Mapping[str, Ticket]) -> list[str]:
    """The keys among `tickets` whose copy may predate the ticket's last recorded change."""
    if not tickets:
        return []
    with db.session() as session:
        rows = session.execute(
            select(TicketChange.key, TicketChange.changed_at).where(TicketChange.key.in_(list(tickets)))
        ).all()
    stale = []
    for key, changed_at in rows:
        read_at = tickets[key].fetched_at
        if read_at is None or read_at < changed_at + READ_MARGIN:
            stale.append(key)
    return sorted(stale)
