"""The deploy gate end to end: protection-rule webhooks in, one answer to GitHub and one ledger entry out."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from conftest import ALICE, BOB, CAROL, LiveApp, wait_for
from sqlalchemy import func, select

from gating.models import LedgerEntry
from simulators.github import Person

ERIN = Person(name="Erin Merger", email="erin@example.com", login="erin")
BOT = Person(name="dependabot[bot]", email="bot@example.com", login="dependabot[bot]")

POLICY = """\
jira:
  projects: [PAY, OPS]
identities:
  alice: acc-alice
  bob: acc-bob
  carol: acc-carol
  dave: acc-dave
environments:
  production:
    required_checks: [build]
"""


def approved(app: LiveApp, key: str, by: str = "acc-carol") -> None:
    app.jira.add_ticket(key, f"{key} work", status="In Review")
    app.jira.transition(key, "Approved", by=by)


def setup_release(
    app: LiveApp, repo: str, messages: list[str], *, build: str | None = "success", deployed_before: bool = True
) -> str:
    """Commits on main since production last ran (GitHub's record: a successful deployment of main's tip)."""
    app.github.put_file(repo, ".github/countersign.yml", POLICY)
    app.github.add_environment(repo, "production")
    if deployed_before:
        tip = _tip(app, repo)
        earlier = app.github.create_deployment(
            repo, ref="main", sha=tip, environment="production", creator="carol", deliver=False
        )
        app.github.set_deployment_status(repo, earlier, "success")
    sha = ""
    for message in messages:
        sha = app.github.add_commit(repo, "main", message, author=ALICE)
    if build:
        app.github.add_check_run(repo, sha, "build", conclusion=build)
    return sha


def _tip(app: LiveApp, repo: str) -> str:
    return app.github.add_commit(repo, "main", "Release 1.0 (exempt)", author=BOT, signed=True)


def answers(app: LiveApp, repo: str, count: int = 1) -> list[dict]:
    def decided() -> list[dict]:
        found = [a for a in app.github.deployment_answers(repo) if a["state"]]
        return found if len(found) >= count else []

    return wait_for(decided, timeout=20, message=f"{count} deployment answer(s)")


def deploy_id_of(app: LiveApp, repo: str, nth: int) -> int:
    """The deployment id of the `nth` decision (1-based) recorded in the ledger."""
    return int(ledger_entries(app)[nth - 1]["payload"]["deployment_id"])


def ledger_entries(app: LiveApp) -> list[dict]:
    return [e.content() for e in reversed(app.services.ledger.search(limit=1000))]


def deploy(app: LiveApp, repo: str, sha: str, creator: str = "dave") -> int:
    return app.github.create_deployment(repo, ref="main", sha=sha, environment="production", creator=creator)


def test_approved_release_is_approved_with_one_ledger_entry(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    approved(live_app, "PAY-2")
    sha = setup_release(live_app, repo, ["PAY-1 refunds", "PAY-2 payouts"])
    deployment_id = deploy(live_app, repo, sha)

    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert answer["environment_name"] == "production"
    assert answer["comment"].startswith(f"Countersign approved this deployment to production of {sha[:7]}.")
    (entry,) = ledger_entries(live_app)
    evidence = entry["payload"]
    assert entry["kind"] == "deployment_decision"
    assert evidence["decision"]["state"] == "approved"
    assert evidence["deployment_id"] == deployment_id
    assert evidence["requester"] == "dave"
    assert [t["key"] for t in evidence["tickets"]] == ["PAY-1", "PAY-2"]
    assert evidence["tickets"][0]["approvers"] == ["Carol Approver"]
    assert evidence["tickets"][0]["approval_record"]["items"][0]["toString"] == "Approved"
    assert next(c["name"] for c in evidence["checks"] if c["kind"] == "check_run") == "build"
    assert evidence["range"]["method"] == "last_successful"
    assert live_app.services.ledger.verify().ok


def test_one_unapproved_ticket_in_fifty_rejects_naming_it(live_app: LiveApp, repo: str) -> None:
    for n in range(1, 51):
        if n == 37:
            live_app.jira.add_ticket("PAY-37", "Not yet", status="In Progress")
        else:
            approved(live_app, f"PAY-{n}")
    sha = setup_release(live_app, repo, [f"PAY-{n} change" for n in range(1, 51)])
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert "- PAY-37 is In Progress; it needs to be moved to Approved in Jira" in answer["comment"]
    assert answer["comment"].count("\n- ") == 1
    assert ledger_entries(live_app)[0]["payload"]["decision"]["state"] == "rejected"


def test_failed_or_missing_required_check_rejects(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"], build="failure")
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert f"required check `build` has not succeeded on {sha[:7]} (failure)" in answer["comment"]

    sha2 = live_app.github.add_commit(repo, "main", "PAY-1 more", author=ALICE)  # no build on this one
    deploy(live_app, repo, sha2)
    second = answers(live_app, repo, count=2)[1]
    assert second["state"] == "rejected"
    assert f"required check `build` has not succeeded on {sha2[:7]} (missing)" in second["comment"]


def test_requester_who_approved_a_ticket_is_rejected(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1", by="acc-bob")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    deploy(live_app, repo, sha, creator="bob")
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert "PAY-1: Bob Builder approved it but is also the deployment requester" in answer["comment"]


def test_jira_down_never_approves(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.jira.faults.down = True
    deploy(live_app, repo, sha)
    found = answers(live_app, repo)
    assert [a["state"] for a in found] == ["rejected"]
    assert "Jira could not be read" in found[0]["comment"]
    # It said it was waiting while it retried.
    progress = [a for a in live_app.github.deployment_answers(repo) if a["state"] is None]
    assert progress and progress[0]["comment"].startswith("Countersign is waiting: Jira could not be read")


def test_jira_down_is_explained_without_its_url_or_answer(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    internal = "MARKER-7f3a: upstream jira-db.internal.example:5432 refused"
    live_app.jira.fault_messages[503] = [f"{internal} (see {live_app.jira.url}/status)"]
    live_app.jira.faults.down = True
    deploy(live_app, repo, sha)

    (answer,) = answers(live_app, repo)

    assert answer["state"] == "rejected"
    assert "- Jira could not be read: Jira answered HTTP 503; re-run when it is back" in answer["comment"]
    published = [a["comment"] for a in live_app.github.deployment_answers(repo)]  # progress reports included
    assert len(published) >= 2
    assert not [c for c in published if "MARKER-7f3a" in c or live_app.jira.url in c or "127.0.0.1" in c]


def test_callback_on_another_host_is_never_called(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.github.webhook_url = None
    deployment_id = deploy(live_app, repo, sha)
    payload = live_app.github.protection_rule_payload(
        repo, deployment_id, callback_url="https://evil.example/repos/acme/x/actions/runs/1/deployment_protection_rule"
    )
    assert live_app.deliver("deployment_protection_rule", payload).status_code == 202
    live_app.settle()
    assert live_app.github.deployment_answers(repo) == []
    assert not [r for r in live_app.github.recorder.requests if r.path.endswith("/deployment_protection_rule")]


def test_a_redelivered_request_gets_no_second_answer(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.github.webhook_url = None
    deployment_id = deploy(live_app, repo, sha)
    payload = live_app.github.protection_rule_payload(repo, deployment_id)
    live_app.deliver("deployment_protection_rule", payload)
    answers(live_app, repo)
    live_app.settle()
    # A new delivery id for the same request (GitHub retried, or someone replayed it).
    live_app.deliver("deployment_protection_rule", payload)
    live_app.settle()
    posts = [r for r in live_app.github.recorder.requests if r.path.endswith("/deployment_protection_rule")]
    assert len(posts) == 1
    with live_app.services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_null_deployment_takes_the_sha_from_the_payload(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.github.webhook_url = None
    deployment_id = deploy(live_app, repo, sha)
    payload = live_app.github.protection_rule_payload(repo, deployment_id, null_deployment=True)
    live_app.deliver("deployment_protection_rule", payload)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert ledger_entries(live_app)[0]["payload"]["sha"] == sha


def test_ranges_follow_the_last_approved_deployment(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    approved(live_app, "PAY-2")
    first = setup_release(live_app, repo, ["PAY-1 first"])
    first_deployment = deploy(live_app, repo, first)
    answers(live_app, repo, 1)
    live_app.github.set_deployment_status(repo, first_deployment, "success")  # the pipeline shipped it

    # Second release: only the new commits, including a merged PR's branch commits.
    live_app.github.add_commit(repo, "feature/pay-2", "wip", author=BOB)
    live_app.github.add_commit(repo, "feature/pay-2", "more wip", author=BOB)
    number = live_app.github.open_pull_request(repo, head="feature/pay-2", title="PAY-2: payouts", author="bob")
    merge = live_app.github.merge_pull_request(repo, number, by=ERIN)  # Erin pressed Merge: she authors it
    assert live_app.github.pull_request(repo, number)["merge_commit_sha"] == merge
    live_app.github.add_check_run(repo, merge, "build")
    deploy(live_app, repo, merge)
    second = answers(live_app, repo, 2)[1]
    assert second["state"] == "approved", second["comment"]
    evidence = ledger_entries(live_app)[1]["payload"]
    assert evidence["range"]["method"] == "last_approved"
    assert evidence["range"]["base_sha"] == first
    assert len(evidence["commits"]) == 3  # the two branch commits and the merge commit
    assert evidence["pull_requests"][0]["number"] == number
    assert all("PAY-2" in c["tickets"] for c in evidence["commits"])

    # Redeploy of the same SHA: no new commits, said so.
    live_app.github.set_deployment_status(repo, deploy_id_of(live_app, repo, 2), "success")
    deploy(live_app, repo, merge)
    assert answers(live_app, repo, 3)[2]["state"] == "approved"
    assert ledger_entries(live_app)[2]["payload"]["range"]["status"] == "identical"

    # Rollback to the first release.
    deploy(live_app, repo, first)
    assert answers(live_app, repo, 4)[3]["state"] == "approved"
    rollback = ledger_entries(live_app)[3]["payload"]["range"]
    assert rollback["status"] == "behind"
    assert rollback["description"].startswith("a rollback")

    # A force-pushed branch that does not descend from the last approved deployment.
    live_app.github.set_deployment_status(repo, deploy_id_of(live_app, repo, 4), "success")
    live_app.github.set_branch(repo, "main", first)
    forced = live_app.github.add_commit(repo, "main", "PAY-1 rewritten", author=ALICE)
    live_app.github.add_check_run(repo, forced, "build")
    deploy(live_app, repo, forced)
    assert answers(live_app, repo, 5)[4]["state"] == "approved"
    diverged = ledger_entries(live_app)[4]["payload"]
    assert diverged["range"]["base_sha"] == first  # the rollback to `first` was the last approved
    assert [c["message"] for c in diverged["commits"]] == ["PAY-1 rewritten"]


def test_evidence_is_canonical_and_signed_chain_verifies(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    deploy(live_app, repo, sha)
    answers(live_app, repo)
    (view,) = live_app.services.ledger.search(limit=10)
    assert view.payload == json.dumps(
        json.loads(view.payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    result = live_app.services.ledger.verify()
    assert result.ok and result.count == 1 and result.head_hash == view.hash


def test_first_deployment_checks_the_whole_history_and_names_untraced_commits(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"], deployed_before=False)
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert "(Initial commit) name no Jira ticket" in answer["comment"]
    evidence = ledger_entries(live_app)[0]["payload"]
    assert evidence["range"]["method"] == "first_deployment"
    assert evidence["range"]["description"].startswith("first deployment to this environment: the 2 most recent")


def test_emergency_ships_then_is_approved_after_the_fact(live_app: LiveApp, repo: str) -> None:
    from sqlalchemy import select as select_

    from gating.models import Emergency

    live_app.jira.add_ticket("OPS-9", "Hotfix the outage", status="In Progress", issue_type="Emergency Change")
    sha = setup_release(live_app, repo, ["OPS-9 hotfix"])
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert "as an emergency change" in answer["comment"]
    first = live_app.services.ledger.search(limit=10)[0]
    assert first.decision == "emergency"
    with live_app.services.db.session() as session:
        (emergency,) = session.scalars(select_(Emergency)).all()
        assert emergency.tickets == "OPS-9" and emergency.resolved_at is None

    # Alice wrote the hotfix: her approval does not settle it.
    live_app.jira.transition("OPS-9", "Approved", by="acc-alice")
    live_app.settle()
    assert len(live_app.services.ledger.search(limit=10)) == 1

    live_app.jira.transition("OPS-9", "Reopened", by="acc-carol")
    live_app.jira.transition("OPS-9", "Approved", by="acc-carol")

    def follow_up() -> list:
        return [e for e in live_app.services.ledger.search(limit=10) if e.kind == "emergency_retroactive_approval"]

    (entry,) = wait_for(follow_up, message="the retroactive approval entry")
    assert entry.data["emergency_entry_id"] == first.id
    assert entry.data["tickets"][0]["approvers"] == ["Carol Approver"]
    assert entry.data["approved_within_deadline"] is True
    with live_app.services.db.session() as session:
        assert session.scalars(select_(Emergency)).one().resolution_entry_id == entry.id
    assert live_app.services.ledger.verify().ok


@pytest.mark.postgres
def test_twenty_concurrent_decisions_form_one_chain(live_app: LiveApp, repo: str) -> None:
    if os.environ.get("COUNTERSIGN_TEST_DB") != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL: COUNTERSIGN_TEST_DB=postgresql TEST_DATABASE_URL=…")
    from concurrent.futures import ThreadPoolExecutor

    from gating.intake.jobs import DatabaseWorker, run_delivery

    live_app.services.processor.shutdown()
    live_app.services.processor = DatabaseWorker(  # twenty decisions at once, not four
        partial(run_delivery, live_app.services), live_app.services.deliveries, threads={"merge": 1, "deploy": 20}
    ).start()
    approved(live_app, "PAY-1")
    live_app.github.webhook_url = None
    tip = _tip(live_app, repo)
    sha = setup_release(live_app, repo, ["PAY-1 change"], deployed_before=False)
    payloads = []
    for n in range(20):
        live_app.github.add_environment(repo, f"region-{n}")
        earlier = live_app.github.create_deployment(
            repo, ref="main", sha=tip, environment=f"region-{n}", creator="carol", deliver=False
        )
        live_app.github.set_deployment_status(repo, earlier, "success")
        deployment_id = live_app.github.create_deployment(
            repo, ref="main", sha=sha, environment=f"region-{n}", creator="dave"
        )
        payloads.append(live_app.github.protection_rule_payload(repo, deployment_id))
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda p: live_app.deliver("deployment_protection_rule", p).status_code, payloads))
    assert statuses == [202] * 20
    found = answers(live_app, repo, 20)
    assert {a["state"] for a in found} == {"approved"}
    live_app.settle(timeout=60)
    entries = live_app.services.ledger.search(limit=100)
    assert sorted(e.sequence for e in entries) == list(range(1, 21))
    result = live_app.services.ledger.verify()
    assert result.ok and result.count == 20


def test_a_failed_answer_is_sent_again_without_a_second_decision(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.github.webhook_url = None
    deployment_id = deploy(live_app, repo, sha)
    payload = live_app.github.protection_rule_payload(repo, deployment_id)

    # GitHub fails the callback once: the answer is retried and arrives once.
    live_app.github.faults.fail_path("/deployment_protection_rule", 502)
    live_app.deliver("deployment_protection_rule", payload)
    assert [a["state"] for a in answers(live_app, repo)] == ["approved"]

    # GitHub fails it for longer than the app waits: the delivery fails, the decision stays recorded,
    # and a redelivery sends that same decision without deciding again.
    second = deploy(live_app, repo, sha)
    payload = live_app.github.protection_rule_payload(repo, second)
    live_app.github.faults.fail_path("/deployment_protection_rule", *([503] * 20))
    delivery_id = "redelivered-once"
    live_app.deliver("deployment_protection_rule", payload, delivery_id=delivery_id)
    wait_for(lambda: live_app.services.deliveries.status(f"github:{delivery_id}") == "failed", timeout=20)
    assert len(live_app.services.ledger.search(limit=10)) == 2
    live_app.github.faults.path_failures.clear()
    live_app.deliver("deployment_protection_rule", payload, delivery_id=delivery_id)
    found = answers(live_app, repo, 2)
    assert [a["state"] for a in found] == ["approved", "approved"]
    live_app.settle()
    assert len(live_app.services.ledger.search(limit=10)) == 2


def test_a_slow_evaluation_reports_progress(live_app: LiveApp, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gating.gates import deploy as deploy_gate

    monkeypatch.setattr(deploy_gate, "PROGRESS_AFTER_SECONDS", 0.2)
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.github.faults.latency = 0.1  # every GitHub request now takes 100 ms
    deploy(live_app, repo, sha)
    answers(live_app, repo)
    sent = live_app.github.deployment_answers(repo)
    assert sent[0]["state"] is None
    assert sent[0]["comment"].startswith("Countersign is checking this release")
    assert sent[-1]["state"] == "approved"


def test_periodic_recheck_records_an_emergency_approved_without_a_webhook(
    live_app: LiveApp, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gating.cli import main

    live_app.jira.add_ticket("OPS-3", "Hotfix", status="In Progress", issue_type="Emergency Change")
    sha = setup_release(live_app, repo, ["OPS-3 hotfix"])
    deploy(live_app, repo, sha)
    assert answers(live_app, repo)[0]["state"] == "approved"
    live_app.jira.webhook_url = None  # Jira's webhook is lost: only the periodic re-check can notice
    live_app.jira.transition("OPS-3", "Approved", by="acc-carol")

    settings = live_app.services.settings
    for name, value in {
        "GITHUB_APP_ID": settings.github_app_id,
        "GITHUB_APP_PRIVATE_KEY": settings.github_private_key,
        "GITHUB_WEBHOOK_SECRET": settings.github_webhook_secret,
        "GITHUB_API_URL": settings.github_api_url,
        "JIRA_URL": settings.jira_url,
        "JIRA_USER": settings.jira_user or "",
        "JIRA_TOKEN": settings.jira_token or "",
        "DATABASE_URL": settings.database_url,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["emergencies", "recheck"])
    assert result.exit_code == 0, result.output
    assert "1 open emergency change(s); 1 approved after the fact now" in result.output
    kinds = [e.kind for e in live_app.services.ledger.search(limit=10)]
    assert kinds == ["emergency_retroactive_approval", "deployment_decision"]


def test_approval_is_compared_with_the_request_time_not_the_evaluation_time(live_app: LiveApp, repo: str) -> None:
    live_app.services.settings = dataclasses.replace(live_app.services.settings, deploy_retry_seconds=60)
    live_app.jira.add_ticket("PAY-1", "PAY-1 work", status="In Review")
    sha = setup_release(live_app, repo, ["PAY-1 change"])
    live_app.jira.faults.down = True
    deployment_id = deploy(live_app, repo, sha)
    # While Jira is down the gate waits; the ticket is approved after the request, before the evaluation.
    # Two progress reports: the gate has waited at least a second since the request.
    wait_for(
        lambda: len([a for a in live_app.github.deployment_answers(repo) if a["state"] is None]) >= 2,
        message="two progress reports",
    )
    live_app.jira.transition("PAY-1", "Approved", by="acc-carol")
    live_app.jira.faults.down = False
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]

    evidence = ledger_entries(live_app)[-1]["payload"]
    (request,) = [
        d["payload"]
        for d in live_app.github.deliveries
        if d["event"] == "deployment_protection_rule" and d["payload"]["deployment"]["id"] == deployment_id
    ]
    assert evidence["requested_at"] == request["deployment"]["created_at"]
    (ticket,) = evidence["tickets"]
    moments = [datetime.fromisoformat(evidence[k]) for k in ("requested_at", "captured_at")]
    assert moments[0] < datetime.fromisoformat(ticket["approved_at"]) <= moments[1]
    assert ticket["approved_before_request"] is False


PINNED = POLICY.replace(
    "    required_checks: [build]\n", "    required_checks: [{name: build, app: github-actions}, lint]\n"
)


def test_a_required_check_pinned_to_an_app_counts_only_that_apps_run(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 change"], build=None)
    live_app.github.put_file(repo, ".github/countersign.yml", PINNED)
    # Any installed app can post a succeeding `build`; only GitHub Actions' counts.
    live_app.github.add_check_run(repo, sha, "build", conclusion="success", app_slug="sneaky-ci")
    live_app.github.add_status(repo, sha, "lint", "success")  # unpinned: a commit status counts
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert (
        f"required check `build (by github-actions)` has not succeeded on {sha[:7]} "
        "(missing; `build` from sneaky-ci does not count: the policy pins github-actions)"
    ) in answer["comment"]
    assert "lint" not in answer["comment"]

    live_app.github.add_check_run(repo, sha, "build", conclusion="success", app_slug="github-actions")
    deploy(live_app, repo, sha)
    second = answers(live_app, repo, count=2)[1]
    assert second["state"] == "approved", second["comment"]
    evidence = ledger_entries(live_app)[-1]["payload"]
    assert evidence["required_checks"] == [{"name": "build", "app": "github-actions"}, "lint"]
    assert sorted((c["name"], c["app"], c["succeeded"]) for c in evidence["checks"]) == [
        ("build", "github-actions", True),
        ("build", "sneaky-ci", True),
        ("lint", None, True),
    ]


def merged_pr(
    app: LiveApp, repo: str, branch: str, title: str, messages: list[str], *, method: str, by: Person = ERIN, **kw: Any
) -> int:
    for message in messages:
        app.github.add_commit(repo, branch, message, author=ALICE)
    number = app.github.open_pull_request(repo, head=branch, title=title, author="alice", **kw)
    app.github.merge_pull_request(repo, number, by=by, method=method)
    return number


def main_tip(app: LiveApp, repo: str) -> str:
    return app.github.add_commit(repo, "main", "PAY-1 release notes", author=ALICE)


def test_a_commit_message_never_borrows_a_prs_approval(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-42")
    setup_release(live_app, repo, [], build=None)
    # PR #N covers PAY-42 and is approved; direct pushes imitate GitHub's merge and squash messages.
    number = merged_pr(live_app, repo, "feature/pay-42", "PAY-42: refunds", ["refunds"], method="squash")
    squash_style = live_app.github.add_commit(repo, "main", f"quick fix (#{number})", author=ALICE)
    merge_style = live_app.github.add_commit(
        repo, "main", f"Merge pull request #{number} from acme/feature/pay-42", author=ALICE
    )
    live_app.github.add_check_run(repo, merge_style, "build")
    deploy(live_app, repo, merge_style)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "rejected"
    assert (
        f"commits {squash_style[:7]} (quick fix (#{number})), {merge_style[:7]} (Merge pull request #{number} "
        in (answer["comment"])
    )
    evidence = ledger_entries(live_app)[-1]["payload"]
    (pull,) = evidence["pull_requests"]  # the squash-merged PR covers only its own squashed commit
    assert pull["number"] == number and len(pull["commits"]) == 1


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_every_merge_method_resolves_its_pr_labels_included(live_app: LiveApp, repo: str, method: str) -> None:
    approved(live_app, "PAY-1")
    live_app.jira.add_ticket("OPS-9", "Hotfix", status="In Review")
    setup_release(live_app, repo, [], build=None)
    number = merged_pr(
        live_app,
        repo,
        "hotfix/ops-9",
        "OPS-9: stop the bleeding",
        ["guard", "retry"],
        method=method,
        labels=("emergency",),
    )
    sha = main_tip(live_app, repo)
    live_app.github.add_check_run(repo, sha, "build")
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert "as an emergency change" in answer["comment"]
    evidence = ledger_entries(live_app)[-1]["payload"]
    (pull,) = evidence["pull_requests"]
    assert (pull["number"], pull["labels"], pull["merged_by"]) == (number, ["emergency"], "erin")
    brought = {"merge": 3, "squash": 1, "rebase": 2}[method]  # merge: both branch commits and the merge commit
    assert len(pull["commits"]) == brought
    covered = [c for c in evidence["commits"] if c["sha"] in pull["commits"]]
    assert all("OPS-9" in c["tickets"] for c in covered)


def test_the_reviewer_who_pressed_merge_may_approve_but_a_local_merge_counts_its_author(
    live_app: LiveApp, repo: str
) -> None:
    approved(live_app, "PAY-1")
    approved(live_app, "PAY-7", by="acc-carol")
    setup_release(live_app, repo, [], build=None)
    # Carol approved PAY-7 in Jira and pressed Merge on GitHub: GitHub's merge commit names her, she wrote nothing.
    number = merged_pr(live_app, repo, "feature/pay-7", "PAY-7: refunds", ["refunds"], method="merge", by=CAROL)
    sha = main_tip(live_app, repo)
    live_app.github.add_check_run(repo, sha, "build")
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    (pull,) = ledger_entries(live_app)[-1]["payload"]["pull_requests"]
    assert pull["number"] == number and pull["merged_by"] == "carol"

    # A merge commit Carol made herself and pushed still counts her as an author of what it brings.
    live_app.github.add_commit(repo, "feature/pay-7b", "PAY-7 more refunds", author=ALICE)
    tip = live_app.github.add_commit(repo, "main", "PAY-1 notes", author=ALICE)
    branch = live_app.github.add_commit(repo, "feature/pay-7b", "PAY-7 last bit", author=ALICE)
    local = live_app.github.add_commit(
        repo, "main", "Merge branch 'feature/pay-7b'\n\nPAY-7", author=CAROL, parents=[tip, branch]
    )
    live_app.github.add_check_run(repo, local, "build")
    deploy(live_app, repo, local)
    second = answers(live_app, repo, 2)[1]
    assert second["state"] == "rejected"
    assert f"PAY-7: Carol Approver approved it but is also the author of {local[:7]}" in second["comment"]


def test_more_than_a_hundred_prs_in_a_release_are_all_resolved_and_remembered(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    setup_release(live_app, repo, [], build=None)
    for n in range(105):
        merged_pr(live_app, repo, f"feature/{n}", "PAY-1: part", [f"part {n}"], method="squash")
    sha = main_tip(live_app, repo)
    live_app.github.add_check_run(repo, sha, "build")
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert len(ledger_entries(live_app)[-1]["payload"]["pull_requests"]) == 105

    def lookups() -> int:
        return len(
            [r for r in live_app.github.recorder.requests if r.path.endswith("/pulls") and "/commits/" in r.path]
        )

    asked = lookups()
    deploy(live_app, repo, sha)  # the same release again: merged commits' PRs are remembered
    answers(live_app, repo, 2)
    assert lookups() == asked + 1  # only the unmerged tip commit is asked about again


def test_an_approved_deployment_that_never_shipped_does_not_shorten_the_next_release(
    live_app: LiveApp, repo: str
) -> None:
    approved(live_app, "PAY-1")
    live_app.jira.add_ticket("PAY-2", "Payouts", status="In Review")
    first = setup_release(live_app, repo, ["PAY-1 refunds"])
    stopped = deploy(live_app, repo, first)
    assert answers(live_app, repo, 1)[0]["state"] == "approved"
    live_app.github.set_deployment_status(repo, stopped, "failure")  # approved, but the job then failed
    # PAY-2's unapproved commit lands on top; the next release must still include PAY-1's commit too.
    second = live_app.github.add_commit(repo, "main", "PAY-2 payouts", author=ALICE)
    live_app.github.add_check_run(repo, second, "build")
    deploy(live_app, repo, second)
    assert answers(live_app, repo, 2)[1]["state"] == "rejected"
    release = ledger_entries(live_app)[-1]["payload"]["range"]
    assert release["method"] == "last_successful"
    assert release["description"].startswith("2 commit(s) since the last successful deployment GitHub reports")
    assert first in [c["sha"] for c in ledger_entries(live_app)[-1]["payload"]["commits"]]


def test_a_rerun_after_a_rejection_is_decided_and_answered_anew(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", "Refunds", status="In Review")
    sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    deployment_id = deploy(live_app, repo, sha)
    (first,) = answers(live_app, repo)
    assert first["state"] == "rejected"
    # The ticket gets approved; the release manager presses "Re-run failed jobs": same run, attempt 2.
    live_app.jira.transition("PAY-1", "Approved", by="acc-carol")
    run_id = first["run_id"]
    rerun = live_app.github.rerun_workflow(repo, run_id, creator="dave")
    assert rerun != deployment_id
    second = answers(live_app, repo, 2)[1]
    assert (second["run_id"], second["state"]) == (run_id, "approved")
    entries = [e["payload"] for e in ledger_entries(live_app) if e["kind"] == "deployment_decision"]
    assert [(e["workflow_run_id"], e["workflow_run_attempt"], e["decision"]["state"]) for e in entries] == [
        (run_id, 1, "rejected"),
        (run_id, 2, "approved"),
    ]
    # GitHub redelivering the second request changes nothing: it was decided and answered.
    payload = live_app.github.protection_rule_payload(repo, rerun)
    assert live_app.deliver("deployment_protection_rule", payload).status_code == 202
    live_app.settle()
    assert len([a for a in live_app.github.deployment_answers(repo) if a["state"]]) == 2


def test_half_an_emoji_in_a_commit_message_is_recorded_and_the_deployment_answered(
    live_app: LiveApp, repo: str
) -> None:
    approved(live_app, "PAY-1")
    broken = "PAY-1 fix the \ud83d banner"  # a lone surrogate: half an emoji, cut by a tool that counts UTF-16 units
    sha = setup_release(live_app, repo, [broken])
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    (commit,) = [c for c in ledger_entries(live_app)[-1]["payload"]["commits"] if c["sha"] == sha]
    assert commit["message"] == broken
    assert live_app.services.ledger.verify().ok
