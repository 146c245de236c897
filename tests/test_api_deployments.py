"""GET /api/v1/deployments, /api/v1/deployments/<id> and /api/v1/emergencies over HTTP, on ledger entries that the
real deploy gate wrote (signed protection-rule webhook -> decision -> ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from conftest import ALICE, LiveApp
from test_deploy_gate_e2e import answers, approved, deploy, setup_release

from gating.console.auth import create_token
from gating.models import Emergency


@pytest.fixture
def token(live_app: LiveApp) -> str:
    return create_token(live_app.services.db, "auditor", datetime.now(UTC))


def get(app: LiveApp, path: str, bearer: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return requests.get(app.url + path, params=params, headers=headers, timeout=30)


def two_releases(app: LiveApp, repo: str) -> tuple[str, str]:
    """An approved release (PAY-1), then a rejected one (PAY-2 not approved), decided by the live gate."""
    approved(app, "PAY-1")
    app.jira.add_ticket("PAY-2", "Payouts", status="In Progress")
    first = setup_release(app, repo, ["PAY-1 refunds"])
    shipped = deploy(app, repo, first)
    answers(app, repo, 1)
    app.github.set_deployment_status(repo, shipped, "success")  # the pipeline deployed it
    second = app.github.add_commit(repo, "main", "PAY-2 payouts", author=ALICE)
    app.github.add_check_run(repo, second, "build", conclusion="success")
    deploy(app, repo, second)
    found = answers(app, repo, 2)
    assert [a["state"] for a in found] == ["approved", "rejected"], found
    return first, second


def listed(app: LiveApp, token: str, **params: Any) -> list[dict[str, Any]]:
    response = get(app, "/api/v1/deployments", token, **params)
    assert response.status_code == 200, response.text
    return list(response.json()["deployments"])


def test_search_lists_deployment_decisions_with_every_filter(live_app: LiveApp, repo: str, token: str) -> None:
    first, second = two_releases(live_app, repo)
    live_app.services.ledger.append("retention_purge", {"purged": 0}, index={})  # not a deployment: never listed

    everything = listed(live_app, token)
    assert [d["sha"] for d in everything] == [second, first]  # newest first
    newest = everything[0]
    assert newest["repository"] == repo and newest["environment"] == "production"
    assert newest["decision"] == "rejected" and newest["tickets"] == ["PAY-2"] and newest["commit_count"] == 1
    assert isinstance(newest["deployment_id"], int) and newest["recorded_at"].endswith("Z")
    assert newest["links"] == {
        "self": f"/api/v1/deployments/{newest['id']}",
        "page": f"/deployments/{newest['id']}",
    }
    assert everything[1]["decision"] == "approved" and everything[1]["tickets"] == ["PAY-1"]

    assert len(listed(live_app, token, repo=repo)) == 2
    assert listed(live_app, token, repo="acme/other") == []
    assert len(listed(live_app, token, environment="production")) == 2
    assert listed(live_app, token, environment="staging") == []
    assert [d["sha"] for d in listed(live_app, token, ticket="PAY-1")] == [first]
    assert [d["sha"] for d in listed(live_app, token, ticket="PAY-2")] == [second]
    assert listed(live_app, token, ticket="PAY-9") == []
    assert [d["sha"] for d in listed(live_app, token, sha=first[:7])] == [first]
    assert [d["sha"] for d in listed(live_app, token, sha=second)] == [second]
    assert [d["sha"] for d in listed(live_app, token, decision="approved")] == [first]
    assert [d["sha"] for d in listed(live_app, token, decision="rejected")] == [second]
    assert listed(live_app, token, decision="emergency") == []
    today = datetime.now(UTC).date()
    assert len(listed(live_app, token, since=today.isoformat(), until=today.isoformat())) == 2
    assert listed(live_app, token, since=(today + timedelta(days=1)).isoformat()) == []
    assert listed(live_app, token, until=(today - timedelta(days=1)).isoformat()) == []
    assert len(listed(live_app, token, since="2000-01-01T00:00:00Z")) == 2
    assert [d["sha"] for d in listed(live_app, token, limit=1)] == [second]
    assert len(listed(live_app, token, repo=repo, decision="approved", ticket="PAY-1", environment="production")) == 1


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"since": "last tuesday"}, "since"),
        ({"until": "2024-13-45"}, "until"),
        ({"decision": "maybe"}, "decision"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sha": "not-a-sha"}, "sha"),
    ],
)
def test_bad_parameters_are_400_naming_them(live_app: LiveApp, token: str, params: dict[str, str], name: str) -> None:
    response = get(live_app, "/api/v1/deployments", token, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == name and body["error"].startswith(f"{name}: ")


def test_every_endpoint_needs_a_token(live_app: LiveApp, token: str) -> None:
    for path in ("/api/v1/deployments", "/api/v1/deployments/1", "/api/v1/emergencies"):
        response = get(live_app, path, None)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert get(live_app, path, "cs_wrong").status_code == 401
    # Not in the URL either.
    assert get(live_app, "/api/v1/deployments", None, token=token).status_code == 401


def test_dossier_answers_the_five_questions_for_approved_and_rejected(live_app: LiveApp, repo: str, token: str) -> None:
    first, second = two_releases(live_app, repo)
    ok_summary, rejected_summary = reversed(listed(live_app, token))

    response = get(live_app, ok_summary["links"]["self"], token)
    assert response.status_code == 200
    dossier = response.json()
    assert dossier["id"] == ok_summary["id"]
    assert dossier["evidence"]["sha"] == first and dossier["evidence"]["requester"] == "dave"
    entry = dossier["entry"]
    assert entry["id"] == ok_summary["id"] and entry["sequence"] == 1
    assert len(entry["hash"]) == 64 and entry["prev_hash"] == "0" * 64 and entry["signature_present"] is False
    verification = dossier["verification"]
    assert verification["ok"] is True and verification["count"] == 2
    assert verification["entry_hash_matches"] is True and verification["entry_verified"] is True
    assert verification["first_bad_sequence"] is None and verification["reason"] is None

    answers_ = dossier["answers"]
    assert [t["key"] for t in answers_["tickets"]["tickets"]] == ["PAY-1"]
    assert answers_["tickets"]["tickets"][0]["approved"] is True
    (approval,) = answers_["approvals"]["approvals"]
    assert approval["key"] == "PAY-1" and approval["approvers"] == ["Carol Approver"]
    assert approval["approved_at"] and approval["approved_before_request"] is True
    assert answers_["approvals"]["all_approved_before_request"] is True
    commits = answers_["commits"]["commits"]
    assert commits[-1]["sha"] == first and commits[-1]["tickets"] == ["PAY-1"]
    assert commits[-1]["maps_to_approved_ticket"] is True
    assert answers_["commits"]["range"]["method"] == "last_successful"
    assert answers_["checks"]["required"] == [
        {"name": "build", "app": None, "passed": True, "found": True, "results": ["success"], "not_counted_from": []}
    ]
    assert answers_["checks"]["all_passed"] is True
    integrity = answers_["integrity"]
    assert integrity["hash"] == entry["hash"] and integrity["chain_ok"] is True and integrity["entry_verified"] is True
    assert answers_["decision"]["state"] == "approved"

    rejected = get(live_app, rejected_summary["links"]["self"], token).json()
    assert rejected["entry"]["sequence"] == 2 and rejected["entry"]["prev_hash"] == entry["hash"]
    r = rejected["answers"]
    assert r["decision"]["state"] == "rejected"
    assert any("PAY-2" in reason for reason in r["decision"]["reasons"])
    (ticket,) = r["tickets"]["tickets"]
    assert ticket["key"] == "PAY-2" and ticket["status"] == "In Progress" and ticket["approved"] is False
    assert r["approvals"]["approvals"][0]["approvers"] == []
    assert r["approvals"]["approvals"][0]["approved_before_request"] is False
    assert r["approvals"]["all_approved_before_request"] is False
    assert r["commits"]["range"]["base_sha"] == first
    assert r["commits"]["all_map_to_approved_tickets"] is False and r["commits"]["unmapped"] == [second]
    assert rejected["verification"]["ok"] is True


def test_unknown_dossier_is_a_json_404(live_app: LiveApp, token: str) -> None:
    for path in ("/api/v1/deployments/999", "/api/v1/deployments/abc"):
        response = get(live_app, path, token)
        assert response.status_code == 404
        assert "no deployment decision" in response.json()["error"]
    # A ledger entry that is not a deployment decision is not a dossier.
    other = live_app.services.ledger.append("retention_purge", {"purged": 0}, index={})
    assert get(live_app, f"/api/v1/deployments/{other.id}", token).status_code == 404


def test_emergencies_lists_open_ones_and_overdue_ones(live_app: LiveApp, repo: str, token: str) -> None:
    # An emergency change shipped through the real gate: an "Emergency Change" ticket not yet approved.
    live_app.jira.add_ticket("OPS-7", "Hotfix", status="In Progress", issue_type="Emergency Change")
    sha = setup_release(live_app, repo, ["OPS-7 hotfix"])
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    (summary_,) = listed(live_app, token, decision="emergency")

    now = datetime.now(UTC)
    with live_app.services.db.session() as session:  # an older one, past its deadline
        session.add(
            Emergency(
                ledger_entry_id=summary_["id"], repository="acme/legacy", environment="production", deployment_id=7,
                installation_id=1, sha="a" * 40, tickets="OPS-1 OPS-2", people="[]",
                deadline=now - timedelta(hours=1), created_at=now - timedelta(hours=73),
            )
        )  # fmt: skip
        session.add(
            Emergency(
                ledger_entry_id=summary_["id"], repository="acme/legacy", environment="production", deployment_id=8,
                installation_id=1, sha="b" * 40, tickets="OPS-3", people="[]",
                deadline=now - timedelta(hours=2), created_at=now - timedelta(hours=80), resolved_at=now,
            )
        )  # fmt: skip

    response = get(live_app, "/api/v1/emergencies", token)
    assert response.status_code == 200
    found = response.json()["emergencies"]
    assert [(e["repository"], e["overdue"]) for e in found] == [("acme/legacy", True), (repo, False)]  # resolved: gone
    live = found[1]
    assert live["sha"] == sha and live["tickets"] == ["OPS-7"] and live["environment"] == "production"
    assert live["ledger_entry_id"] == summary_["id"] and isinstance(live["deployment_id"], int)
    assert datetime.fromisoformat(live["deadline"]) > now + timedelta(hours=71)

    overdue = get(live_app, "/api/v1/emergencies", token, overdue="true").json()["emergencies"]
    assert [(e["sha"], e["tickets"]) for e in overdue] == [("a" * 40, ["OPS-1", "OPS-2"])]
    not_overdue = get(live_app, "/api/v1/emergencies", token, overdue="false").json()["emergencies"]
    assert [e["sha"] for e in not_overdue] == [sha]
    assert get(live_app, "/api/v1/emergencies", token, overdue="soon").status_code == 400
