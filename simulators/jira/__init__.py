"""A Jira server (Cloud or Data Center flavour) speaking the real REST paths and JSON shapes, for tests and demos."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request

from jira_client.models import JiraUser
from simulators.http import Faults, RecordingMiddleware, ServerHandle, serve
from simulators.jira import webhooks
from simulators.jira.jql import JqlError, run_jql
from simulators.jira.render import (
    FIELD_LIST,
    ISSUE_FIELDS,
    ISSUE_NOT_FOUND,
    JIRA_TIME_FORMAT,
    JSM_REQUEST_NOT_FOUND,
    REMOVED_SEARCH_MESSAGE,
    Renderer,
    error,
    fault_body,
    jira_time,
    server_info,
)
from simulators.jira.state import JiraState, _User

__all__ = ["ISSUE_NOT_FOUND", "JIRA_TIME_FORMAT", "REMOVED_SEARCH_MESSAGE", "JiraSimulator", "jira_time"]

# Who the API token belongs to: the account Countersign reads Jira as.
_BOT = _User("557058:countersign-bot", "Countersign", None, "countersign", "JIRAUSER9999")


class JiraSimulator:
    """Jira over real HTTP: state set by tests, endpoints as Jira Cloud or Data Center answers them.

    `deployment_type` "Cloud" serves `/search/jql` and `/issue/{key}/changelog` and answers 410 on the
    removed `/search`; "Server" (Data Center) serves `/search` and answers 404 on the Cloud-only paths.
    Switches: `faults` (see simulators.http), `bad_credentials` (401 on everything),
    `search_changelog_limit` / `issue_changelog_limit` (Cloud truncation of `expand=changelog`) and
    `search_page_limit` (answer fewer issues a page than asked, as Jira may) and
    `search_lag` (seconds during which Cloud's search shows a ticket's previous state unless its id
    is in `reconcileIssues`, like Jira's eventually consistent search).
    """

    def __init__(
        self, deployment_type: str = "Cloud", webhook_url: str | None = None, webhook_secret: str | None = None
    ) -> None:
        if deployment_type not in ("Cloud", "Server"):
            raise ValueError(f"deployment_type must be 'Cloud' or 'Server', not {deployment_type!r}")
        self.deployment_type = deployment_type
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.bad_credentials = False
        self.search_changelog_limit = 20
        self.issue_changelog_limit = 100
        self.search_lag = 0.0
        self.search_page_limit: int | None = None
        self.url: str | None = None
        self.faults = Faults()
        self.store = JiraState()
        self._handle: ServerHandle | None = None
        self.app = self._build_app()
        self.recorder = RecordingMiddleware(self.app, self.faults, fault_body)
        self.wsgi = self.recorder

    @property
    def is_cloud(self) -> bool:
        return self.deployment_type == "Cloud"

    def renderer(self) -> Renderer:
        """Jira's JSON for this flavour, with links under the URL the simulator is served at."""
        return Renderer(self.store, cloud=self.is_cloud, base=self.url or "http://jira.example.invalid")

    # ----- lifecycle -----

    def start(self, port: int = 0) -> str:
        self._handle = serve(self.wsgi, port)
        self.url = self._handle.url
        return self.url

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    # ----- state API -----

    def add_user(
        self, account_id: str, display_name: str, email: str | None = None, name: str | None = None
    ) -> JiraUser:
        user = self.store.add_user(account_id, display_name, email, name)
        if self.is_cloud:
            return JiraUser(account_id=account_id, email=email, display_name=display_name)
        return JiraUser(name=name or account_id, key=user.key, email=email, display_name=display_name)

    def add_ticket(
        self,
        key: str,
        summary: str = "",
        status: str = "To Do",
        issue_type: str = "Story",
        reporter: str | None = None,
    ) -> None:
        self.store.add_ticket(key, summary, status, issue_type, reporter)

    def transition(self, key: str, to_status: str, by: str | None, at: datetime | None = None) -> None:
        with self.store.lock:
            self.store.transition(key, to_status, by, at)
            payload = self.issue_updated_payload(key) if self.webhook_url else None
        # Delivered outside the lock: the receiver may well call back into this simulator while handling it.
        if payload is not None:
            webhooks.deliver(self.webhook_url or "", self.webhook_secret, payload)

    def add_history(
        self, key: str, field: str, from_string: str | None, to_string: str | None, by: str | None, at: datetime
    ) -> None:
        """Record a non-status change (noise the client must skip)."""
        self.store.change_field(key, field, from_string, to_string, by, at)

    def set_jsm_approval(
        self,
        key: str,
        approvers: list[tuple[str, str]],
        final_decision: str,
        completed_at: datetime | None,
        *,
        name: str = "Please approve this request",
        created_at: datetime | None = None,
    ) -> str:
        """Add one JSM approval to the request (approvers are (user, decision)); returns its id."""
        return self.store.add_approval(key, name, approvers, final_decision, created_at, completed_at).id

    def delete_ticket(self, key: str) -> None:
        self.store.delete_ticket(key)

    def issue_updated_payload(self, key: str) -> dict[str, Any]:
        """The `jira:issue_updated` webhook body for the ticket's latest change."""
        with self.store.lock:
            return webhooks.issue_updated_payload(self.store.ticket(key), self.renderer())

    def state(self) -> dict[str, Any]:
        """Every ticket as the issue endpoint shows it, with its approvals."""
        with self.store.lock:
            render = self.renderer()
            return {
                "deploymentType": self.deployment_type,
                "tickets": {
                    key: {
                        **render.issue(t, None, expand_changelog=True, limit=None),
                        "approvals": [render.approval(a) for a in t.approvals],
                    }
                    for key, t in sorted(self.store.tickets.items())
                },
            }

    # ----- internals: HTTP -----

    def _build_app(self) -> Flask:
        app = Flask("jira_simulator")
        api = "/rest/api/<any('2','3'):version>"

        @app.before_request
        def check_credentials() -> Any:
            if request.path.startswith("/rest/") and self.bad_credentials:
                return error(401, "Client must be authenticated to access this resource.")
            return None

        @app.get("/_sim/state")
        def sim_state() -> Any:
            return jsonify(self.state())

        @app.get(f"{api}/serverInfo")
        def get_server_info(version: str) -> Any:
            return jsonify(server_info(self.deployment_type, self.renderer().base, datetime.now(UTC)))

        @app.get(f"{api}/field")
        def get_fields(version: str) -> Any:
            return jsonify(FIELD_LIST)

        @app.get(f"{api}/myself")
        def get_current_user(version: str) -> Any:
            return jsonify(self.renderer().user(_BOT))

        @app.get(f"{api}/issue/<key>")
        def get_issue(version: str, key: str) -> Any:
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None:
                    return error(404, ISSUE_NOT_FOUND)
                wanted = _wanted_fields(request.args.getlist("fields"), default_all=True)
                expand = _csv(request.args.getlist("expand"))
                limit = self.issue_changelog_limit if self.is_cloud else None
                return jsonify(
                    self.renderer().issue(ticket, wanted, expand_changelog="changelog" in expand, limit=limit)
                )

        @app.get(f"{api}/issue/<key>/changelog")
        def get_changelog(version: str, key: str) -> Any:
            """Cloud only: the full changelog, paged by startAt/maxResults (at most 100 a page)."""
            if not self.is_cloud:
                return error(404, f"null for uri: {request.url}")
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None:
                    return error(404, ISSUE_NOT_FOUND)
                start = _int(request.args.get("startAt"), 0)
                size = min(max(_int(request.args.get("maxResults"), 100), 1), 100)
                render = self.renderer()
                path = f"{render.base}/rest/api/{version}/issue/{key}/changelog"
                return jsonify(render.changelog_page(ticket, path, start, size))

        @app.route(f"{api}/search/jql", methods=["GET", "POST"])
        def search_jql(version: str) -> Any:
            """Cloud's search: token paging, ids only unless fields are named, and `reconcileIssues` for fresh reads."""
            if not self.is_cloud:
                return error(404, f"null for uri: {request.url}")
            params = _params()
            wanted = _wanted_fields(params.get("fields", []), default_all=False)
            # Jira pages up to 5,000 when only ids or keys are asked for (the library sends "issuekey").
            only_ids = wanted is not None and not (wanted - {"id", "key", "issuekey"})
            cap = 5000 if only_ids else 100
            cap = min(cap, self.search_page_limit or cap)
            size = min(max(_int(_first(params, "maxResults"), 50), 1), cap)
            token = _first(params, "nextPageToken")
            offset = _decode_token(token) if token else 0
            if offset is None:
                return error(400, "The provided next page token is invalid or expired.")
            reconcile = {str(i) for i in _csv(params.get("reconcileIssues", []))}
            if len(reconcile) > 50:
                return error(400, "The number of issues to reconcile must not exceed 50.")
            with self.store.lock:
                try:
                    found = run_jql(_first(params, "jql") or "", self.store.tickets)
                except JqlError as exc:
                    return error(400, *exc.messages)
                expand = _csv(params.get("expand", []))
                render = self.renderer()
                lag_cutoff = time.monotonic() - self.search_lag if self.search_lag else None
                issues = [
                    render.issue(
                        t,
                        wanted,
                        expand_changelog="changelog" in expand,
                        limit=self.search_changelog_limit,
                        visible_before=None if t.id in reconcile else lag_cutoff,
                    )
                    for t in found[offset : offset + size]
                ]
            data: dict[str, Any] = {"issues": issues, "isLast": offset + size >= len(found)}
            if not data["isLast"]:
                data["nextPageToken"] = _encode_token(offset + size)
            return jsonify(data)

        @app.route(f"{api}/search", methods=["GET", "POST"])
        def search(version: str) -> Any:
            """Data Center's search, paged by startAt with a total; Cloud has removed it."""
            if self.is_cloud:
                return error(410, REMOVED_SEARCH_MESSAGE)
            params = _params()
            wanted = _wanted_fields(params.get("fields", []), default_all=True)
            start = max(_int(_first(params, "startAt"), 0), 0)
            size = min(max(_int(_first(params, "maxResults"), 50), 0), self.search_page_limit or 1000)
            with self.store.lock:
                try:
                    found = run_jql(_first(params, "jql") or "", self.store.tickets)
                except JqlError as exc:
                    return error(400, *exc.messages)
                expand = _csv(params.get("expand", []))
                render = self.renderer()
                issues = [
                    render.issue(t, wanted, expand_changelog="changelog" in expand, limit=None)
                    for t in found[start : start + size]
                ]
            return jsonify(
                {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}
            )

        @app.get("/rest/servicedeskapi/request/<key>/approval")
        def get_approvals(key: str) -> Any:
            """A request's approvals, paged by start/limit (at most 50); a ticket without any is not a JSM request."""
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None or not ticket.approvals:
                    response = jsonify(JSM_REQUEST_NOT_FOUND)
                    response.status_code = 404
                    return response
                start = max(_int(request.args.get("start"), 0), 0)
                limit = min(max(_int(request.args.get("limit"), 50), 1), 50)
                return jsonify(self.renderer().approval_page(ticket, key, start, limit))

        @app.errorhandler(404)
        def not_found(_exc: Exception) -> Any:
            return error(404, f"null for uri: {request.url}")

        @app.errorhandler(405)
        def not_allowed(_exc: Exception) -> Any:
            return error(405, "Method Not Allowed")

        return app


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
