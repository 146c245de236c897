"""A Jira server (Cloud or Data Center flavour) speaking the real REST paths and JSON shapes, for tests and demos."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from jira_client.models import JiraUser
from simulators.http import Faults, RecordingMiddleware, ServerHandle, serve
from simulators.jira.jql import JqlError, run_jql
from simulators.jira.state import JiraState, _Approval, _History, _Ticket, _User, chronological

log = logging.getLogger(__name__)

JIRA_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

# Cloud's answer on the removed search endpoints (CHANGE-2046).
REMOVED_SEARCH_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."

_ALL_FIELDS = ("summary", "status", "issuetype", "project", "reporter", "created", "updated")

_FIELD_LIST = [
    {
        "id": fid,
        "key": fid,
        "name": name,
        "custom": False,
        "orderable": fid not in ("created", "updated", "status"),
        "navigable": True,
        "searchable": True,
        "clauseNames": clauses,
        "schema": {"type": typ, "system": fid},
    }
    for fid, name, clauses, typ in [
        ("summary", "Summary", ["summary"], "string"),
        ("status", "Status", ["status"], "status"),
        ("issuetype", "Issue Type", ["issuetype", "type"], "issuetype"),
        ("project", "Project", ["project"], "project"),
        ("reporter", "Reporter", ["reporter"], "user"),
        ("assignee", "Assignee", ["assignee"], "user"),
        ("created", "Created", ["created", "createdDate"], "datetime"),
        ("updated", "Updated", ["updated", "updatedDate"], "datetime"),
        ("labels", "Labels", ["labels"], "array"),
        ("description", "Description", ["description"], "string"),
    ]
] + [
    {
        "id": "issuekey",
        "key": "issuekey",
        "name": "Key",
        "custom": False,
        "orderable": False,
        "navigable": True,
        "searchable": False,
        "clauseNames": ["id", "issue", "issuekey", "key"],
    },
    {
        "id": "customfield_10010",
        "key": "customfield_10010",
        "name": "Request Type",
        "custom": True,
        "orderable": True,
        "navigable": True,
        "searchable": True,
        "clauseNames": ["cf[10010]", "Request Type"],
        "schema": {
            "type": "sd-customerrequesttype",
            "custom": "com.atlassian.servicedesk:vp-origin",
            "customId": 10010,
        },
    },
]


def jira_time(at: datetime) -> str:
    """Format like Jira: 2024-01-18T06:27:50.429+0000."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


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
        self.recorder = RecordingMiddleware(self.app, self.faults, _error_body)
        self.wsgi = self.recorder

    @property
    def is_cloud(self) -> bool:
        return self.deployment_type == "Cloud"

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
            self._send_webhook(payload)

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
            ticket = self.store.ticket(key)
            last = ticket.histories[-1] if ticket.histories else None
            base = self._base()
            actor = self._user_json(self.store.users[last.author], base) if last and last.author else None
            return {
                "timestamp": int(time.time() * 1000),
                "webhookEvent": "jira:issue_updated",
                "issue_event_type_name": "issue_generic",
                "user": actor,
                "issue": {
                    "id": ticket.id,
                    "self": f"{base}/rest/api/2/{ticket.id}",
                    "key": ticket.key,
                    "fields": self._fields(ticket, ticket.status, None, base),
                },
                "changelog": {"id": last.id, "items": last.items} if last else {"id": None, "items": []},
            }

    def state(self) -> dict[str, Any]:
        """Every ticket as the issue endpoint shows it, with its approvals."""
        with self.store.lock:
            base = self._base()
            return {
                "deploymentType": self.deployment_type,
                "tickets": {
                    key: {
                        **self._issue_json(t, None, expand_changelog=True, limit=None, base=base),
                        "approvals": [self._approval_json(a, base) for a in t.approvals],
                    }
                    for key, t in sorted(self.store.tickets.items())
                },
            }

    # ----- internals: state -----

    def _base(self) -> str:
        return self.url or "http://jira.example.invalid"

    def _send_webhook(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": str(uuid.uuid4())}
        if self.webhook_secret:
            digest = hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature"] = f"sha256={digest}"
        try:
            response = requests.post(self.webhook_url or "", data=body, headers=headers, timeout=5)
            log.debug("jira_sim.webhook_sent status=%s", response.status_code)
        except requests.RequestException as exc:
            log.warning("jira_sim.webhook_failed url=%s error=%s", self.webhook_url, exc)

    # ----- internals: JSON shapes -----

    def _user_json(self, user: _User, base: str) -> dict[str, Any]:
        avatars = {size: f"{base}/secure/useravatar?size={size}" for size in ("48x48", "24x24", "16x16", "32x32")}
        if self.is_cloud:
            data: dict[str, Any] = {
                "self": f"{base}/rest/api/2/user?accountId={user.account_id}",
                "accountId": user.account_id,
                "accountType": "atlassian",
                "avatarUrls": avatars,
                "displayName": user.display_name,
                "active": True,
                "timeZone": "Etc/UTC",
            }
            if user.email:  # Cloud leaves it out when the user hides it
                data["emailAddress"] = user.email
            return data
        name = user.name or user.account_id
        return {
            "self": f"{base}/rest/api/2/user?username={name}",
            "name": name,
            "key": user.key,
            "emailAddress": user.email or "",
            "avatarUrls": avatars,
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
        }

    def _status_json(self, name: str, base: str) -> dict[str, Any]:
        sid = self.store.status_id(name)
        if name in ("Done", "Closed", "Declined"):
            category = {"id": 3, "key": "done", "colorName": "green", "name": "Done"}
        elif name in ("To Do", "Open"):
            category = {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"}
        else:
            category = {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"}
        category["self"] = f"{base}/rest/api/2/statuscategory/{category['id']}"
        return {
            "self": f"{base}/rest/api/2/status/{sid}",
            "description": "",
            "iconUrl": f"{base}/images/icons/statuses/generic.png",
            "name": name,
            "id": sid,
            "statusCategory": category,
        }

    def _fields(self, ticket: _Ticket, status: str, wanted: set[str] | None, base: str) -> dict[str, Any]:
        project_key = ticket.key.rsplit("-", 1)[0]
        project_id = str(10000 + sum(map(ord, project_key)) % 1000)
        type_ids = {"Story": "10001", "Task": "10002", "Bug": "10004", "Epic": "10000"}
        fields: dict[str, Any] = {
            "summary": ticket.summary,
            "status": self._status_json(status, base),
            "issuetype": {
                "self": f"{base}/rest/api/2/issuetype/{type_ids.get(ticket.issue_type, '10005')}",
                "id": type_ids.get(ticket.issue_type, "10005"),
                "description": "",
                "iconUrl": f"{base}/images/icons/issuetypes/story.svg",
                "name": ticket.issue_type,
                "subtask": False,
            },
            "project": {
                "self": f"{base}/rest/api/2/project/{project_id}",
                "id": project_id,
                "key": project_key,
                "name": project_key.title(),
                "projectTypeKey": "software",
            },
            "reporter": self._user_json(self.store.users[ticket.reporter], base) if ticket.reporter else None,
            "created": jira_time(ticket.created),
            "updated": jira_time(ticket.updated),
        }
        if wanted is None:
            return fields
        return {k: v for k, v in fields.items() if k in wanted}

    def _history_json(self, history: _History, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {"id": history.id, "created": jira_time(history.created), "items": history.items}
        if history.author:
            data["author"] = self._user_json(self.store.users[history.author], base)
        return data

    def _issue_json(
        self,
        ticket: _Ticket,
        wanted: set[str] | None,
        *,
        expand_changelog: bool,
        limit: int | None,
        base: str,
        visible_before: float | None = None,
    ) -> dict[str, Any]:
        if visible_before is None:
            histories, status = ticket.histories, ticket.status
        else:
            # Eventually consistent search: recent writes are not visible yet.
            histories, status = ticket.as_seen_before(visible_before)
        data: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": ticket.id,
            "self": f"{base}/rest/api/2/issue/{ticket.id}",
            "key": ticket.key,
        }
        if wanted is None or wanted - {"id", "key"}:
            data["fields"] = self._fields(ticket, status, wanted, base)
        if expand_changelog:
            ordered = chronological(histories)
            shown = ordered[-limit:] if limit is not None and len(ordered) > limit else ordered
            data["changelog"] = {
                "startAt": 0,
                "maxResults": len(shown),
                "total": len(ordered),
                "histories": [self._history_json(h, base) for h in shown],
            }
        return data

    def _approval_json(self, approval: _Approval, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": approval.id,
            "name": approval.name,
            "finalDecision": approval.final_decision,
            "canAnswerApproval": False,
            "approvers": [
                {"approver": self._jsm_user_json(self.store.users[who], base), "approverDecision": decision}
                for who, decision in approval.approvers
            ],
            "createdDate": _date_dto(approval.created),
            "_links": {"self": f"{base}/rest/servicedeskapi/request/approval/{approval.id}"},
        }
        if approval.completed is not None:
            data["completedDate"] = _date_dto(approval.completed)
        return data

    def _jsm_user_json(self, user: _User, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "accountId": user.account_id,
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
            "_links": {"self": f"{base}/rest/api/2/user?accountId={user.account_id}"},
        }
        if user.email:
            data["emailAddress"] = user.email
        if not self.is_cloud:
            data["name"] = user.name or user.account_id
            data["key"] = user.key
        return data

    # ----- internals: HTTP -----

    def _build_app(self) -> Flask:
        app = Flask("jira_simulator")
        api = "/rest/api/<any('2','3'):version>"

        @app.before_request
        def check_credentials() -> Any:
            if request.path.startswith("/rest/") and self.bad_credentials:
                return _error(401, "Client must be authenticated to access this resource.")
            return None

        @app.get("/_sim/state")
        def sim_state() -> Any:
            return jsonify(self.state())

        @app.get(f"{api}/serverInfo")
        def server_info(version: str) -> Any:
            cloud = self.is_cloud
            return jsonify(
                {
                    "baseUrl": self._base(),
                    "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.4",
                    "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 4],
                    "deploymentType": self.deployment_type,
                    "buildNumber": 100279 if cloud else 9120004,
                    "buildDate": "2025-06-02T00:00:00.000+0000",
                    "serverTime": jira_time(datetime.now(UTC)),
                    "scmInfo": "1f51473f5c7b75c1a69a0090f4832cdc5053702a",
                    "serverTitle": "Jira (simulated)",
                    "defaultLocale": {"locale": "en_US"},
                    "serverTimeZone": "Etc/UTC",
                }
            )

        @app.get(f"{api}/field")
        def fields(version: str) -> Any:
            return jsonify(_FIELD_LIST)

        @app.get(f"{api}/myself")
        def myself(version: str) -> Any:
            bot = _User("557058:countersign-bot", "Countersign", None, "countersign", "JIRAUSER9999")
            return jsonify(self._user_json(bot, self._base()))

        @app.get(f"{api}/issue/<key>")
        def get_issue(version: str, key: str) -> Any:
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None:
                    return _error(404, ISSUE_NOT_FOUND)
                wanted = _wanted_fields(_multi(request.args, "fields"), default_all=True)
                expand = _csv(_multi(request.args, "expand"))
                limit = self.issue_changelog_limit if self.is_cloud else None
                return jsonify(
                    self._issue_json(
                        ticket, wanted, expand_changelog="changelog" in expand, limit=limit, base=self._base()
                    )
                )

        @app.get(f"{api}/issue/<key>/changelog")
        def get_changelog(version: str, key: str) -> Any:
            if not self.is_cloud:
                return _error(404, f"null for uri: {request.url}")
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None:
                    return _error(404, ISSUE_NOT_FOUND)
                start = _int(request.args.get("startAt"), 0)
                size = min(max(_int(request.args.get("maxResults"), 100), 1), 100)
                ordered = chronological(ticket.histories)
                page = ordered[start : start + size]
                base = self._base()
                path = f"{base}/rest/api/{version}/issue/{key}/changelog"
                data: dict[str, Any] = {
                    "self": f"{path}?startAt={start}&maxResults={size}",
                    "maxResults": size,
                    "startAt": start,
                    "total": len(ordered),
                    "isLast": start + size >= len(ordered),
                    "values": [self._history_json(h, base) for h in page],
                }
                if not data["isLast"]:
                    data["nextPage"] = f"{path}?&startAt={start + size}&maxResults={size}"
                return jsonify(data)

        @app.route(f"{api}/search/jql", methods=["GET", "POST"])
        def search_jql(version: str) -> Any:
            if not self.is_cloud:
                return _error(404, f"null for uri: {request.url}")
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
                return _error(400, "The provided next page token is invalid or expired.")
            reconcile = {str(i) for i in _csv(params.get("reconcileIssues", []))}
            if len(reconcile) > 50:
                return _error(400, "The number of issues to reconcile must not exceed 50.")
            with self.store.lock:
                found = self._run_jql(_first(params, "jql") or "")
                if isinstance(found, Response):
                    return found
                expand = _csv(params.get("expand", []))
                base = self._base()
                lag_cutoff = time.monotonic() - self.search_lag if self.search_lag else None
                page = found[offset : offset + size]
                issues = [
                    self._issue_json(
                        t,
                        wanted,
                        expand_changelog="changelog" in expand,
                        limit=self.search_changelog_limit,
                        base=base,
                        visible_before=None if t.id in reconcile else lag_cutoff,
                    )
                    for t in page
                ]
            data: dict[str, Any] = {"issues": issues, "isLast": offset + size >= len(found)}
            if not data["isLast"]:
                data["nextPageToken"] = _encode_token(offset + size)
            return jsonify(data)

        @app.route(f"{api}/search", methods=["GET", "POST"])
        def search(version: str) -> Any:
            if self.is_cloud:
                return _error(410, REMOVED_SEARCH_MESSAGE)
            params = _params()
            wanted = _wanted_fields(params.get("fields", []), default_all=True)
            start = max(_int(_first(params, "startAt"), 0), 0)
            size = min(max(_int(_first(params, "maxResults"), 50), 0), self.search_page_limit or 1000)
            with self.store.lock:
                found = self._run_jql(_first(params, "jql") or "")
                if isinstance(found, Response):
                    return found
                expand = _csv(params.get("expand", []))
                base = self._base()
                issues = [
                    self._issue_json(t, wanted, expand_changelog="changelog" in expand, limit=None, base=base)
                    for t in found[start : start + size]
                ]
            return jsonify(
                {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found), "issues": issues}
            )

        @app.get("/rest/servicedeskapi/request/<key>/approval")
        def approvals(key: str) -> Any:
            with self.store.lock:
                ticket = self.store.find(key)
                if ticket is None or not ticket.approvals:
                    return (
                        jsonify(
                            {
                                "errorMessage": "The request either does not exist or you do not have permission.",
                                "i18nErrorMessage": {
                                    "i18nKey": "sd.customer.request.error.permission.view",
                                    "parameters": [],
                                },
                            }
                        ),
                        404,
                    )
                start = max(_int(request.args.get("start"), 0), 0)
                limit = min(max(_int(request.args.get("limit"), 50), 1), 50)
                page = ticket.approvals[start : start + limit]
                base = self._base()
                return jsonify(
                    {
                        "_expands": [],
                        "size": len(page),
                        "start": start,
                        "limit": limit,
                        "isLastPage": start + limit >= len(ticket.approvals),
                        "_links": {
                            "base": f"{base}/rest/servicedeskapi",
                            "context": "",
                            "self": f"{base}/rest/servicedeskapi/request/{key}/approval",
                        },
                        "values": [self._approval_json(a, base) for a in page],
                    }
                )

        @app.errorhandler(404)
        def not_found(_exc: Exception) -> Any:
            return _error(404, f"null for uri: {request.url}")

        @app.errorhandler(405)
        def not_allowed(_exc: Exception) -> Any:
            return _error(405, "Method Not Allowed")

        return app

    def _run_jql(self, jql: str) -> list[_Ticket] | Response:
        try:
            return run_jql(jql, self.store.tickets)
        except JqlError as exc:
            return _error(400, *exc.messages)


# ----- helpers -----


def _error_body(status: int) -> dict[str, Any]:
    messages = {
        429: "Rate limit exceeded.",
        500: "Internal server error.",
        502: "Bad gateway.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }
    return {"errorMessages": [messages.get(status, f"HTTP {status}")], "errors": {}}


def _error(status: int, *messages: str) -> Response:
    response = jsonify({"errorMessages": list(messages), "errors": {}})
    response.status_code = status
    return response


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


def _multi(args: Any, name: str) -> list[str]:
    return list(args.getlist(name))


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
    return names - {f"-{n}" for n in _ALL_FIELDS}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "n": uuid.uuid4().hex[:8]}).encode()).decode()


def _decode_token(token: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        return None


def _date_dto(at: datetime) -> dict[str, Any]:
    at = at.astimezone(UTC)
    return {
        "iso8601": at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "jira": jira_time(at),
        "friendly": at.strftime("%d/%b/%y %I:%M %p"),
        "epochMillis": int(at.timestamp() * 1000),
    }
