"""The simulators' scripted faults: writes whose answer is lost, refusals, rate limits, hangs, holds and races."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from conftest import wait_for
from github import Github, GithubException, RateLimitExceededException
from github_fixtures import ALICE, REPO, installation_client, running_github

from simulators.github import GitHubSimulator


@pytest.fixture
def sim() -> Iterator[GitHubSimulator]:
    with running_github() as simulator:
        yield simulator


@pytest.fixture
def client(sim: GitHubSimulator) -> Github:
    sim.add_repository(REPO)
    return installation_client(sim)


def head(sim: GitHubSimulator) -> str:
    return sim.add_commit(REPO, "main", "PAY-1 work", author=ALICE)


def test_a_lost_answer_still_applies_the_write(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    sim.faults.lose_response("/check-runs", method="POST")
    with pytest.raises(requests.ConnectionError):
        client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha, status="in_progress")
    (run,) = sim.check_runs(REPO, sha)  # created, though the client never heard of it
    assert run["status"] == "in_progress"
    assert sim.recorder.requests[-1].status == 0  # logged as never answered


def test_a_lost_answer_can_be_a_bad_gateway_instead(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    sim.faults.lose_response("/check-runs", method="POST", status=502)
    with pytest.raises(GithubException) as raised:
        client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha)
    assert raised.value.status == 502
    assert len(sim.check_runs(REPO, sha)) == 1
    # Once only: the next one is answered.
    client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha)
    assert len(sim.check_runs(REPO, sha)) == 2


def test_a_refused_write_is_not_applied(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    sim.faults.answer("/check-runs", 502, method="POST")
    with pytest.raises(GithubException):
        client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha)
    assert sim.check_runs(REPO, sha) == []


def test_a_fault_can_match_on_the_body(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    run = client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha, status="in_progress")
    sim.faults.answer("/check-runs/", 502, method="PATCH", when=lambda body: body.get("status") == "completed")
    run.edit(output={"title": "still going", "summary": "…"})  # not a completion: answered
    with pytest.raises(GithubException):
        run.edit(status="completed", conclusion="success")
    assert sim.check_runs(REPO, sha)[0]["status"] == "in_progress"


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_looks_like_githubs(sim: GitHubSimulator, client: Github, status: int) -> None:
    sha = head(sim)
    sim.secondary_rate_limit("/check-runs", status=status, retry_after=7, method="POST")
    with pytest.raises(GithubException) as raised:
        client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha)
    assert raised.value.status == status
    assert raised.value.headers is not None and raised.value.headers["retry-after"] == "7"
    assert raised.value.data["message"].startswith("You have exceeded a secondary rate limit.")
    if status == 403:
        assert isinstance(raised.value, RateLimitExceededException)  # how PyGithub recognises it
    assert sim.check_runs(REPO, sha) == []


def test_hang_on_times_out_a_client_and_still_applies(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sha = head(sim)
    token = installation_client(sim).requester.auth.token  # type: ignore[union-attr]
    sim.faults.hang_on("/check-runs", 1.0, method="POST")
    with pytest.raises(requests.Timeout):
        requests.post(
            f"{sim.url}/repos/{REPO}/check-runs",
            json={"name": "Countersign", "head_sha": sha},
            headers={"Authorization": f"token {token}"},
            timeout=0.2,
        )
    fault = sim.faults.scripted[0]
    assert fault.matched == 1
    # The sleeping request goes on to create the run once it wakes.
    (run,) = wait_for(lambda: sim.check_runs(REPO, sha), message="the hung request to be applied")
    assert run["name"] == "Countersign"


def test_hold_keeps_a_request_until_released(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    hold = sim.faults.hold("/check-runs", method="POST")
    created: list[int] = []
    worker = threading.Thread(
        target=lambda: created.append(client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha).id)
    )
    worker.start()
    assert hold.caught.wait(10)
    assert sim.check_runs(REPO, sha) == []  # held before it was applied
    hold.release()
    worker.join(10)
    assert [r["id"] for r in sim.check_runs(REPO, sha)] == created


def test_rendezvous_lets_requests_go_together(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    sim.faults.rendezvous(f"/commits/{sha}", 2, method="GET")
    repo = client.get_repo(REPO)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(repo.get_commit(sha).sha)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == [sha, sha]


def test_check_runs_can_be_listed_by_name_and_app(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    ours = client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha, external_id="attempt-1")
    sim.add_check_run(REPO, sha, "Countersign", app_slug="impostor")  # same name, another app
    sim.add_check_run(REPO, sha, "build")
    token = client.requester.auth.token  # type: ignore[union-attr]
    listed = requests.get(
        f"{sim.url}/repos/{REPO}/commits/{sha}/check-runs",
        params={"check_name": "Countersign", "app_id": sim.app_id, "filter": "latest"},
        headers={"Authorization": f"token {token}"},
        timeout=10,
    ).json()
    assert [(r["id"], r["external_id"], r["app"]["id"]) for r in listed["check_runs"]] == [
        (ours.id, "attempt-1", sim.app_id)
    ]


def test_reset_clears_scripted_faults_and_releases_holds(sim: GitHubSimulator, client: Github) -> None:
    sha = head(sim)
    hold = sim.faults.hold("/check-runs", method="POST")
    sim.faults.answer("/check-runs", 500)
    sim.faults.reset()
    assert hold.released.is_set()
    client.get_repo(REPO).create_check_run(name="Countersign", head_sha=sha)
    assert len(sim.check_runs(REPO, sha)) == 1
