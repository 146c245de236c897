"""Jira's REST endpoints as blueprints, answering from the JiraSimulator the Flask app carries."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from simulators.jira.jql import JqlError, run_jql
from simulators.jira.render import (
    FIELD_LIST,
    ISSUE_FIELDS,
    ISSUE_NOT_FOUND,
    JSM_REQUEST_NOT_FOUND,
    REMOVED_SEARCH_MESSAGE,
    error,
    server_info,
)
from simulators.jira.state import _User

if TYPE_CHECKING:
    from simulators.jira.simulator import JiraSimulator

EXTENSION = "jira_sim"

# Who the API token belongs to: the account Countersign reads Jira as.
_BOT = _User("557058:countersign-bot", "Countersign", None, "countersign", "JIRAUSER9999")

platform = Blueprint("platform", __name__, url_prefix="/rest/api/<any('2','3'):version>")
servicedesk = Blueprint("servicedesk", __name__, url_prefix="/rest/servicedeskapi")
control = Blueprint("control", __name__, url_prefix="/_sim")


def create_app(sim: JiraSimulator) -> Flask:
    """The WSGI app for one simulator: its blueprints, plus Jira's answers to bad credentials and unknown paths."""
    app = Flask("jira_simulator")
    app.extensions[EXTENSION] = sim
    app.before_request(_check_credentials)
    app.register_error_handler(404, _not_found)
    app.register_error_handler(405, _not_allowed)
    for blueprint in (platform, servicedesk, control):
        app.register_blueprint(blueprint)
    return app


def _sim() -> JiraSimulator:
    return cast("JiraSimulator", current_app.extensions[EXTENSION])


def _check_credentials() -> Response | None:
    if request.path.startswith("/rest/") and _sim().bad_credentials:
        return error(401, "Client must be authenticated to access this resource.")
    return None


def _not_found(_exc: Exception) -> Response:
    return error(404, f"null for uri: {request.url}")


def _not_allowed(_exc: Exception) -> Response:
    return error(405, "Method Not Allowed")


# ----- /_sim: for people and tests, outside the fault switches and the request log -----


@control.get("/state")
def sim_state() -> Response:
    return jsonify(_sim().state())


# ----- /rest/api/{2,3}: the platform API -----


@platform.get("/serverInfo")
def get_server_info(version: str) -> Response:
    sim = _sim()
    return jsonify(server_info(sim.deployment_type, sim.renderer().base, datetime.now(UTC), sim.time_zone))


@platform.get("/field")
def get_fields(version: str) -> Response:
    return jsonify(FIELD_LIST)


@platform.get("/myself")
def get_current_user(version: str) -> Response:
    return jsonify(_sim().renderer().user(_BOT))


@platform.get("/issue/<key>")
def get_issue(version: str, key: str) -> Response:
    sim = _sim()
    with sim.store.lock:
        ticket = sim.store.find(key)
        if ticket is None:
            return error(404, ISSUE_NOT_FOUND)
        wanted = _wanted_fields(request.args.getlist("fields"), default_all=True)
        expand = _csv(request.args.getlist("expand"))
        limit = sim.issue_changelog_limit if sim.is_cloud else None
        return jsonify(sim.renderer().issue(ticket, wanted, expand_changelog="changelog" in expand, limit=limit))


@platform.get("/issue/<key>/changelog")
def get_changelog(version: str, key: str) -> Response:
    """Cloud only: the full changelog, paged by startAt/maxResults (at most 100 a page)."""
    sim = _sim()
    if not sim.is_cloud:
        return error(404, f"null for uri: {request.url}")
    with sim.store.lock:
        ticket = sim.store.find(key)
        if ticket is None:
            return error(404, ISSUE_NOT_FOUND)
        start = _int(request.args.get("startAt"), 0)
        size = min(max(_int(request.args.get("maxResults"), 100), 1), 100)
        render = sim.renderer()
        path = f"{render.base}/rest/api/{version}/issue/{key}/changelog"
        return jsonify(render.changelog_page(ticket, path, start, size))


@platform.route("/search/jql", methods=["GET", "POST"])
def search_jql(version: str) -> Response:
    """Cloud's search: token paging, ids only unless fields are named, and `reconcileIssues` for fresh reads."""
    sim = _sim()
    if not sim.is_cloud:
        return error(404, f"null for uri: {request.url}")
    params = _params()
    wanted = _wanted_fields(params.get("fields", []), default_all=False)
    # Jira pages up to 5,000 when only ids or keys are asked for (the library sends "issuekey").
    only_ids = wanted is not None and not (wanted - {"id", "key", "issuekey"})
    cap = 5000 if only_ids else 100
    cap = min(cap, sim.search_page_limit or cap)
    size = min(max(_int(_first(params, "maxResults"), 50), 1), cap)
    token = _first(params, "nextPageToken")
    offset = _decode_token(token) if token else 0
    if offset is None:
        return error(400, "The provided next page token is invalid or expired.")
    reconcile = {str(i) for i in _csv(params.get("reconcileIssues", []))}
    if len(reconcile) > 50:
        return error(400, "The number of issues to reconcile must not exceed 50.")
    with sim.store.lock:
        try:
            found = run_jql(_first(params, "jql") or "", sim.store.tickets)
        except JqlError as exc:
            return error(400, *exc.messages)
        expand = _csv(params.get("expand", []))
        render = sim.renderer()
        lag_cutoff = time.monotonic() - sim.search_lag if sim.search_lag else None
        issues = [
            render.issue(
                t,
                wanted,
                expand_changelog="changelog" in expand,
                limit=sim.search_changelog_limit,
                visible_before=None if t.id in reconcile else lag_cutoff,
            )
            for t in found[offset : offset + size]
        ]
    data: dict[str, Any] = {"issues": issues, "isLast": offset + size >= len(found)}
    if not data["isLast"]:
        data["nextPageToken"] = _encode_token(offset + size)
    return jsonify(data)


@platform.route("/search", methods=["GET", "POST"])
def search(version: str) -> Response:
    """Data Center's search, paged by startAt with a total; Cloud has removed it."""
    sim = _sim()
    if sim.is_cloud:
        return error(410, REMOVED_SEARCH_MESSAGE)
    params = _params()
    wanted = _wanted_fields(params.get("fields", []), default_all=True)
    start = max(_int(_first(params, "startAt"), 0), 0)
    size = min(max(_int(_first(params, "maxResults"), 50), 0), sim.search_page_limit or 1000)
    with sim.store.lock:
        try:
            found = run_jql(_first(params, "jql") or "", sim.store.tickets)
        except JqlError as exc:
            return error(400, *exc.messages)
        expand = _csv(params.get("expand", []))
        render = sim.renderer()
        issues = [
            render.issue(t, wanted, expand_changelog="changelog" in expand, limit=None)
            for t in found[start : start + size]
        ]
    return jsonify(
        {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}
    )


# ----- /rest/servicedeskapi: Jira Service Management -----


@servicedesk.get("/request/<key>/approval")
def get_approvals(key: str) -> Response:
    """A request's approvals, paged by start/limit (at most 50); a ticket without any is not a JSM request."""
    sim = _sim()
    with sim.store.lock:
        ticket = sim.store.find(key)
        if ticket is None or not ticket.approvals:
            response = jsonify(JSM_REQUEST_NOT_FOUND)
            response.status_code = 404
            return response
        start = max(_int(request.args.get("start"), 0), 0)
        limit = min(max(_int(request.args.get("limit"), 50), 1), 50)
        return jsonify(sim.renderer().approval_page(ticket, key, start, limit))


# ----- reading requests -----


def _params() -> dict[str, list[str]]:
    """Query parameters (GET) or JSON body (POST) as lists of strings."""
    if request.method == "POST":
        body = request.get_json(silent=True) or {}
        out: dict[str, list[str]] = {}
        for name, value in body.items():
            if value is None:
                continue
            out[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        return out
    return {name: request.args.getlist(name) for name in request.args}


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if values else None


def _csv(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _wanted_fields(values: list[str], *, default_all: bool) -> set[str] | None:
    """None means every field."""
    names = set(_csv(values))
    if not names:
        return None if default_all else {"id"}
    if names & {"*all", "*navigable"}:
        return None
    return names - {f"-{n}" for n in ISSUE_FIELDS}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _encode_token(offset: int) -> str:
    """An opaque page token; the nonce makes each one differ, as Cloud's do, so clients cannot treat it as an offset."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "n": uuid.uuid4().hex[:8]}).encode()).decode()


def _decode_token(token: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        return None
