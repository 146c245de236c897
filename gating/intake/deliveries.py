"""Durable webhook delivery records: each delivery is processed once, a crashed one again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from gating.db import Database, rows_updated
from gating.models import Delivery as DeliveryRow

# A delivery still "processing" after this long was abandoned by a crashed worker:
# a redelivery may take it over.
PROCESSING_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Delivery:
    id: str
    source: str  # github | jira
    event: str
    action: str | None
    payload: dict[str, Any]
    received_at: datetime


def payload_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class DeliveryStore:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def claim(self, delivery: Delivery, digest: str) -> bool:
        """True when this worker should process the delivery; False for a duplicate."""
        now = self.clock()
        try:
            with self.db.session() as session:
                session.add(
                    DeliveryRow(
                        id=delivery.id,
                        source=delivery.source,
                        event=delivery.event,
                        action=delivery.action,
                        payload_sha256=digest,
                        status="processing",
                        attempts=1,
                        received_at=now,
                        updated_at=now,
                    )
                )
            return True
        except IntegrityError:
            pass
        # Seen before: take it over only if it failed, or if its worker died mid-way.
        with self.db.session() as session:
            claimed = rows_updated(
                session,
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery.id)
                .where(
                    or_(
                        DeliveryRow.status == "failed",
                        (DeliveryRow.status == "processing") & (DeliveryRow.updated_at < now - PROCESSING_LEASE),
                    )
                )
                .values(status="processing", attempts=DeliveryRow.attempts + 1, updated_at=now, error=None),
            )
            return bool(claimed)

    def finish(self, delivery_id: str) -> None:
        self._set(delivery_id, "completed", None)

    def fail(self, delivery_id: str, error: str) -> None:
        self._set(delivery_id, "failed", error[:2000])

    def status(self, delivery_id: str) -> str | None:
        with self.db.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            return row.status if row else None

    def _set(self, delivery_id: str, status: str, error: str | None) -> None:
        with self.db.session() as session:
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(status=status, error=error, updated_at=self.clock())
            )
