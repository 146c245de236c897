"""Prometheus metrics: deliveries, verdicts, GitHub and Jira requests, rate-limit waits, the queue.

Under gunicorn with several processes, set PROMETHEUS_MULTIPROC_DIR to an empty directory shared by the
processes (prometheus-client's multiprocess mode): every process then reports into it and a scrape of any
one of them sums them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
VERDICTS = Counter(
    "countersign_gate_verdicts_total",
    "Verdicts published, by gate (merge, deploy) and outcome (passed, failed, error, emergency).",
    ["gate", "outcome"],
)
VERDICT_LATENCY = Histogram(
    "countersign_gate_verdict_seconds",
    "From the webhook's receipt to the verdict published (the check run completed, the deployment answered).",
    ["gate"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
GITHUB_REQUESTS = Counter(
    "countersign_github_requests_total",
    "HTTP requests sent to GitHub, by method, kind of route and status class (none: no answer).",
    ["method", "route", "status"],
)
GITHUB_ERRORS = Counter(
    "countersign_github_errors_total",
    "GitHub failures by kind: primary_rate_limit, secondary_rate_limit, server_error, client_error, timeout, "
    "unreachable.",
    ["kind"],
)
GITHUB_TOKENS = Counter("countersign_github_tokens_issued_total", "Installation tokens minted.")
JIRA_REQUESTS = Counter(
    "countersign_jira_requests_total",
    "Requests (attempts) sent to Jira, by kind (search, issue, changelog, …).",
    ["kind"],
)
JIRA_ERRORS = Counter(
    "countersign_jira_errors_total",
    "Jira failures by kind (timeout, connection, unavailable, credentials, rejected).",
    ["kind"],
)
RATE_LIMIT_WAITS = Counter(
    "countersign_rate_limit_waits_total",
    "Waits on a rate limit (primary, secondary, pacing): slept in place, or the job deferred.",
    ["limit", "how"],
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "countersign_rate_limit_wait_seconds_total",
    "Seconds waited in place or deferred on rate limits.",
    ["limit", "how"],
)
# What this process reports when it is not in multiprocess mode (there, every process writes its own files).
_OWN = (
    DELIVERIES,
    ANSWERED,
    VERDICTS,
    VERDICT_LATENCY,
    GITHUB_REQUESTS,
    GITHUB_ERRORS,
    GITHUB_TOKENS,
    JIRA_REQUESTS,
    JIRA_ERRORS,
    RATE_LIMIT_WAITS,
    RATE_LIMIT_WAIT_SECONDS,
)

# When the delivery being handled was received: set by the router around a handler, read when a verdict is out.
_RECEIVED: ContextVar[datetime | None] = ContextVar("countersign_received_at", default=None)


@contextmanager
def handling(received_at: datetime | None) -> Iterator[None]:
    """Verdicts published inside are timed from `received_at` (the webhook's receipt)."""
    token = _RECEIVED.set(received_at)
    try:
        yield
    finally:
        _RECEIVED.reset(token)


def verdict_published(gate: str, outcome: str, now: datetime) -> None:
    VERDICTS.labels(gate, outcome).inc()
    received = _RECEIVED.get()
    if received is not None:
        VERDICT_LATENCY.labels(gate).observe(max((now - received).total_seconds(), 0.0))


def jira_request(kind: str, error: str | None) -> None:
    """The Jira gateway's observer: one call per request attempt."""
    JIRA_REQUESTS.labels(kind).inc()
    if error is not None:
        JIRA_ERRORS.labels(error).inc()


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
        for metric in _OWN:
            registry.register(metric)
    registry.register(QueueCollector(db, clock))
    return generate_latest(registry), CONTENT_TYPE_LATEST
