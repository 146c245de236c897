"""HTML pages for people: the dashboard (GET /) and one deployment's printable dossier (GET /deployments/<id>).

For a person signed in (gating/console/signin.py), or with an API token, which a browser sends as the password of
HTTP Basic; either sees only the repositories it is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, request

from gating.console.api import dossier_by_id
from gating.console.auth import require_viewer
from gating.console.dossier_view import Links
from gating.console.queries import (
    BadParameter,
    DeploymentQuery,
    emergency_listing,
    search_page,
    timeline,
)
from gating.console.rendering import render_dashboard, render_dossier, render_message
from gating.console.scope import current_scope
from gating.ledger.verification import ledger_state

bp = Blueprint("console", __name__)


def _html(body: str, status: int = 200) -> Any:
    response = current_app.response_class(body, status=status, mimetype="text/html")
    # The pages show evidence from other systems; keep them inert.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
@require_viewer
def dashboard() -> Any:
    """Recent decisions with the search form, paging, the per-environment timeline, open emergency changes and
    the ledger's state. A search the console cannot understand is a 400 that says why, the form as it was sent."""
    # As sent, so that the form shows what was asked even when it is refused.
    filters = {name: value.strip() for name, value in request.args.items() if value.strip()}
    services = current_app.extensions["countersign"]
    scope = current_scope()
    error = None
    status = 200
    found = None
    try:
        query = DeploymentQuery.from_args(request.args)
        found = search_page(services.db, query, scope)
    except BadParameter as exc:
        error, status = str(exc), 400
    emergencies = emergency_listing(services.db, services.clock(), scope)
    shipped = timeline(services.db, scope, repo=found.query.repo if found is not None else None)
    checkpoints = services.settings.checkpoint_dir
    state = ledger_state(services.ledger, checkpoint_dir=Path(checkpoints) if checkpoints else None)
    page = found.paging(request.path) if found is not None else None
    deployments = found.deployments if found is not None else []
    body = render_dashboard(deployments, emergencies, filters, error, page=page, timeline=shipped, ledger_state=state)
    return _html(body, status)


@bp.get("/deployments/<entry_id>")
@require_viewer
def deployment_page(entry_id: str) -> Any:
    dossier = dossier_by_id(entry_id)
    if dossier is None:
        message = f"There is no deployment decision with ledger entry id {entry_id}."
        return _html(render_message("Dossier not found", message), 404)
    services = current_app.extensions["countersign"]
    links = Links.from_api(services.settings.github_api_url, services.settings.jira_url)
    return _html(render_dossier(dossier, now=services.clock(), links=links))
