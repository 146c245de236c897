"""JSON API under /api/v1, every endpoint behind a bearer token: ledger verification, deployments, emergencies."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from gating.console.auth import require_token
from gating.console.dossiers import load_dossier
from gating.console.queries import BadParameter, DeploymentQuery, emergency_listing, search_page
from gating.console.scope import current_scope
from gating.ledger import Ledger
from gating.ledger.verification import verify_in_full

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def current_ledger() -> Ledger:
    """The app's ledger, with its signing key (COUNTERSIGN_SIGNING_KEY_PATH) when there is one."""
    ledger: Ledger = current_app.extensions["countersign"].ledger
    return ledger


@bp.get("/ledger/verify")
@require_token
def ledger_verify() -> Any:
    """The whole chain, recomputed, and recorded as the last full verification that dossier pages show.

    A token limited to some repositories gets the verdict and the count only: where the chain breaks, its head hash
    and its signers' spans are about every repository's entries, not just its own."""
    verification = verify_in_full(current_ledger())
    result = verification.result
    if not current_scope().everything:
        return jsonify(ok=result.ok, count=result.count, signatures_checked=result.signatures_checked, limited=True)
    return jsonify(result.as_dict() | {"verified_at": verification.as_dict()["verified_at"]})


def dossier_by_id(entry_id: str) -> dict[str, Any] | None:
    """The dossier a URL names, if the viewer may see it; None for a missing, malformed or out-of-scope id."""
    if not entry_id.isdigit() or len(entry_id) >= 19:  # beyond any sequence: never a database integer overflow
        return None
    limit = current_app.extensions["countersign"].settings.view_verify_entries
    return load_dossier(current_ledger(), int(entry_id), current_scope(), verify_limit=limit)


def _error(status: int, message: str, **extra: Any) -> Any:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response


@bp.get("/deployments")
@require_token
def deployments() -> Any:
    """Deployment decisions in the ledger, newest first, a page at a time: repo, environment, ticket, sha (a commit
    anywhere in the release, 7+ hex characters), requester, approver, author, version, since, until, decision;
    page (from 1) and per_page (default 50, at most 500; `limit` is the same). The README lists them."""
    try:
        query = DeploymentQuery.from_args(request.args)
    except BadParameter as exc:
        return _error(400, str(exc), parameter=exc.name)
    found = search_page(current_ledger().db, query, current_scope())
    return jsonify(deployments=found.deployments, **found.paging(request.path))


@bp.get("/deployments/<entry_id>")
@require_token
def deployment(entry_id: str) -> Any:
    """One deployment's dossier: evidence, ledger entry, chain verification and the auditor's five answers."""
    dossier = dossier_by_id(entry_id)
    if dossier is None:
        return _error(404, f"no deployment decision with ledger entry id {entry_id}")
    return jsonify(dossier)


@bp.get("/emergencies")
@require_token
def emergencies() -> Any:
    """Open emergency changes awaiting retroactive approval; overdue=true|false filters on the deadline."""
    raw = (request.args.get("overdue") or "").strip().lower()
    if raw in ("", "all"):
        overdue = None
    elif raw in ("true", "1", "yes"):
        overdue = True
    elif raw in ("false", "0", "no"):
        overdue = False
    else:
        return _error(400, f"overdue: {raw!r} is not true or false", parameter="overdue")
    services = current_app.extensions["countersign"]
    return jsonify(emergencies=emergency_listing(services.db, services.clock(), current_scope(), overdue=overdue))
