"""HTML pages for people: the dashboard (GET /) and one deployment's printable dossier (GET /deployments/<id>).

For a person signed in (gating/console/signin.py), or with an API token, which a browser sends as the password of
HTTP Basic; either sees only the repositories it is allowed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from gating.console.api import dossier_by_id
from gating.console.auth import require_viewer
from gating.console.dossier_view import Links
from gating.console.dossiers import summary
from gating.console.queries import BadParameter, DeploymentQuery, emergency_listing, search_deployments
from gating.console.rendering import render_dashboard, render_dossier, render_message
from gating.console.scope import current_scope

bp = Blueprint("console", __name__)

FILTERS = ("repo", "environment", "ticket", "sha", "decision")


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
    filters = {name: request.args[name].strip() for name in FILTERS if (request.args.get(name) or "").strip()}
    services = current_app.extensions["countersign"]
    error = None
    status = 200
    try:
        query = DeploymentQuery.from_args(filters)
        deployments = [summary(entry) for entry in search_deployments(services.db, query, current_scope())]
    except BadParameter as exc:
        error, status, deployments = str(exc), 400, []
    emergencies = emergency_listing(services.db, services.clock(), current_scope())
    return _html(render_dashboard(deployments, emergencies, filters, error), status)


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
