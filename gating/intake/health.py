"""GET /healthz (the process answers) and GET /readyz (database reachable and migrated)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    services = current_app.extensions["countersign"]
    try:
        pending = services.db.pending_migrations()
    except Exception as exc:  # any database failure means not ready; say which
        return jsonify(status="unavailable", database=f"{type(exc).__name__}"), 503
    if pending:
        return jsonify(status="unavailable", database="not migrated: run `countersign db upgrade`"), 503
    return jsonify(status="ok", database="ok"), 200
