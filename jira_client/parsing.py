"""Pure translation of Jira's raw JSON (issue, changelog pages, JSM approvals) into Ticket facts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jira_client.models import JiraUser, JsmApprovalDecision, StatusChange, Ticket

_MISSING_KEY_RE = re.compile(r"^An issue with key '([^']+)' does not exist for field '[^']+'\.$")
_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z")


def parse_datetime(value: str) -> datetime:
    """Parse Jira's `2024-01-18T06:27:50.429+0000` (and ISO-8601 variants) into a UTC datetime.

    Data Center writes times in the server's zone (`…+0200`); converting here, once, means every
    time Countersign compares, stores or prints as "UTC" is UTC.
    """
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).astimezone(UTC)
        except ValueError:
            continue
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"Jira time {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def parse_user(raw: Mapping[str, Any] | None) -> JiraUser | None:
    """A Jira user from Cloud (accountId) or Data Center (name/key) JSON; None when absent."""
    if not raw:
        return None
    return JiraUser(
        account_id=raw.get("accountId") or None,
        name=raw.get("name") or None,
        key=raw.get("key") or None,
        email=raw.get("emailAddress") or None,
        display_name=raw.get("displayName") or None,
    )


def changelog_is_truncated(raw_issue: Mapping[str, Any]) -> bool:
    """True when `expand=changelog` returned fewer histories than the issue has (Jira Cloud)."""
    changelog = raw_issue.get("changelog") or {}
    histories = changelog.get("histories") or []
    total = changelog.get("total")
    return isinstance(total, int) and total > len(histories)


def merge_histories(*sources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Histories from several answers (search + changelog pages), deduplicated by id, oldest first."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for source in sources:
        for history in source:
            by_id.setdefault(str(history.get("id")), history)
    return sorted(by_id.values(), key=lambda h: (parse_datetime(h["created"]), _numeric_id(h)))


def status_changes(histories: Iterable[Mapping[str, Any]]) -> tuple[StatusChange, ...]:
    """The status items of the histories, oldest first; other fields are ignored."""
    changes: list[StatusChange] = []
    for history in merge_histories(histories):
        author = parse_user(history.get("author"))
        at = parse_datetime(history["created"])
        for item in history.get("items") or []:
            if item.get("field") != "status" and item.get("fieldId") != "status":
                continue
            changes.append(
                StatusChange(
                    from_status=item.get("fromString"),
                    from_status_id=_str_or_none(item.get("from")),
                    to_status=item.get("toString") or "",
                    to_status_id=_str_or_none(item.get("to")),
                    author=author,
                    at=at,
                    history_id=str(history.get("id")),
                    raw=dict(history),
                )
            )
    return tuple(changes)


def parse_jsm_approvals(pages: Iterable[Mapping[str, Any]]) -> tuple[JsmApprovalDecision, ...]:
    """All approvals from the pages of `GET /rest/servicedeskapi/request/{key}/approval`."""
    decisions: list[JsmApprovalDecision] = []
    for page in pages:
        for raw in page.get("values") or []:
            approvers = tuple(
                (user, str(entry.get("approverDecision") or "pending"))
                for entry in raw.get("approvers") or []
                if (user := parse_user(entry.get("approver"))) is not None
            )
            decisions.append(
                JsmApprovalDecision(
                    approval_id=str(raw.get("id")),
                    name=str(raw.get("name") or ""),
                    final_decision=str(raw.get("finalDecision") or "pending"),
                    approvers=approvers,
                    completed_at=_parse_date_dto(raw.get("completedDate")),
                    raw=dict(raw),
                    created_at=_parse_date_dto(raw.get("createdDate")),
                )
            )
    return tuple(decisions)


def parse_ticket(
    raw_issue: Mapping[str, Any],
    *,
    base_url: str,
    extra_histories: Iterable[Mapping[str, Any]] = (),
    jsm_pages: Iterable[Mapping[str, Any]] | None = None,
    fetched_at: datetime | None = None,
) -> Ticket:
    """A Ticket from an issue (search or issue endpoint), its extra changelog pages and JSM approvals."""
    fields = raw_issue.get("fields") or {}
    status = fields.get("status") or {}
    histories = merge_histories((raw_issue.get("changelog") or {}).get("histories") or [], extra_histories)
    key = str(raw_issue["key"])
    return Ticket(
        key=key,
        summary=str(fields.get("summary") or ""),
        status=str(status.get("name") or ""),
        status_id=_str_or_none(status.get("id")),
        issue_type=str((fields.get("issuetype") or {}).get("name") or ""),
        url=f"{base_url.rstrip('/')}/browse/{key}",
        status_changes=status_changes(histories),
        jsm_approvals=None if jsm_pages is None else parse_jsm_approvals(jsm_pages),
        fetched_at=fetched_at,
        raw=dict(raw_issue),
    )


def missing_keys_from_errors(error_messages: Iterable[str]) -> set[str] | None:
    """Keys named by Jira's "An issue with key 'X' does not exist" 400; None if any message is something else."""
    keys: set[str] = set()
    for message in error_messages:
        match = _MISSING_KEY_RE.match(message.strip())
        if match is None:
            return None
        keys.add(match.group(1).upper())
    return keys or None


def _parse_date_dto(raw: Mapping[str, Any] | None) -> datetime | None:
    if not raw:
        return None
    if raw.get("epochMillis") is not None:
        return datetime.fromtimestamp(int(raw["epochMillis"]) / 1000, tz=UTC)
    for name in ("jira", "iso8601"):
        if raw.get(name):
            return parse_datetime(str(raw[name]))
    return None


def _numeric_id(history: Mapping[str, Any]) -> int:
    try:
        return int(history.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
