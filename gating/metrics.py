"""Prometheus metrics: deliveries, how long a delivery takes to be answered, and the queue.

Under gunicorn with several processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by the
processes (prometheus-client's multiprocess mode): every process then reports into it and a scrape of any
one of them sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gating.db import Database
from gating.models import Delivery as DeliveryRow

DELIVERIES = Counter(
    "countersign_deliveries_total",
    "Webhook deliveries by event and what became of them (accepted, duplicate, ignored, completed, failed, "
    "not_actionable).",
    ["source", "event", "outcome"],
)
ANSWERED = Histogram(
    "countersign_delivery_answer_seconds",
    "From a delivery's receipt to the end of its job (the check run completed, the deployment answered).",
    ["queue"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)


class QueueCollector(Collector):
    """Queue depth and the age of the oldest unfinished delivery per queue, read from the database at scrape."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily("countersign_queue_depth", "Deliveries queued or under way.", labels=["queue"])
        oldest = GaugeMetricFamily(
            "countersign_queue_oldest_age_seconds", "Age of the oldest unfinished delivery.", labels=["queue"]
        )
        now = self.clock()
        from gating.intake.queue import queue_figures, uses_job_queue  # the job queue imports the metrics

        # On PostgreSQL the queue is procrastinate's: its jobs waiting or running, aged by their deliveries.
        figures = queue_figures(self.db, now) if uses_job_queue(self.db.url) else self._deliveries(now)
        for queue in ("merge", "deploy"):
            count, age = figures.get(queue, (0, 0.0))
            depth.add_metric([queue], float(count))
            oldest.add_metric([queue], age)
        yield depth
        yield oldest

    def _deliveries(self, now: datetime) -> dict[str, tuple[int, float]]:
        with self.db.session() as session:
            rows = session.execute(
                select(DeliveryRow.queue, func.count(), func.min(DeliveryRow.received_at))
                .where(DeliveryRow.status.in_(("queued", "processing")))
                .group_by(DeliveryRow.queue)
            ).all()
        return {queue: (count, max((now - first).total_seconds(), 0.0)) for queue, count, first in rows}


def exposition(db: Database, clock: Callable[[], datetime]) -> tuple[bytes, str]:
    """The metrics text and its content type: this process's (or, in multiprocess mode, all processes')."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(DELIVERIES)
        registry.register(ANSWERED)
    registry.register(QueueCollector(db, clock))
    return generate_latest(registry), CONTENT_TYPE_LATEST
