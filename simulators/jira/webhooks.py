"""The `jira:issue_updated` webhook: its payload and its signed delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import requests

from simulators.jira.render import Renderer
from simulators.jira.state import _Ticket

log = logging.getLogger(__name__)


def issue_updated_payload(ticket: _Ticket, render: Renderer) -> dict[str, Any]:
    """The `jira:issue_updated` body for the ticket's latest change (an empty changelog when it has none)."""
    last = ticket.histories[-1] if ticket.histories else None
    actor = render.user(render.store.users[last.author]) if last and last.author else None
    return {
        "timestamp": int(time.time() * 1000),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": actor,
        "issue": {
            "id": ticket.id,
            "self": f"{render.base}/rest/api/2/{ticket.id}",
            "key": ticket.key,
            "fields": render.fields(ticket, ticket.status, None),
        },
        "changelog": {"id": last.id, "items": last.items} if last else {"id": None, "items": []},
    }


def deliver(url: str, secret: str | None, payload: dict[str, Any]) -> None:
    """POST the payload, signed when there is a secret; a failed delivery is logged so the change itself stands."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": str(uuid.uuid4())}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature"] = f"sha256={digest}"
    try:
        response = requests.post(url, data=body, headers=headers, timeout=5)
        log.debug("jira_sim.webhook_sent status=%s", response.status_code)
    except requests.RequestException as exc:
        log.warning("jira_sim.webhook_failed url=%s error=%s", url, exc)
