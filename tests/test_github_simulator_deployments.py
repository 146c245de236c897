"""The GitHub simulator's deployments, environments, workflow runs and custom deployment protection rules,
driven by the real PyGithub (plain requests where PyGithub has no call) and checked against GitHub's descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulators.github import GitHubSimulator, Person
from tests.contract import load_github_spec, validate_response, validate_webhook
from tests.github_fixtures import (
    ALICE,
    REPO,
    WebhookReceiver,
    contract_problems,
    installation_client,
    integration,
    load_webhooks_spec,
    running_github,
    spec_available,
)

needs_spec = pytest.mark.skipif(not spec_available(), reason="node_modules/@octokit/openapi is absent: run npm ci")
DEPLOYER = "dora"


@pytest.fixture
def sim() -> Iterator[GitHubSimulator]:
    with running_github() as simulator:
        yield simulator


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()
    try:
        yield hooks
    finally:
        hooks.stop()


@pytest.fixture
def wired(receiver: WebhookReceiver) -> Iterator[GitHubSimulator]:
    with running_github(webhook_url=receiver.url) as simulator:
        yield simulator


def assert_contract(sim: GitHubSimulator) -> None:
    if not spec_available():
        return
    assert sim.recorder.requests, "no request reached the simulator"
    assert contract_problems(sim) == []


def token_for(sim: GitHubSimulator) -> str:
    return integration(sim).get_access_token(1).token


def answer(sim: GitHubSimulator, callback: str, token: str, **body: Any) -> requests.Response:
    return requests.post(callback, json=body, headers={"Authorization": f"token {token}"}, timeout=10)


def gated_deployment(sim: GitHubSimulator, *, environment: str = "production") -> tuple[str, int, dict[str, Any]]:
    """A repository whose `environment` has our rule, a PR, and a deployment of the PR's head: (sha, id, payload)."""
    sim.add_repository(REPO)
    sim.add_environment(REPO, environment)
    sha = sim.add_commit(REPO, "feature", "PAY-7: ship it", author=ALICE)
    sim.open_pull_request(REPO, head="feature", title="PAY-7: ship it", author="alice")
    deployment_id = sim.create_deployment(
        REPO, ref="refs/heads/feature", sha=sha, environment=environment, creator=DEPLOYER, deliver=False
    )
    return sha, deployment_id, sim.protection_rule_payload(REPO, deployment_id)


# ---------------------------------------------------------------- the webhook


def test_a_deployment_to_a_gated_environment_asks_the_app(wired: GitHubSimulator, receiver: WebhookReceiver) -> None:
    wired.add_repository(REPO)
    wired.add_environment(REPO, "production")
    sha = wired.add_commit(REPO, "feature", "PAY-7: ship it", author=ALICE)
    number = wired.open_pull_request(REPO, head="feature", title="PAY-7", author="alice")

    deployment_id = wired.create_deployment(
        REPO, ref="refs/heads/feature", sha=sha, environment="production", creator=DEPLOYER
    )

    (event, payload), *_ = [(e, p) for e, p in receiver.events() if e == "deployment_protection_rule"]
    assert event == "deployment_protection_rule"
    assert payload["action"] == "requested"
    assert (payload["environment"], payload["event"], payload["sha"], payload["ref"]) == (
        "production",
        "push",
        sha,
        "refs/heads/feature",
    )
    run_id = int(payload["deployment_callback_url"].split("/")[-2])
    assert payload["deployment_callback_url"] == (
        f"{wired.url}/repos/{REPO}/actions/runs/{run_id}/deployment_protection_rule"
    )
    assert payload["deployment"]["id"] == deployment_id
    assert payload["deployment"]["creator"]["login"] == DEPLOYER
    assert payload["sender"]["login"] == DEPLOYER
    assert [pr["number"] for pr in payload["pull_requests"]] == [number]
    assert payload["installation"]["id"] == 1
    assert validate_webhook(load_webhooks_spec(), "deployment-protection-rule-requested", payload) == []
    assert payload == wired.protection_rule_payload(REPO, deployment_id)


def test_environments_without_our_rule_and_deliver_false_send_nothing(
    wired: GitHubSimulator, receiver: WebhookReceiver
) -> None:
    wired.add_repository(REPO)
    wired.add_environment(REPO, "staging", protection_rule_app=False)
    sha = wired.add_commit(REPO, "main", "PAY-1", author=ALICE)
    wired.add_environment(REPO, "production")

    wired.create_deployment(REPO, ref="main", sha=sha, environment="staging", creator=DEPLOYER)
    wired.create_deployment(REPO, ref="main", sha=sha, environment="qa", creator=DEPLOYER)  # created on the fly
    wired.create_deployment(REPO, ref="main", sha=sha, environment="production", creator=DEPLOYER, deliver=False)

    assert [e for e, _ in receiver.events() if e == "deployment_protection_rule"] == []


def test_a_payload_by_hand_may_have_a_null_deployment_and_another_callback(sim: GitHubSimulator) -> None:
    _, deployment_id, _ = gated_deployment(sim)
    spec = load_webhooks_spec()

    payload = sim.protection_rule_payload(
        REPO, deployment_id, null_deployment=True, callback_url="https://evil.example.com/x"
    )

    assert payload["deployment"] is None
    assert payload["deployment_callback_url"] == "https://evil.example.com/x"
    # GitHub sends null although its own description types `deployment` as an object.
    problems = validate_webhook(spec, "deployment-protection-rule-requested", payload)
    assert problems and all(p.startswith("deployment-protection-rule-requested.deployment:") for p in problems)


def test_a_run_we_did_not_start_by_hand_is_the_callback_of_its_deployments(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sim.add_environment(REPO, "production")
    sha = sim.add_commit(REPO, "main", "PAY-1", author=ALICE)
    run_id = sim.add_workflow_run(REPO, head_sha=sha, head_branch="main", name="release", event="workflow_dispatch")

    deployment_id = sim.create_deployment(
        REPO, ref="main", sha=sha, environment="production", creator=DEPLOYER, run_id=run_id
    )
    payload = sim.protection_rule_payload(REPO, deployment_id)

    assert payload["deployment_callback_url"].endswith(f"/actions/runs/{run_id}/deployment_protection_rule")
    assert payload["event"] == "workflow_dispatch"
    assert payload["pull_requests"] == []


# ---------------------------------------------------------------- answering


def test_the_app_approves_once_through_the_callback(sim: GitHubSimulator) -> None:
    _, _, payload = gated_deployment(sim)
    callback = payload["deployment_callback_url"]
    run_id = int(callback.split("/")[-2])
    token = token_for(sim)
    run = installation_client(sim).get_repo(REPO).get_workflow_run(run_id)
    assert run.status == "waiting"

    approved = answer(sim, callback, token, environment_name="production", state="approved", comment="PAY-7 is Done")
    again = answer(sim, callback, token, environment_name="production", state="rejected", comment="changed my mind")

    assert approved.status_code == 204 and approved.content == b""
    assert again.status_code == 422
    assert "no pending" in again.json()["message"].lower()
    assert sim.deployment_answers(REPO) == [
        {"run_id": run_id, "environment_name": "production", "state": "approved", "comment": "PAY-7 is Done"}
    ]
    run = installation_client(sim).get_repo(REPO).get_workflow_run(run_id)
    assert (run.status, run.conclusion, run.head_branch) == ("in_progress", None, "feature")
    assert_contract(sim)


def test_a_rejection_fails_the_run(sim: GitHubSimulator) -> None:
    _, _, payload = gated_deployment(sim)
    run_id = int(payload["deployment_callback_url"].split("/")[-2])

    rejected = answer(
        sim, payload["deployment_callback_url"], token_for(sim), environment_name="production", state="rejected"
    )

    assert rejected.status_code == 204
    assert sim.deployment_answers(REPO)[0]["comment"] is None
    run = installation_client(sim).get_repo(REPO).get_workflow_run(run_id)
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert_contract(sim)


def test_progress_reports_stop_at_ten_per_deployment_and_1024_characters(sim: GitHubSimulator) -> None:
    _, _, payload = gated_deployment(sim)
    callback = payload["deployment_callback_url"]
    token = token_for(sim)

    too_long = answer(sim, callback, token, environment_name="production", comment="x" * 1025)
    reports = [answer(sim, callback, token, environment_name="production", comment="y" * 1024) for _ in range(10)]
    eleventh = answer(sim, callback, token, environment_name="production", comment="still waiting")
    decision = answer(sim, callback, token, environment_name="production", state="approved")

    assert too_long.status_code == 422
    assert [r.status_code for r in reports] == [204] * 10
    assert eleventh.status_code == 422
    assert decision.status_code == 204
    answers = sim.deployment_answers(REPO)
    assert [a["state"] for a in answers] == [None] * 10 + ["approved"]
    assert_contract(sim)


def test_malformed_or_misdirected_answers_are_refused(sim: GitHubSimulator) -> None:
    _, _, payload = gated_deployment(sim)
    sim.add_environment(REPO, "staging", protection_rule_app=False)
    callback = payload["deployment_callback_url"]
    token = token_for(sim)

    no_comment = answer(sim, callback, token, environment_name="production")
    bad_state = answer(sim, callback, token, environment_name="production", state="maybe")
    other_env = answer(sim, callback, token, environment_name="staging", state="approved")
    unknown_env = answer(sim, callback, token, environment_name="nowhere", state="approved")
    unknown_run = answer(
        sim,
        f"{sim.url}/repos/{REPO}/actions/runs/1/deployment_protection_rule",
        token,
        environment_name="production",
        state="approved",
    )
    no_token = requests.post(callback, json={"environment_name": "production", "state": "approved"}, timeout=10)

    assert [r.status_code for r in (no_comment, bad_state, other_env, unknown_env)] == [422] * 4
    assert unknown_run.status_code == 404
    assert no_token.status_code == 401
    assert sim.deployment_answers(REPO) == []


# ---------------------------------------------------------------- deployments, statuses, environments


def test_deployments_are_listed_newest_first_filtered_and_paginated(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    shas = [sim.add_commit(REPO, "main", f"PAY-{i}", author=ALICE) for i in range(35)]
    ids = [sim.create_deployment(REPO, ref="main", sha=sha, environment="production", creator=DEPLOYER) for sha in shas]
    staging = sim.create_deployment(REPO, ref="main", sha=shas[0], environment="staging", creator=DEPLOYER)
    repo = installation_client(sim).get_repo(REPO)

    production = [d.id for d in repo.get_deployments(environment="production")]
    by_sha = [d.id for d in repo.get_deployments(sha=shas[0])]
    by_ref = repo.get_deployments(ref="main").totalCount
    nothing = list(repo.get_deployments(environment="nowhere"))

    assert production == list(reversed(ids))
    assert by_sha == [staging, ids[0]]
    assert by_ref == 36
    assert nothing == []
    deployment = repo.get_deployment(ids[3])
    assert (deployment.sha, deployment.environment, deployment.creator.login) == (shas[3], "production", DEPLOYER)
    assert_contract(sim)


def test_the_last_successful_deployment_of_an_environment_is_found_through_statuses(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    first = sim.add_commit(REPO, "main", "PAY-1", author=ALICE)
    second = sim.add_commit(REPO, "main", "PAY-2", author=ALICE)
    ok = sim.create_deployment(REPO, ref="main", sha=first, environment="production", creator=DEPLOYER)
    failed = sim.create_deployment(REPO, ref="main", sha=second, environment="production", creator=DEPLOYER)
    sim.set_deployment_status(REPO, ok, "in_progress")
    sim.set_deployment_status(REPO, ok, "success")
    sim.set_deployment_status(REPO, failed, "failure")
    repo = installation_client(sim).get_repo(REPO)

    last_good = next(
        d for d in repo.get_deployments(environment="production") if any(s.state == "success" for s in d.get_statuses())
    )
    created = repo.get_deployment(failed).create_status("error", description="rolled back")
    states = [s.state for s in repo.get_deployment(failed).get_statuses()]

    assert (last_good.id, last_good.sha) == (ok, first)
    assert [s.state for s in repo.get_deployment(ok).get_statuses()] == ["success", "in_progress"]
    assert created.state == "error" and created.description == "rolled back"
    assert states == ["error", "failure"]
    assert repo.get_deployment(failed).get_status(created.id).state == "error"
    with pytest.raises(ValueError, match="state"):
        sim.set_deployment_status(REPO, ok, "approved")
    assert_contract(sim)


def test_environments_and_their_custom_rules(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sim.add_environment(REPO, "production")
    sim.add_environment(REPO, "staging", protection_rule_app=False)
    repo = installation_client(sim).get_repo(REPO)
    token = token_for(sim)

    production = repo.get_environment("production")
    rules = requests.get(
        f"{sim.url}/repos/{REPO}/environments/production/deployment_protection_rules",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    ).json()
    none = requests.get(
        f"{sim.url}/repos/{REPO}/environments/staging/deployment_protection_rules",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    ).json()

    assert production.name == "production"
    assert rules["total_count"] == 1
    assert rules["custom_deployment_protection_rules"][0]["app"]["slug"] == sim.app_slug
    assert none == {"total_count": 0, "custom_deployment_protection_rules": []}
    with pytest.raises(Exception, match="404"):
        repo.get_environment("nowhere")
    assert_contract(sim)


# ---------------------------------------------------------------- other apps' CI results


def test_check_runs_and_statuses_of_other_apps_are_visible(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sha = sim.add_commit(REPO, "main", "PAY-1", author=ALICE)
    sim.add_check_run(REPO, sha, "build")
    sim.add_check_run(REPO, sha, "lint", status="in_progress", conclusion=None)
    sim.add_check_run(REPO, sha, "scan", conclusion="failure", app_slug="snyk")
    sim.add_status(REPO, sha, "ci/jenkins", "success")
    sim.add_status(REPO, sha, "ci/coverage", "pending")
    sim.add_status(REPO, sha, "ci/coverage", "success")
    repo = installation_client(sim).get_repo(REPO)
    ours = repo.create_check_run("Countersign", sha, status="in_progress")

    runs = {r.name: (r.status, r.conclusion, r.app.slug) for r in repo.get_commit(sha).get_check_runs()}
    combined = repo.get_commit(sha).get_combined_status()

    assert runs == {
        "build": ("completed", "success", "github-actions"),
        "lint": ("in_progress", None, "github-actions"),
        "scan": ("completed", "failure", "snyk"),
        "Countersign": ("in_progress", None, sim.app_slug),
    }
    assert ours.check_suite.id not in {
        r["check_suite"]["id"] for r in sim.check_runs(REPO) if r["name"] != "Countersign"
    }
    assert combined.state == "success"
    assert {s.context: s.state for s in combined.statuses} == {"ci/jenkins": "success", "ci/coverage": "success"}
    assert_contract(sim)


# ---------------------------------------------------------------- long histories


def long_history(sim: GitHubSimulator, count: int) -> list[str]:
    sim.add_repository(REPO)
    base = sim.add_commit(REPO, "main", "base", author=ALICE)
    author = Person("Alice", "alice@example.com", "alice")
    return [base] + [sim.add_commit(REPO, "main", f"PAY-{i}: change", author=author) for i in range(count)]


def get(client: Any, path: str, token: str) -> Any:
    response = client.get(path, headers={"Authorization": f"token {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# How fast these pages come is measured by bench/simulators.py: a time limit here would fail on a busy machine.
def test_compare_of_2000_commits_pages_through_all_of_them_oldest_first(sim: GitHubSimulator) -> None:
    shas = long_history(sim, 2000)
    token = token_for(sim)
    client = sim.flask_app.test_client()

    pages = [get(client, f"/repos/{REPO}/compare/{shas[0]}...main?per_page=100&page={p}", token) for p in range(1, 21)]

    listed = [c["sha"] for page in pages for c in page["commits"]]
    assert listed == shas[1:]
    assert {page["total_commits"] for page in pages} == {2000}


def test_history_of_5000_commits_pages_newest_first_at_any_depth(sim: GitHubSimulator) -> None:
    shas = long_history(sim, 5000)
    token = token_for(sim)
    client = sim.flask_app.test_client()

    first = get(client, f"/repos/{REPO}/commits?sha=main&per_page=100&page=1", token)
    deep = get(client, f"/repos/{REPO}/commits?sha=main&per_page=100&page=40", token)

    assert [c["sha"] for c in first] == list(reversed(shas))[:100]
    assert [c["sha"] for c in deep] == list(reversed(shas))[3900:4000]


def test_a_pygithub_walk_of_a_long_history(sim: GitHubSimulator) -> None:
    shas = long_history(sim, 600)
    repo = installation_client(sim).get_repo(REPO)

    history = [c.sha for c in repo.get_commits(sha="main")]
    compared = repo.compare(shas[0], "main")

    assert history == [*reversed(shas), history[-1]]  # and the initial commit
    assert compared.total_commits == 600
    assert_contract(sim)


# ---------------------------------------------------------------- answers against the REST description


@needs_spec
def test_deployment_answers_match_githubs_documented_response_schemas(sim: GitHubSimulator) -> None:
    sha, deployment_id, payload = gated_deployment(sim)
    sim.set_deployment_status(REPO, deployment_id, "success")
    sim.add_check_run(REPO, sha, "build")
    sim.add_status(REPO, sha, "ci/jenkins", "success")
    run_id = int(payload["deployment_callback_url"].split("/")[-2])
    token = token_for(sim)
    auth = {"Authorization": f"token {token}"}
    status = requests.post(
        f"{sim.url}/repos/{REPO}/deployments/{deployment_id}/statuses",
        json={"state": "in_progress", "log_url": "https://ci.example.com/1"},
        headers=auth,
        timeout=10,
    )
    answers = [("POST", f"/repos/{REPO}/deployments/{deployment_id}/statuses", status)]
    for path in [
        f"/repos/{REPO}/actions/runs/{run_id}",
        f"/repos/{REPO}/deployments",
        f"/repos/{REPO}/deployments/{deployment_id}",
        f"/repos/{REPO}/deployments/{deployment_id}/statuses",
        f"/repos/{REPO}/deployments/{deployment_id}/statuses/{status.json()['id']}",
        f"/repos/{REPO}/environments/production",
        f"/repos/{REPO}/environments/production/deployment_protection_rules",
        f"/repos/{REPO}/commits/{sha}/check-runs",
        f"/repos/{REPO}/commits/{sha}/status",
    ]:
        answers.append(("GET", path, requests.get(f"{sim.url}{path}", headers=auth, timeout=10)))

    spec = load_github_spec()
    problems = [
        p for method, path, r in answers for p in validate_response(spec, method, path, r.status_code, r.json())
    ]
    assert problems == []
    assert_contract(sim)
