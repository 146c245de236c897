"""Durable webhook deliveries: stored with their payload when accepted, processed once, a crashed one again.

On SQLite the table is also the job queue: a worker claims a queued delivery for a lease and renews it
while it works; a delivery whose worker died (its lease ran out) is claimed again by another. On PostgreSQL
a procrastinate job carries each delivery's id (gating/intake/queue.py), deferred in the transaction that
stores or requeues the row; the job takes its delivery by id, under the same lease.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gating.db import Database, rows_updated
from gating.models import Delivery as DeliveryRow

# How long a claim lasts without being renewed. Workers renew it while they work, so only a dead
# worker lets it run out; then another worker (or a redelivery) takes the delivery over.
LEASE = timedelta(seconds=60)
QUEUES = ("merge", "deploy")


@dataclass(frozen=True)
class Delivery:
    id: str
    source: str  # github | jira
    event: str
    action: str | None
    payload: dict[str, Any]
    received_at: datetime
    attempts: int = 1  # runs of its job so far, this one included


class Enqueuer(Protocol):
    """Defers a job for a delivery row inside the session that writes the row (the PostgreSQL job queue)."""

    def enqueue(self, session: Session, row: DeliveryRow, *, run_in: float | None = None) -> int: ...


def payload_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def queue_for(event: str) -> str:
    """Deploy decisions wait on Jira and GitHub for minutes at worst: they never hold up a merge check."""
    return "deploy" if event == "deployment_protection_rule" else "merge"


class DeliveryStore:
    def __init__(self, db: Database, clock: Callable[[], datetime], jobs: Enqueuer | None = None) -> None:
        self.db = db
        self.clock = clock
        self.jobs = jobs  # None: the deliveries table is the queue (SQLite)

    def accept(self, delivery: Delivery, digest: str) -> bool:
        """Store the delivery, payload included, as queued; False for a duplicate of one done or under way.

        A delivery seen before is queued again when it failed, or when its worker died mid-way: a manual
        redelivery is honoured, never swallowed.
        """
        now = self.clock()
        text = json.dumps(delivery.payload, separators=(",", ":"))
        try:
            with self.db.session() as session:
                row = DeliveryRow(
                    id=delivery.id,
                    source=delivery.source,
                    event=delivery.event,
                    action=delivery.action,
                    payload_sha256=digest,
                    payload=text,
                    queue=queue_for(delivery.event),
                    status="queued",
                    attempts=0,
                    received_at=delivery.received_at,
                    updated_at=now,
                )
                session.add(row)
                session.flush()  # a duplicate fails here, before a job is deferred for it
                self._enqueue(session, row)
            return True
        except IntegrityError:
            pass
        with self.db.session() as session:
            requeued = rows_updated(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery.id, or_(DeliveryRow.status == "failed", _abandoned(now)))
                .values(status="queued", payload=text, payload_sha256=digest, error=None, run_after=None,
                        lease_until=None, attempts=0, updated_at=now),
            )  # fmt: skip
            if requeued:
                self._enqueue(session, session.get_one(DeliveryRow, delivery.id))
            return bool(requeued)

    def _enqueue(self, session: Session, row: DeliveryRow, run_in: float | None = None) -> None:
        if self.jobs is not None:
            self.jobs.enqueue(session, row, run_in=run_in)

    def claim(self, queue: str, lease: timedelta = LEASE) -> Delivery | None:
        """The oldest runnable delivery of `queue`, now held by this worker for `lease`; None when there is none."""
        now = self.clock()
        runnable = and_(
            DeliveryRow.queue == queue,
            or_(
                and_(
                    DeliveryRow.status == "queued", or_(DeliveryRow.run_after.is_(None), DeliveryRow.run_after <= now)
                ),
                _abandoned(now),
            ),
        )
        for _attempt in range(5):  # another worker may win the row between the look and the claim
            with self.db.session() as session:
                candidate = select(DeliveryRow.id).where(runnable).order_by(DeliveryRow.received_at).limit(1)
                if session.get_bind().dialect.name == "postgresql":
                    candidate = candidate.with_for_update(skip_locked=True)
                delivery_id = session.scalar(candidate)
                if delivery_id is None:
                    return None
                won = rows_updated(
                    session,
                    update(DeliveryRow)
                    .where(DeliveryRow.id == delivery_id, runnable)
                    .values(status="processing", lease_until=now + lease, attempts=DeliveryRow.attempts + 1,
                            updated_at=now),
                )  # fmt: skip
                if not won:
                    continue
                row = session.get(DeliveryRow, delivery_id)
                if row is None or row.payload is None:
                    # Accepted by a version that did not keep payloads: nothing to run it from.
                    if row is not None:
                        row.status, row.error = "failed", "the payload was not stored; ask GitHub to redeliver it"
                    continue
                return _delivery(row)
        return None

    def take(self, delivery_id: str, lease: timedelta = LEASE) -> Delivery | float | None:
        """Hold the delivery a job was deferred for: the Delivery when taken; when a live worker holds it, the
        seconds until its lease would run out (to look again then); None when there is nothing to run."""
        now = self.clock()
        with self.db.session() as session:
            won = rows_updated(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, or_(DeliveryRow.status == "queued", _abandoned(now)))
                .values(status="processing", lease_until=now + lease, attempts=DeliveryRow.attempts + 1,
                        updated_at=now),
            )  # fmt: skip
            row = session.get(DeliveryRow, delivery_id, populate_existing=True)
            if row is None:
                return None
            if not won:
                if row.status == "processing" and row.lease_until is not None:
                    return max((row.lease_until - now).total_seconds(), 0.0) + 1.0
                return None  # completed or failed by an earlier job of the same delivery
            if row.payload is None:
                row.status, row.error = "failed", "the payload was not stored; ask GitHub to redeliver it"
                return None
            return _delivery(row)

    def enqueue_again(self, delivery_id: str, seconds: float) -> None:
        """Defer one more job for the delivery, to run in `seconds` (PostgreSQL; nothing on SQLite)."""
        with self.db.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            if row is not None:
                self._enqueue(session, row, seconds)

    def renew(self, delivery_id: str, lease: timedelta = LEASE) -> None:
        """Keep holding a delivery while its job runs (a heartbeat)."""
        now = self.clock()
        with self.db.session() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id, DeliveryRow.status == "processing")
                .values(lease_until=now + lease, updated_at=now)
            )

    def finish(self, delivery_id: str) -> None:
        self._set(delivery_id, "completed", None)

    def fail(self, delivery_id: str, error: str) -> None:
        self._set(delivery_id, "failed", error[:2000])

    def defer(self, delivery_id: str, seconds: float, reason: str) -> None:
        """Queue the delivery again, runnable no sooner than `seconds` from now (the job asked to wait).

        Waiting is not failing: the run is given back, so that a deployment waiting out a long Jira outage
        keeps every retry for real failures. On PostgreSQL a new job is deferred for that time, with the row.
        """
        self._queue_again(delivery_id, seconds, reason, DeliveryRow.attempts - 1, new_job=True)

    def retry(self, delivery_id: str, seconds: float, error: str) -> None:
        """Queue a delivery whose run failed again, in `seconds`; its failed run counts (on PostgreSQL
        procrastinate's retry strategy runs its job again, so no new job is deferred)."""
        self._queue_again(delivery_id, seconds, error, DeliveryRow.attempts, new_job=False)

    def _queue_again(self, delivery_id: str, seconds: float, why: str, attempts: Any, *, new_job: bool) -> None:
        now = self.clock()
        with self.db.session() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status="queued", error=why[:2000], lease_until=None, attempts=attempts,
                        run_after=now + timedelta(seconds=seconds), updated_at=now)
            )  # fmt: skip
            row = session.get(DeliveryRow, delivery_id) if new_job else None
            if row is not None:
                # In the same transaction: a row queued again always has a job to run it.
                self._enqueue(session, row, seconds)

    def status(self, delivery_id: str) -> str | None:
        with self.db.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            return row.status if row else None

    def unfinished(self) -> int:
        """Deliveries queued or under way, runnable now or later."""
        with self.db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(DeliveryRow).where(DeliveryRow.status.in_(("queued", "processing")))
            )
            return int(count or 0)

    def _set(self, delivery_id: str, status: str, error: str | None) -> None:
        with self.db.session() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status=status, error=error, lease_until=None, updated_at=self.clock())
            )


def _delivery(row: DeliveryRow) -> Delivery:
    payload = json.loads(row.payload or "{}")
    return Delivery(row.id, row.source, row.event, row.action, payload, row.received_at, row.attempts)


def _abandoned(now: datetime) -> ColumnElement[bool]:
    """Under way, but its worker stopped renewing the lease: it died."""
    return and_(DeliveryRow.status == "processing", DeliveryRow.lease_until < now)
