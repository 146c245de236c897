"""Every accepted delivery ends in a published answer: GitHub's failures are waited out, the rest is an error verdict.

Signed webhooks into the live app, the real PyGithub client out to the simulated GitHub, whose faults
stand in for what GitHub does on a bad day: secondary rate limits, 5xx, answers lost after the write
was applied, read timeouts; and a database or a response that breaks the app itself.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import ALICE, LiveApp, completed_check, wait_for
from sqlalchemy import create_engine, text

from gating.models import LedgerEntry

COMPLETION = {"method": "PATCH", "when": lambda body: body.get("status") == "completed"}


def approved_pr(app: LiveApp, repo: str, *, deliver: bool = False) -> tuple[int, str, dict[str, Any]]:
    """PAY-1 approved by Bob, Alice's PR for it; the `opened` payload, delivered by hand when asked."""
    app.jira.add_ticket("PAY-1", status="In Review")
    app.jira.transition("PAY-1", "Approved", by="acc-bob")
    app.github.webhook_url = None
    sha = app.github.add_commit(repo, "feature/x", "PAY-1 work", author=ALICE)
    number = app.github.open_pull_request(repo, head="feature/x", title="PAY-1: refunds", author="alice")
    payload = app.github.pull_request_payload(repo, number, "opened")
    if deliver:
        app.deliver("pull_request", payload)
    return number, sha, payload


def delivered(app: LiveApp, event: str, payload: dict[str, Any]) -> str:
    """Deliver and wait until the app has finished with it; the delivery's id."""
    response = app.deliver(event, payload)
    assert response.status_code == 202, response.text
    app.settle()
    return str(response.json()["delivery"])


def creations(app: LiveApp) -> list[str]:
    return [
        f"{r.method} {r.status}"
        for r in app.github.recorder.requests
        if r.path.endswith("/check-runs") and r.method in ("GET", "POST")
    ]


def the_only_run(app: LiveApp, repo: str, sha: str) -> dict[str, Any]:
    (run,) = app.github.check_runs(repo, sha)
    return run


# ---------------------------------------------------------------- GitHub's transient failures are waited out


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_on_creating_the_check_run_is_waited_out(
    live_app: LiveApp, repo: str, status: int
) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.github.secondary_rate_limit("/check-runs", status=status, retry_after=1, method="POST")
    delivery = delivered(live_app, "pull_request", payload)
    run = the_only_run(live_app, repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert creations(live_app) == ["GET 200", f"POST {status}", "GET 200", "POST 201"]
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_a_502_on_the_final_patch_is_retried(live_app: LiveApp, repo: str) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.github.faults.answer("/check-runs/", 502, **COMPLETION)
    delivery = delivered(live_app, "pull_request", payload)
    run = the_only_run(live_app, repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert live_app.services.deliveries.status(delivery) == "completed"


@pytest.mark.parametrize("lost_as", [None, 502], ids=["connection-dropped", "bad-gateway"])
def test_a_check_run_created_but_whose_answer_was_lost_is_adopted(
    live_app: LiveApp, repo: str, lost_as: int | None
) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.github.faults.lose_response("/check-runs", method="POST", status=lost_as)
    delivery = delivered(live_app, "pull_request", payload)
    run = the_only_run(live_app, repo, sha)  # one run: the one GitHub made, adopted
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert creations(live_app) == ["GET 200", f"POST {lost_as or 0}", "GET 200"]
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_a_completion_whose_answer_was_lost_is_sent_again(live_app: LiveApp, repo: str) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.github.faults.lose_response("/check-runs/", **COMPLETION)
    delivery = delivered(live_app, "pull_request", payload)
    assert the_only_run(live_app, repo, sha)["conclusion"] == "success"
    patches = [r.status for r in live_app.github.recorder.requests if r.method == "PATCH"]
    assert patches == [0, 200]
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_a_read_timeout_on_the_final_patch_is_retried(live_app: LiveApp, repo: str) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.services.github.timeout = 1  # the client gives up on GitHub after a second
    live_app.github.faults.hang_on("/check-runs/", 3, method="PATCH")
    delivery = delivered(live_app, "pull_request", payload)
    assert the_only_run(live_app, repo, sha)["conclusion"] == "success"
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_a_re_run_whose_new_check_run_answer_was_lost_gets_only_that_one(live_app: LiveApp, repo: str) -> None:
    _, sha, _ = approved_pr(live_app, repo, deliver=True)
    first = completed_check(live_app.github, repo, sha)
    live_app.settle()
    live_app.github.faults.lose_response("/check-runs", method="POST")
    delivered(live_app, "check_run", live_app.github.check_run_payload(repo, first["id"]))
    runs = live_app.github.check_runs(repo, sha)
    # Re-run asks for a new run: one more, created once, and both completed.
    assert [(r["status"], r["conclusion"]) for r in runs] == [("completed", "success")] * 2
    assert runs[1]["external_id"]  # what told the retry the lost run was its own


# ---------------------------------------------------------------- what cannot be waited out: an error verdict


def test_github_failing_past_the_deadline_completes_the_check_as_an_error(live_app: LiveApp, repo: str) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    live_app.github.faults.answer("/compare/", 502, times=1000)  # the commits cannot be read
    delivery = delivered(live_app, "pull_request", payload)
    run = the_only_run(live_app, repo, sha)
    guid = delivery.removeprefix("github:")
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["title"] == f"Countersign could not finish this check (delivery {guid}): re-run it"
    assert "GitHub answered 502, and kept failing for longer than Countersign waits" in run["output"]["summary"]
    assert "Press Re-run on this check" in run["output"]["summary"]
    assert live_app.services.deliveries.status(delivery) == "failed"


def test_an_unreadable_answer_from_github_is_an_error_verdict_and_a_redelivery_runs_again(
    live_app: LiveApp, repo: str
) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    # Garbled on every run the job gets (a failed run is retried), then no more: a redelivery reads it whole.
    runs = live_app.services.settings.job_attempts
    live_app.github.faults.answer("/compare/", 200, body='{"commits": [{"sha": ', method="GET", times=runs)
    guid = str(uuid.uuid4())
    live_app.deliver("pull_request", payload, delivery_id=guid)
    live_app.settle()
    run = the_only_run(live_app, repo, sha)
    assert run["conclusion"] == "failure"
    assert run["output"]["title"] == f"Countersign could not finish this check (delivery {guid}): re-run it"
    assert "Countersign failed unexpectedly (JSONDecodeError)" in run["output"]["summary"]
    assert live_app.services.deliveries.status(f"github:{guid}") == "failed"

    live_app.deliver("pull_request", payload, delivery_id=guid)  # GitHub's redelivery keeps the id
    live_app.settle()
    run = the_only_run(live_app, repo, sha)
    assert (run["conclusion"], run["output"]["title"]) == (
        "success",
        "1 ticket approved by someone other than the authors",
    )
    assert live_app.services.deliveries.status(f"github:{guid}") == "completed"


def break_table(database_url: str, table: str) -> None:
    """Every INSERT into `table` fails from now on, as on a full disk or a revoked grant."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(f"CREATE TRIGGER broken_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(FAIL, 'broken'); END")
            )
        else:
            connection.execute(
                text("CREATE FUNCTION broken() RETURNS trigger AS $$ BEGIN RAISE 'broken'; END $$ LANGUAGE plpgsql")
            )
            connection.execute(
                text(f"CREATE TRIGGER broken_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION broken()")
            )
    engine.dispose()


def test_a_database_failure_still_completes_the_check_as_an_error(
    live_app: LiveApp, repo: str, database_url: str
) -> None:
    _, sha, payload = approved_pr(live_app, repo)
    break_table(database_url, "check_runs")
    delivery = delivered(live_app, "pull_request", payload)
    run = the_only_run(live_app, repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "failure")
    assert run["output"]["title"].startswith("Countersign could not finish this check (delivery ")
    assert "Countersign's database failed" in run["output"]["summary"]
    assert live_app.services.deliveries.status(delivery) == "failed"


# ---------------------------------------------------------------- the deploy gate answers, whatever happens

DEPLOY_POLICY = """\
jira:
  projects: [PAY]
identities:
  alice: acc-alice
  bob: acc-bob
  carol: acc-carol
"""


def a_deployment(app: LiveApp, repo: str) -> dict[str, Any]:
    """PAY-1, approved by Bob, shipped to production by Carol after the last release; the protection rule request."""
    app.jira.add_ticket("PAY-1", status="In Review")
    app.jira.transition("PAY-1", "Approved", by="acc-bob")
    app.github.webhook_url = None
    app.github.put_file(repo, ".github/countersign.yml", DEPLOY_POLICY)
    app.github.add_environment(repo, "production")
    released = app.github.store.repo(repo).branches["main"]
    earlier = app.github.create_deployment(
        repo, ref="main", sha=released, environment="production", creator="carol", deliver=False
    )
    app.github.set_deployment_status(repo, earlier, "success")
    sha = app.github.add_commit(repo, "main", "PAY-1 refunds", author=ALICE)
    deployment = app.github.create_deployment(repo, ref="main", sha=sha, environment="production", creator="carol")
    return app.github.protection_rule_payload(repo, deployment)


def decided(app: LiveApp, repo: str) -> list[dict[str, Any]]:
    return [a for a in app.github.deployment_answers(repo) if a["state"]]


def test_a_secondary_rate_limit_on_the_answer_is_waited_out(live_app: LiveApp, repo: str) -> None:
    payload = a_deployment(live_app, repo)
    live_app.github.secondary_rate_limit("/deployment_protection_rule", retry_after=1, method="POST")
    delivery = delivered(live_app, "deployment_protection_rule", payload)
    (answer,) = decided(live_app, repo)
    assert answer["state"] == "approved", answer["comment"]
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_an_answer_applied_but_lost_is_not_sent_twice(live_app: LiveApp, repo: str) -> None:
    payload = a_deployment(live_app, repo)
    live_app.github.faults.lose_response(
        "/deployment_protection_rule", method="POST", when=lambda body: body.get("state") is not None
    )
    delivery = delivered(live_app, "deployment_protection_rule", payload)
    (answer,) = decided(live_app, repo)
    assert answer["state"] == "approved"
    assert live_app.services.deliveries.status(delivery) == "completed"


def test_an_unexpected_failure_rejects_the_deployment_naming_the_delivery(live_app: LiveApp, repo: str) -> None:
    payload = a_deployment(live_app, repo)
    live_app.github.faults.answer("/commits", 200, body="[{", method="GET", times=1000)  # the history is garbled
    guid = str(uuid.uuid4())
    live_app.deliver("deployment_protection_rule", payload, delivery_id=guid)
    live_app.settle()
    (answer,) = decided(live_app, repo)
    assert answer["state"] == "rejected"
    assert (
        f"- Countersign could not decide this deployment (delivery {guid}): Countersign failed unexpectedly "
        "(JSONDecodeError); re-run the deployment job to ask again"
    ) in answer["comment"]
    # Recorded like any decision: the ledger shows why the deployment was refused.
    (entry,) = live_app.services.ledger.search(limit=10)
    assert entry.content()["payload"]["decision"]["state"] == "rejected"
    assert live_app.services.deliveries.status(f"github:{guid}") == "failed"


def test_a_database_failure_rejects_the_deployment_all_the_same(
    live_app: LiveApp, repo: str, database_url: str
) -> None:
    payload = a_deployment(live_app, repo)
    break_table(database_url, LedgerEntry.__tablename__)
    delivery = delivered(live_app, "deployment_protection_rule", payload)
    (answer,) = decided(live_app, repo)
    guid = delivery.removeprefix("github:")
    assert answer["state"] == "rejected"
    assert answer["comment"].startswith(
        f"Countersign could not decide this deployment to production (delivery {guid}): re-run the deployment "
        "job to ask again.\n- Countersign's database failed ("
    )
    assert live_app.services.deliveries.status(delivery) == "failed"


def test_two_deliveries_for_one_head_share_one_check_run(live_app: LiveApp, repo: str) -> None:
    """`opened` and `labeled` together (a PR opened with labels): one creates the run, the other adopts it."""
    number, sha, payload = approved_pr(live_app, repo)
    live_app.github.faults.rendezvous(f"/pulls/{number}", 2, method="GET")
    live_app.deliver("pull_request", payload)
    live_app.deliver("pull_request", live_app.github.pull_request_payload(repo, number, "labeled"))
    live_app.settle()
    wait_for(lambda: live_app.github.check_runs(repo, sha), message="a check run")
    run = the_only_run(live_app, repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
