"""The JQL the gateway sends (`key in (...)`, `key = X`, optional `order by key`), answered with Jira's errors."""

from __future__ import annotations

import re
from collections.abc import Mapping

from simulators.jira.state import _Ticket

_JQL_RE = re.compile(
    r"""^\s*(?P<field>key|issuekey)\s*
        (?:in\s*\((?P<list>[^)]*)\)|=\s*(?P<one>"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))\s*
        (?:order\s+by\s+(?:key|issuekey)(?:\s+(?P<dir>asc|desc))?)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


class JqlError(Exception):
    """A query Jira would refuse with 400; `messages` are its `errorMessages`."""

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)
        self.messages = list(messages)


def run_jql(jql: str, tickets: Mapping[str, _Ticket]) -> list[_Ticket]:
    """The tickets `jql` selects, each once, in key order; raises JqlError worded like Jira's."""
    match = _JQL_RE.match(jql)
    if not match:
        raise JqlError(f"Error in the JQL Query: the simulator cannot parse {jql!r}.")
    raw = match.group("list") if match.group("list") is not None else match.group("one")
    keys = [k.strip().strip("'\"").upper() for k in raw.split(",") if k.strip()]
    if not keys:
        raise JqlError("Error in the JQL Query: Expecting a value but got ')'.")
    field_name = match.group("field").lower()
    missing = [k for k in keys if k not in tickets]
    if missing:
        raise JqlError(*(f"An issue with key '{k}' does not exist for field '{field_name}'." for k in missing))
    unique = [tickets[k] for k in dict.fromkeys(keys)]
    return sorted(unique, key=_key_order, reverse=(match.group("dir") or "").lower() == "desc")


def _key_order(ticket: _Ticket) -> tuple[str, int]:
    """Jira orders keys by project, then by issue number (PAY-9 before PAY-10)."""
    project, number = ticket.key.rsplit("-", 1)
    return project, int(number)
