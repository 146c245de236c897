"""The Jira simulator's own behaviour: webhooks, state page, faults answered in Jira's error shape."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

from simulators.http import serve
from tests.jira_fixtures import running_jira, seed_people


class _Receiver:
    """A WSGI endpoint that keeps what it receives."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self.lock:
            self.deliveries.append((dict(request.headers), request.get_data()))
        return Response("", status=200)(environ, start_response)


def test_transition_posts_a_signed_issue_updated_webhook() -> None:
    receiver = _Receiver()
    handle = serve(receiver)
    try:
        with running_jira("Cloud", webhook_url=f"{handle.url}/webhooks/jira", webhook_secret="s3cret") as sim:
            seed_people(sim)
            sim.add_ticket("PAY-1", reporter="acc-alice")
            sim.transition("PAY-1", "In Progress", by="acc-bob", at=datetime(2024, 1, 1, tzinfo=UTC))
            sim.transition("PAY-1", "Done", by="acc-bob")
    finally:
        handle.stop()

    assert len(receiver.deliveries) == 2
    (headers, body), (headers2, _) = receiver.deliveries
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == expected
    assert headers["X-Atlassian-Webhook-Identifier"] != headers2["X-Atlassian-Webhook-Identifier"]
    payload = json.loads(body)
    assert payload["webhookEvent"] == "jira:issue_updated"
    assert payload["issue_event_type_name"] == "issue_generic"
    assert isinstance(payload["timestamp"], int)
    assert payload["user"]["accountId"] == "acc-bob"
    assert payload["issue"]["key"] == "PAY-1"
    assert payload["issue"]["fields"]["status"]["name"] == "In Progress"
    (item,) = payload["changelog"]["items"]
    assert (item["field"], item["fromString"], item["toString"]) == ("status", "To Do", "In Progress")


def test_unreachable_webhook_is_logged_not_raised() -> None:
    with running_jira("Cloud", webhook_url="http://127.0.0.1:9/nowhere") as sim:
        sim.add_ticket("PAY-1")
        sim.transition("PAY-1", "Done", by=None)
        assert sim.issue_updated_payload("PAY-1")["changelog"]["items"][0]["toString"] == "Done"


def test_faults_answer_in_jiras_error_shape_and_state_page_is_not_logged() -> None:
    with running_jira("Server") as sim:
        sim.add_ticket("PAY-1")
        sim.faults.fail_next.append(500)
        answer = requests.get(f"{sim.url}/rest/api/2/issue/PAY-1", timeout=5)
        assert answer.status_code == 500
        assert set(answer.json()) == {"errorMessages", "errors"}
        missing = requests.get(f"{sim.url}/rest/api/2/issue/PAY-2", timeout=5)
        assert missing.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]
        sim.delete_ticket("PAY-1")
        assert requests.get(f"{sim.url}/rest/api/3/issue/PAY-1", timeout=5).status_code == 404
        sim.recorder.clear()
        state = requests.get(f"{sim.url}/_sim/state", timeout=5).json()
        assert state == {"deploymentType": "Server", "tickets": {}}
        assert sim.recorder.requests == []


def test_server_info_names_the_deployment_type() -> None:
    for flavour in ("Cloud", "Server"):
        with running_jira(flavour) as sim:
            info = requests.get(f"{sim.url}/rest/api/2/serverInfo", timeout=5).json()
            assert info["deploymentType"] == flavour
            assert info["versionNumbers"] and info["version"] and info["baseUrl"] == sim.url
            fields = requests.get(f"{sim.url}/rest/api/3/field", timeout=5).json()
            assert {"summary", "status", "issuetype"} <= {f["id"] for f in fields}
