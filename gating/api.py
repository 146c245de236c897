"""JSON API under /api/v1, every endpoint behind a bearer token: ledger verification."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from gating.api_auth import require_token
from gating.ledger import Ledger, signing_key_from_env

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def current_ledger() -> Ledger:
    """The app's ledger: the one its services carry, else one built once from COUNTERSIGN_SIGNING_KEY_PATH."""
    services = current_app.extensions["countersign"]
    ledger = getattr(services, "ledger", None)
    if ledger is None:
        ledger = current_app.extensions.get("countersign.ledger")
        if ledger is None:
            ledger = Ledger(services.db, signing_key_from_env(), clock=services.clock)
            current_app.extensions["countersign.ledger"] = ledger
    return ledger


@bp.get("/ledger/verify")
@require_token
def ledger_verify() -> Any:
    result = current_ledger().verify()
    return jsonify(result.as_dict())
