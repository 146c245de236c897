"""GET /healthz (the process answers), GET /readyz (database reachable and migrated, worker running; on PostgreSQL
a job-queue worker seen recently, in any process), GET /metrics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify

from gating.intake.queue import uses_job_queue, worker_seen
from gating.metrics import exposition

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics() -> Any:
    services = current_app.extensions["countersign"]
    body, content_type = exposition(services.db, services.clock)
    return current_app.response_class(body, mimetype=None, content_type=content_type)


@bp.get("/readyz")
def readyz() -> Any:
    services = current_app.extensions["countersign"]
    try:
        pending = services.db.pending_migrations()
    except Exception as exc:  # any database failure means not ready; say which
        return jsonify(status="unavailable", database=f"{type(exc).__name__}"), 503
    if pending:
        return jsonify(status="unavailable", database="not migrated: run `countersign db upgrade`"), 503
    if not services.processor.alive():
        return jsonify(status="unavailable", database="ok", worker="stopped: deliveries would wait unanswered"), 503
    if uses_job_queue(services.db.url):
        # Deliveries are only queued here: some process's procrastinate worker must be sending heartbeats.
        within = timedelta(seconds=services.settings.job_lease_seconds)
        try:
            seen = worker_seen(services.db, within)
        except Exception as exc:
            return jsonify(status="unavailable", database=f"{type(exc).__name__}"), 503
        if not seen:
            worker = f"none seen in the last {within.total_seconds():.0f} s: start `countersign worker`"
            return jsonify(status="unavailable", database="ok", worker=worker), 503
    return jsonify(status="ok", database="ok", worker="ok"), 200
