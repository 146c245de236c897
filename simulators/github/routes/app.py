"""The app itself, its installations and the installation tokens it buys."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import requests
from flask import Blueprint, Response, request

from simulators.github.auth import issue_token
from simulators.github.errors import ApiError
from simulators.github.render import APP_PERMISSIONS, app_json, installation_json
from simulators.github.routes.common import answer, as_app, simulator
from simulators.github.state import _Repo, iso
from simulators.github.webhooks import deliver as sim_deliver

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
    return answer(installation_json(simulator(), repo.installation_id, repo.owner))


DELIVERY_FIELDS = (
    "id", "guid", "delivered_at", "redelivery", "duration", "status", "status_code", "event", "action",
    "installation_id", "repository_id", "throttled_at",
)  # fmt: skip


@bp.get("/app/hook/deliveries")
@as_app
def list_hook_deliveries() -> Response:
    """Newest first, paged by an opaque `cursor` in the `link` header, as GitHub does."""
    sim = simulator()
    per_page = max(1, min(int(request.args.get("per_page", 30)), 100))
    start = int(request.args.get("cursor") or 0)
    with sim.store.lock:
        items = [{k: d[k] for k in DELIVERY_FIELDS} for d in reversed(sim.hook_deliveries)]
    page = items[start : start + per_page]
    headers = {}
    if start + per_page < len(items):
        headers["Link"] = f'<{sim.api}/app/hook/deliveries?per_page={per_page}&cursor={start + per_page}>; rel="next"'
    return answer(page, headers=headers)


@bp.post("/app/hook/deliveries/<int:delivery_id>/attempts")
@as_app
def redeliver(delivery_id: int) -> Response:
    """Send a delivery again, with its GUID, after the answer (GitHub redelivers asynchronously)."""
    sim = simulator()
    with sim.store.lock:
        found = next((d for d in sim.hook_deliveries if d["id"] == delivery_id), None)
    if found is None:
        raise ApiError(404, "Not Found")
    sim.redeliveries_requested.append(delivery_id)
    threading.Thread(target=_send_again, args=(sim, found), daemon=True).start()
    return answer({}, 202)


def _send_again(sim: Any, found: dict[str, Any]) -> None:
    with contextlib.suppress(requests.RequestException):  # a failure is recorded as a failed attempt
        sim_deliver(sim, found["event"], found["payload"], delivery_id=found["guid"], redelivery=True)
