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


def test_a_hidden_email_is_left_out_as_jira_does() -> None:
    for flavour in ("Cloud", "Server"):
        with running_jira(flavour) as sim:
            shown = sim.add_user("acc-bob", "Bob Approver", email="bob@example.com", name="bob")
            hidden = sim.add_user("acc-alice", "Alice Author", email="alice@example.com", name="alice", hide_email=True)
            sim.add_ticket("ITSM-1", issue_type="Change")
            sim.transition("ITSM-1", "Approved", by="acc-alice")
            sim.set_jsm_approval("ITSM-1", [("acc-alice", "approved")], "approved", datetime(2024, 1, 1, tzinfo=UTC))
            issue = requests.get(f"{sim.url}/rest/api/2/issue/ITSM-1", params={"expand": "changelog"}, timeout=5)
            author = issue.json()["changelog"]["histories"][0]["author"]
            approvals = requests.get(f"{sim.url}/rest/servicedeskapi/request/ITSM-1/approval", timeout=5).json()
            approver = approvals["values"][0]["approvers"][0]["approver"]
            assert "emailAddress" not in author
            assert "emailAddress" not in approver
            assert (hidden.email, shown.email) == (None, "bob@example.com")


def test_times_are_written_in_the_servers_zone() -> None:
    from datetime import timedelta, timezone

    with running_jira("Server") as sim:
        sim.time_zone = timezone(timedelta(hours=2))
        sim.add_user("acc-bob", "Bob Approver", email="bob@example.com", name="bob")
        sim.add_ticket("PAY-1")
        sim.transition("PAY-1", "Approved", by="acc-bob", at=datetime(2024, 1, 18, 6, 27, 50, 429000, tzinfo=UTC))
        issue = requests.get(f"{sim.url}/rest/api/2/issue/PAY-1", params={"expand": "changelog"}, timeout=5).json()
        info = requests.get(f"{sim.url}/rest/api/2/serverInfo", timeout=5).json()
    assert issue["changelog"]["histories"][0]["created"] == "2024-01-18T08:27:50.429+0200"
    assert info["serverTimeZone"] == "Etc/GMT-2"


def test_a_fault_can_carry_its_own_error_message() -> None:
    with running_jira("Cloud") as sim:
        sim.fault_messages[503] = ["upstream http://jira.internal.example:8080 said no"]
        sim.faults.fail_next.append(503)
        answer = requests.get(f"{sim.url}/rest/api/2/serverInfo", timeout=5)
    assert answer.status_code == 503
    assert answer.json() == {"errorMessages": ["upstream http://jira.internal.example:8080 said no"], "errors": {}}
