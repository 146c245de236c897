"""The app itself, its installations and the installation tokens it buys."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from simulators.github.auth import issue_token
from simulators.github.errors import ApiError
from simulators.github.render import APP_EVENTS, APP_PERMISSIONS, HTML, app_json, user_json
from simulators.github.routes.common import answer, as_app, simulator
from simulators.github.state import _Repo, iso

bp = Blueprint("app", __name__)


@bp.get("/app")
@as_app
def get_app() -> Response:
    return answer(app_json(simulator()))


@bp.post("/app/installations/<int:installation_id>/access_tokens")
@as_app
def create_installation_token(installation_id: int) -> Response:
    sim = simulator()
    if not any(r.installation_id == installation_id for r in sim.store.repos.values()):
        raise ApiError(404, "Not Found")
    body = request.get_json(silent=True) or {}
    permissions = body.get("permissions") or dict(APP_PERMISSIONS)
    token, expires = issue_token(sim.store, installation_id, permissions)
    return answer(
        {"token": token, "expires_at": iso(expires), "permissions": permissions, "repository_selection": "selected"},
        201,
    )


@bp.get("/repos/<owner>/<repo>/installation")
@as_app
def get_repo_installation(repo: _Repo) -> Response:
    sim = simulator()
    account = user_json(sim, repo.owner)
    created = iso(datetime(2024, 1, 2, tzinfo=UTC))
    return answer(
        {
            "id": repo.installation_id,
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": f"{sim.api}/app/installations/{repo.installation_id}/access_tokens",
            "repositories_url": f"{sim.api}/installation/repositories",
            "html_url": f"{HTML}/settings/installations/{repo.installation_id}",
            "app_id": sim.app_id,
            "app_slug": sim.app_slug,
            "target_id": account["id"],
            "target_type": "User",
            "permissions": dict(APP_PERMISSIONS),
            "events": list(APP_EVENTS),
            "created_at": created,
            "updated_at": created,
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }
    )
