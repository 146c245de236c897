"""Jira's JSON: users, statuses, fields, issues, changelogs, JSM approvals, date DTOs and error bodies."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from flask import Response, jsonify

from simulators.jira.state import JiraState, _Approval, _History, _Ticket, _User, chronological

JIRA_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

# Cloud's answer on the removed search endpoints (CHANGE-2046).
REMOVED_SEARCH_MESSAGE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
JSM_REQUEST_NOT_FOUND = {
    "errorMessage": "The request either does not exist or you do not have permission.",
    "i18nErrorMessage": {"i18nKey": "sd.customer.request.error.permission.view", "parameters": []},
}

# The fields an issue can carry here; a search's "-summary" style exclusions are among these.
ISSUE_FIELDS = ("summary", "status", "issuetype", "project", "reporter", "created", "updated")

_ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
_ISSUE_TYPE_IDS = {"Story": "10001", "Task": "10002", "Bug": "10004", "Epic": "10000"}
_AVATAR_SIZES = ("48x48", "24x24", "16x16", "32x32")

FIELD_LIST: list[dict[str, Any]] = [
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


def jira_time(at: datetime, zone: tzinfo = UTC) -> str:
    """Format like Jira: 2024-01-18T06:27:50.429+0000, or in the server's zone (Data Center: +0200)."""
    at = at.astimezone(zone)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}" + at.strftime("%z")


def date_dto(at: datetime, zone: tzinfo = UTC) -> dict[str, Any]:
    """JSM's DateDTO: one instant in the four spellings the Service Management API gives it."""
    at = at.astimezone(zone)
    return {
        "iso8601": at.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "jira": jira_time(at, zone),
        "friendly": at.strftime("%d/%b/%y %I:%M %p"),
        "epochMillis": int(at.timestamp() * 1000),
    }


def error(status: int, *messages: str) -> Response:
    """A Jira REST error: `{"errorMessages": [...], "errors": {}}` with `status`."""
    response = jsonify({"errorMessages": list(messages), "errors": {}})
    response.status_code = status
    return response


def fault_body(status: int) -> dict[str, Any]:
    """The body of an injected fault, in the same error shape as Jira's own failures."""
    messages = {
        429: "Rate limit exceeded.",
        500: "Internal server error.",
        502: "Bad gateway.",
        503: "Service unavailable.",
        504: "Gateway timeout.",
    }
    return {"errorMessages": [messages.get(status, f"HTTP {status}")], "errors": {}}


def server_info(deployment_type: str, base: str, now: datetime, zone: tzinfo = UTC) -> dict[str, Any]:
    cloud = deployment_type == "Cloud"
    return {
        "baseUrl": base,
        "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.4",
        "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 4],
        "deploymentType": deployment_type,
        "buildNumber": 100279 if cloud else 9120004,
        "buildDate": "2025-06-02T00:00:00.000+0000",
        "serverTime": jira_time(now, zone),
        "scmInfo": "1f51473f5c7b75c1a69a0090f4832cdc5053702a",
        "serverTitle": "Jira (simulated)",
        "defaultLocale": {"locale": "en_US"},
        "serverTimeZone": _zone_name(zone, now),
    }


def _zone_name(zone: tzinfo, now: datetime) -> str:
    """An IANA name when the zone has one (zoneinfo), else Etc/GMT-style for a fixed offset."""
    key = getattr(zone, "key", None)
    if key:
        return str(key)
    offset = now.astimezone(zone).utcoffset()
    hours = int(offset.total_seconds() // 3600) if offset else 0
    return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"


class Renderer:
    """The JSON one flavour of Jira gives for the store's objects, with links under `base`.

    Callers hold the store's lock: rendering reads users and may give a new status its id.
    """

    def __init__(self, store: JiraState, *, cloud: bool, base: str, zone: tzinfo = UTC) -> None:
        self.store = store
        self.cloud = cloud
        self.base = base
        self.zone = zone  # the zone times are written in: UTC on Cloud here, the server's zone on Data Center

    def user(self, user: _User) -> dict[str, Any]:
        """A platform API user: Cloud identifies people by account id, Data Center by username and key."""
        base = self.base
        avatars = {size: f"{base}/secure/useravatar?size={size}" for size in _AVATAR_SIZES}
        if self.cloud:
            data: dict[str, Any] = {
                "self": f"{base}/rest/api/2/user?accountId={user.account_id}",
                "accountId": user.account_id,
                "accountType": "atlassian",
                "avatarUrls": avatars,
                "displayName": user.display_name,
                "active": True,
                "timeZone": "Etc/UTC",
            }
            if user.visible_email:  # Cloud leaves it out when the user hides it
                data["emailAddress"] = user.visible_email
            return data
        name = user.name or user.account_id
        data = {
            "self": f"{base}/rest/api/2/user?username={name}",
            "name": name,
            "key": user.key,
            "avatarUrls": avatars,
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
        }
        if not user.hide_email:  # Data Center's "hidden" e-mail visibility leaves it out too
            data["emailAddress"] = user.email or ""
        return data

    def jsm_user(self, user: _User) -> dict[str, Any]:
        """A Service Management API user, which has an account id on both flavours."""
        data: dict[str, Any] = {
            "accountId": user.account_id,
            "displayName": user.display_name,
            "active": True,
            "timeZone": "Etc/UTC",
            "_links": {"self": f"{self.base}/rest/api/2/user?accountId={user.account_id}"},
        }
        if user.visible_email:
            data["emailAddress"] = user.visible_email
        if not self.cloud:
            data["name"] = user.name or user.account_id
            data["key"] = user.key
        return data

    def status(self, name: str) -> dict[str, Any]:
        base = self.base
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

    def fields(self, ticket: _Ticket, status: str, wanted: set[str] | None) -> dict[str, Any]:
        """The issue's `fields`, showing `status` (which a lagging search may hold back); None means all."""
        base = self.base
        project_key = ticket.key.rsplit("-", 1)[0]
        project_id = str(10000 + sum(map(ord, project_key)) % 1000)
        type_id = _ISSUE_TYPE_IDS.get(ticket.issue_type, "10005")
        fields: dict[str, Any] = {
            "summary": ticket.summary,
            "status": self.status(status),
            "issuetype": {
                "self": f"{base}/rest/api/2/issuetype/{type_id}",
                "id": type_id,
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
            "reporter": self.user(self.store.users[ticket.reporter]) if ticket.reporter else None,
            "created": jira_time(ticket.created, self.zone),
            "updated": jira_time(ticket.updated, self.zone),
        }
        if wanted is None:
            return fields
        return {k: v for k, v in fields.items() if k in wanted}

    def history(self, history: _History) -> dict[str, Any]:
        created = jira_time(history.created, self.zone)
        data: dict[str, Any] = {"id": history.id, "created": created, "items": history.items}
        if history.author:
            data["author"] = self.user(self.store.users[history.author])
        return data

    def issue(
        self,
        ticket: _Ticket,
        wanted: set[str] | None,
        *,
        expand_changelog: bool,
        limit: int | None,
        visible_before: float | None = None,
    ) -> dict[str, Any]:
        """An issue as the issue and search endpoints give it.

        `limit` keeps only the newest histories of an expanded changelog, as Cloud truncates it;
        `visible_before` hides what was written after that monotonic time (eventually consistent search).
        """
        if visible_before is None:
            histories, status = ticket.histories, ticket.status
        else:
            histories, status = ticket.as_seen_before(visible_before)
        data: dict[str, Any] = {
            "expand": _ISSUE_EXPAND,
            "id": ticket.id,
            "self": f"{self.base}/rest/api/2/issue/{ticket.id}",
            "key": ticket.key,
        }
        if wanted is None or wanted - {"id", "key"}:
            data["fields"] = self.fields(ticket, status, wanted)
        if expand_changelog:
            ordered = chronological(histories)
            shown = ordered[-limit:] if limit is not None and len(ordered) > limit else ordered
            data["changelog"] = {
                "startAt": 0,
                "maxResults": len(shown),
                "total": len(ordered),
                "histories": [self.history(h) for h in shown],
            }
        return data

    def changelog_page(self, ticket: _Ticket, path: str, start: int, size: int) -> dict[str, Any]:
        """One page of Cloud's `/issue/{key}/changelog`, whose links repeat the path the client asked for."""
        ordered = chronological(ticket.histories)
        data: dict[str, Any] = {
            "self": f"{path}?startAt={start}&maxResults={size}",
            "maxResults": size,
            "startAt": start,
            "total": len(ordered),
            "isLast": start + size >= len(ordered),
            "values": [self.history(h) for h in ordered[start : start + size]],
        }
        if not data["isLast"]:
            data["nextPage"] = f"{path}?&startAt={start + size}&maxResults={size}"
        return data

    def approval(self, approval: _Approval) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": approval.id,
            "name": approval.name,
            "finalDecision": approval.final_decision,
            "canAnswerApproval": False,
            "approvers": [
                {"approver": self.jsm_user(self.store.users[who]), "approverDecision": decision}
                for who, decision in approval.approvers
            ],
            "createdDate": date_dto(approval.created, self.zone),
            "_links": {"self": f"{self.base}/rest/servicedeskapi/request/approval/{approval.id}"},
        }
        if approval.completed is not None:
            data["completedDate"] = date_dto(approval.completed, self.zone)
        return data

    def approval_page(self, ticket: _Ticket, key: str, start: int, limit: int) -> dict[str, Any]:
        """One page of `/rest/servicedeskapi/request/{key}/approval`, in JSM's PagedDTO envelope."""
        page = ticket.approvals[start : start + limit]
        base = self.base
        return {
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
            "values": [self.approval(a) for a in page],
        }
