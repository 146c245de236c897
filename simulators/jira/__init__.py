"""A Jira server (Cloud or Data Center flavour) speaking the real REST paths and JSON shapes, for tests and demos."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from jira_client.models import JiraUser
from simulators.http import Faults, RecordingMiddleware, ServerHandle, serve

log = logging.getLogger(__name__)

JIRA_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

# Cloud's answer on the removed search endpoints (CHANGE-2046).
REMOVED_SEARCH_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."

_KNOWN_STATUS_IDS = {
    "To Do": "10000",
    "Open": "1",
    "In Progress": "3",
    "In Review": "10002",
    "Approved": "10003",
    "Done": "10001",
    "Closed": "6",
    "Declined": "10004",
}
_KEY_RE = re.compile(r"^([A-Z][A-Z0-9_]*)-(\d+)$")
_JQL_RE = re.compile(
    r"""^\s*(?P<field>key|issuekey)\s*
        (?:in\s*\((?P<list>[^)]*)\)|=\s*(?P<one>"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))\s*
        (?:order\s+by\s+(?:key|issuekey)(?:\s+(?P<dir>asc|desc))?)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
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


@dataclass
class _User:
    account_id: str
    display_name: str
    email: str | None
    name: str | None
    key: str


@dataclass
class _History:
    id: str
    author: str | None  # account id
    created: datetime
    items: list[dict[str, Any]]
    recorded: float  # monotonic time it was written, for the search-lag switch


@dataclass
class _Approval:
    id: str
    name: str
    final_decision: str
    approvers: list[tuple[str, str]]
    created: datetime
    completed: datetime | None


@dataclass
class _Ticket:
    id: str
    key: str
    summary: str
    initial_status: str
    status: str
    issue_type: str
    reporter: str | None
    created: datetime
    updated: datetime
    histories: list[_History] = field(default_factory=list)
    approvals: list[_Approval] = field(default_factory=list)


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
        self._lock = threading.RLock()
        self._users: dict[str, _User] = {}
        self._tickets: dict[str, _Ticket] = {}
        self._status_ids: dict[str, str] = dict(_KNOWN_STATUS_IDS)
        self._next_issue_id = 10000
        self._next_history_id = 100000
        self._next_approval_id = 1
        self._next_user_key = 10000
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
        with self._lock:
            key = f"JIRAUSER{self._next_user_key}"
            self._next_user_key += 1
            user = _User(account_id, display_name, email, name, key)
            self._users[account_id] = user
            if name:
                self._users[name] = user
        if self.is_cloud:
            return JiraUser(account_id=account_id, email=email, display_name=display_name)
        return JiraUser(name=name or account_id, key=key, email=email, display_name=display_name)

    def add_ticket(
        self,
        key: str,
        summary: str = "",
        status: str = "To Do",
        issue_type: str = "Story",
        reporter: str | None = None,
    ) -> None:
        if not _KEY_RE.match(key):
            raise ValueError(f"{key!r} is not a Jira issue key like PAY-12")
        now = datetime.now(UTC)
        with self._lock:
            if reporter is not None:
                self._user(reporter)  # fail early on a typo
            self._status_id(status)
            ticket = _Ticket(
                id=str(self._next_issue_id),
                key=key,
                summary=summary or f"Work for {key}",
                initial_status=status,
                status=status,
                issue_type=issue_type,
                reporter=self._user(reporter).account_id if reporter else None,
                created=now,
                updated=now,
            )
            self._next_issue_id += 1
            self._tickets[key] = ticket

    def transition(self, key: str, to_status: str, by: str | None, at: datetime | None = None) -> None:
        with self._lock:
            ticket = self._ticket(key)
            item = {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": self._status_id(ticket.status),
                "fromString": ticket.status,
                "to": self._status_id(to_status),
                "toString": to_status,
            }
            self._append_history(ticket, item, by, at)
            ticket.status = to_status
            payload = self.issue_updated_payload(key) if self.webhook_url else None
        if payload is not None:
            self._send_webhook(payload)

    def add_history(
        self, key: str, field: str, from_string: str | None, to_string: str | None, by: str | None, at: datetime
    ) -> None:
        """Record a non-status change (noise the client must skip)."""
        with self._lock:
            ticket = self._ticket(key)
            item = {
                "field": field,
                "fieldtype": "jira",
                "fieldId": field,
                "from": None,
                "fromString": from_string,
                "to": None,
                "toString": to_string,
            }
            self._append_history(ticket, item, by, at)

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
        for decision in [final_decision, *(d for _, d in approvers)]:
            if decision not in ("approved", "declined", "pending"):
                raise ValueError(f"decision must be approved, declined or pending, not {decision!r}")
        with self._lock:
            ticket = self._ticket(key)
            approval = _Approval(
                id=str(self._next_approval_id),
                name=name,
                final_decision=final_decision,
                approvers=[(self._user(u).account_id, d) for u, d in approvers],
                created=created_at or ticket.created,
                completed=completed_at,
            )
            self._next_approval_id += 1
            ticket.approvals.append(approval)
            return approval.id

    def delete_ticket(self, key: str) -> None:
        with self._lock:
            self._tickets.pop(key, None)

    def issue_updated_payload(self, key: str) -> dict[str, Any]:
        """The `jira:issue_updated` webhook body for the ticket's latest change."""
        with self._lock:
            ticket = self._ticket(key)
            last = ticket.histories[-1] if ticket.histories else None
            base = self._base()
            actor = self._user_json(self._users[last.author], base) if last and last.author else None
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
        with self._lock:
            base = self._base()
            return {
                "deploymentType": self.deployment_type,
                "tickets": {
                    key: {
                        **self._issue_json(t, None, expand_changelog=True, limit=None, base=base),
                        "approvals": [self._approval_json(a, base) for a in t.approvals],
                    }
                    for key, t in sorted(self._tickets.items())
                },
            }

    # ----- internals: state -----

    def _base(self) -> str:
        return self.url or "http://jira.example.invalid"

    def _ticket(self, key: str) -> _Ticket:
        try:
            return self._tickets[key]
        except KeyError:
            raise KeyError(f"no ticket {key!r} in the simulator") from None

    def _user(self, who: str | None) -> _User:
        if who is None:
            raise KeyError("no user given")
        try:
            return self._users[who]
        except KeyError:
            raise KeyError(f"no user {who!r} in the simulator; add_user() first") from None

    def _status_id(self, name: str) -> str:
        if name not in self._status_ids:
            self._status_ids[name] = str(10100 + len(self._status_ids))
        return self._status_ids[name]

    def _append_history(self, ticket: _Ticket, item: dict[str, Any], by: str | None, at: datetime | None) -> None:
        author = self._user(by).account_id if by is not None else None
        created = at or datetime.now(UTC)
        if created.tzinfo is None:
            raise ValueError("`at` must be timezone-aware")
        history = _History(str(self._next_history_id), author, created, [item], time.monotonic())
        self._next_history_id += 1
        ticket.histories.append(history)
        ticket.updated = max(ticket.updated, created)

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
        sid = self._status_id(name)
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
            "reporter": self._user_json(self._users[ticket.reporter], base) if ticket.reporter else None,
            "created": jira_time(ticket.created),
            "updated": jira_time(ticket.updated),
        }
        if wanted is None:
            return fields
        return {k: v for k, v in fields.items() if k in wanted}

    def _history_json(self, history: _History, base: str) -> dict[str, Any]:
        data: dict[str, Any] = {"id": history.id, "created": jira_time(history.created), "items": history.items}
        if history.author:
            data["author"] = self._user_json(self._users[history.author], base)
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
        histories = ticket.histories
        status = ticket.status
        if visible_before is not None:
            # Eventually consistent search: recent writes are not visible yet.
            histories = [h for h in histories if h.recorded <= visible_before]
            status = ticket.initial_status
            for h in histories:
                for item in h.items:
                    if item["field"] == "status":
                        status = item["toString"]
        data: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": ticket.id,
            "self": f"{base}/rest/api/2/issue/{ticket.id}",
            "key": ticket.key,
        }
        if wanted is None or wanted - {"id", "key"}:
            data["fields"] = self._fields(ticket, status, wanted, base)
        if expand_changelog:
            ordered = sorted(histories, key=lambda h: h.created)
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
                {"approver": self._jsm_user_json(self._users[who], base), "approverDecision": decision}
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
            with self._lock:
                ticket = self._tickets.get(key) or self._by_id(key)
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
            with self._lock:
                ticket = self._tickets.get(key) or self._by_id(key)
                if ticket is None:
                    return _error(404, ISSUE_NOT_FOUND)
                start = _int(request.args.get("startAt"), 0)
                size = min(max(_int(request.args.get("maxResults"), 100), 1), 100)
                ordered = sorted(ticket.histories, key=lambda h: h.created)
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
            with self._lock:
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
            with self._lock:
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
            with self._lock:
                ticket = self._tickets.get(key) or self._by_id(key)
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

    def _by_id(self, key: str) -> _Ticket | None:
        return next((t for t in self._tickets.values() if t.id == key), None)

    def _run_jql(self, jql: str) -> list[_Ticket] | Response:
        """Run the small JQL subset the gateway uses; errors read like Jira's."""
        match = _JQL_RE.match(jql)
        if not match:
            return _error(400, f"Error in the JQL Query: the simulator cannot parse {jql!r}.")
        raw = match.group("list") if match.group("list") is not None else match.group("one")
        keys = [k.strip().strip("'\"").upper() for k in raw.split(",") if k.strip()]
        if not keys:
            return _error(400, "Error in the JQL Query: Expecting a value but got ')'.")
        field_name = match.group("field").lower()
        missing = [k for k in keys if k not in self._tickets]
        if missing:
            return _error(400, *(f"An issue with key '{k}' does not exist for field '{field_name}'." for k in missing))
        tickets: list[_Ticket] = []
        seen: set[str] = set()
        for k in keys:
            if k not in seen:
                seen.add(k)
                tickets.append(self._tickets[k])

        def order(t: _Ticket) -> tuple[str, int]:
            project, number = t.key.rsplit("-", 1)
            return project, int(number)

        return sorted(tickets, key=order, reverse=(match.group("dir") or "").lower() == "desc")


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
