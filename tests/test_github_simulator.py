"""The GitHub simulator, driven by the real PyGithub over HTTP and checked against GitHub's official descriptions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from github import GithubException
from jwt.algorithms import RSAAlgorithm

from simulators.github import GitHubSimulator, Person, generate_app_key
from tests.contract import load_github_spec, validate_response, validate_webhook
from tests.github_fixtures import (
    ALICE,
    APP_ID,
    BOB,
    OUTSIDER,
    REPO,
    WEBHOOK_SECRET,
    WebhookReceiver,
    a_pull_request_with_commits,
    app_key,
    contract_problems,
    installation_client,
    integration,
    load_example,
    load_webhooks_spec,
    running_github,
    spec_available,
)

needs_spec = pytest.mark.skipif(not spec_available(), reason="node_modules/@octokit/openapi is absent: run npm ci")


@pytest.fixture
def sim() -> Iterator[GitHubSimulator]:
    with running_github() as simulator:
        yield simulator


def assert_contract(sim: GitHubSimulator) -> None:
    """Every request PyGithub sent is one GitHub documents (skipped only where npm has not run)."""
    if not spec_available():
        return
    assert sim.recorder.requests, "no request reached the simulator"
    assert contract_problems(sim) == []


def app_jwt(*, iat_offset: int = -60, exp_offset: int = 300, iss: str | int = APP_ID, key: str | None = None) -> str:
    # Signed by hand: pyjwt refuses to encode a numeric `iss`, which GitHub accepts.
    now = int(time.time())
    claims = {"iat": now + iat_offset, "exp": now + exp_offset, "iss": iss}

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    algorithm = RSAAlgorithm(RSAAlgorithm.SHA256)
    signature = algorithm.sign(signing_input, algorithm.prepare_key(key or app_key()[0]))
    return (signing_input + b"." + b64(signature)).decode()


def token_for(sim: GitHubSimulator, installation_id: int = 1) -> str:
    return integration(sim).get_access_token(installation_id).token


def api_get(sim: GitHubSimulator, path: str, token: str, **params: object) -> requests.Response:
    return requests.get(f"{sim.url}{path}", params=params, headers={"Authorization": f"token {token}"}, timeout=10)


def link_rels(response: requests.Response) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("Link", ""))}


# ---------------------------------------------------------------- app authentication


def test_an_app_jwt_buys_an_installation_token_that_lasts_an_hour(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    gi = integration(sim)

    grant = gi.get_access_token(1)
    installation = gi.get_repo_installation("acme", "payments")

    assert grant.token.startswith("ghs_")
    assert timedelta(minutes=59) < grant.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert installation.id == 1
    assert installation_client(sim).get_repo(REPO).full_name == REPO
    assert_contract(sim)


def test_installation_tokens_are_opaque_and_vary_in_length(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    tokens = {token_for(sim) for _ in range(6)}

    assert len(tokens) == 6
    assert len({len(t) for t in tokens}) > 1


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("signed by another key", lambda: app_jwt(key=generate_app_key()[0])),
        ("lives longer than 10 minutes", lambda: app_jwt(iat_offset=-60, exp_offset=700)),
        ("already expired", lambda: app_jwt(iat_offset=-600, exp_offset=-30)),
        ("issued in the future", lambda: app_jwt(iat_offset=120, exp_offset=300)),
        ("for another app", lambda: app_jwt(iss=APP_ID + 1)),
        ("not a JWT", lambda: "not-a-jwt"),
    ],
)
def test_a_bad_app_jwt_is_refused(sim: GitHubSimulator, name: str, token: object) -> None:
    sim.add_repository(REPO)
    assert callable(token)
    response = requests.post(
        f"{sim.url}/app/installations/1/access_tokens",
        headers={"Authorization": f"Bearer {token()}", "Accept": "application/vnd.github+json"},
        timeout=10,
    )

    assert response.status_code == 401, name
    assert set(response.json()) >= {"message", "documentation_url"}


def test_the_issuer_may_be_a_string_or_a_number(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    for iss in (APP_ID, str(APP_ID)):
        response = requests.post(
            f"{sim.url}/app/installations/1/access_tokens",
            headers={"Authorization": f"Bearer {app_jwt(iss=iss)}"},
            timeout=10,
        )
        assert response.status_code == 201


def test_api_calls_need_a_live_installation_token(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    token = token_for(sim)

    assert api_get(sim, f"/repos/{REPO}", token).status_code == 200
    assert requests.get(f"{sim.url}/repos/{REPO}", timeout=10).json()["message"] == "Bad credentials"
    assert api_get(sim, f"/repos/{REPO}", "ghs_forged").status_code == 401
    sim.expire_tokens()
    expired = api_get(sim, f"/repos/{REPO}", token)
    assert expired.status_code == 401
    assert expired.json()["message"] == "Bad credentials"


def test_a_token_sees_only_its_installations_repositories(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO, installation_id=1)
    sim.add_repository("other/secret", installation_id=2)
    token = token_for(sim, 1)

    assert api_get(sim, "/repos/other/secret", token).status_code == 404
    assert api_get(sim, "/repos/other/secret", token_for(sim, 2)).status_code == 200


def test_unknown_paths_answer_githubs_not_found(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    response = api_get(sim, f"/repos/{REPO}/no-such-thing", token_for(sim))

    assert response.status_code == 404
    assert response.json()["message"] == "Not Found"
    assert "documentation_url" in response.json()


# ---------------------------------------------------------------- pull requests, commits, compare


def test_pull_request_commits_stop_at_250_like_github(sim: GitHubSimulator) -> None:
    number = a_pull_request_with_commits(sim, 300)
    pr = installation_client(sim).get_repo(REPO).get_pull(number)

    commits = list(pr.get_commits())

    assert pr.commits == 300
    assert len(commits) == 250
    assert [c.commit.message for c in commits[:2]] == ["PAY-1: change 1", "PAY-2: change 2"]
    assert_contract(sim)


def test_compare_pages_through_all_300_commits_oldest_first(sim: GitHubSimulator) -> None:
    a_pull_request_with_commits(sim, 300)
    repo = installation_client(sim).get_repo(REPO)

    paged = list(repo.compare("main", "feature", comparison_commits_per_page=100).commits)
    unpaged_default = list(repo.compare("main", "feature").commits)

    expected = [f"PAY-{i}: change {i}" for i in range(1, 301)]
    assert [c.commit.message for c in paged] == expected
    assert [c.commit.message for c in unpaged_default] == expected
    comparison = repo.compare("main", "feature")
    assert (comparison.status, comparison.ahead_by, comparison.behind_by, comparison.total_commits) == (
        "ahead",
        300,
        0,
        300,
    )
    assert_contract(sim)


def test_compare_without_paging_lists_250_commits_and_links_the_rest(sim: GitHubSimulator) -> None:
    a_pull_request_with_commits(sim, 300)
    token = token_for(sim)

    first = api_get(sim, f"/repos/{REPO}/compare/main...feature", token)
    second = api_get(sim, f"/repos/{REPO}/compare/main...feature", token, page=2, per_page=100)

    assert len(first.json()["commits"]) == 250
    assert first.json()["total_commits"] == 300
    assert "page=2" in link_rels(first)["next"]
    assert second.json()["commits"][0]["commit"]["message"] == "PAY-101: change 101"
    assert set(link_rels(second)) == {"prev", "next", "last", "first"}


def test_compare_of_diverged_branches_and_merge_commits(sim: GitHubSimulator) -> None:
    base = sim.add_repository(REPO)
    topic = sim.add_commit(REPO, "topic", "PAY-7: topic work", author=ALICE)
    main_fix = sim.add_commit(REPO, "main", "PAY-8: hotfix on main", author=BOB)
    merge = sim.add_commit(REPO, "topic", "Merge main into topic", author=ALICE, parents=[topic, main_fix])
    repo = installation_client(sim).get_repo(REPO)

    diverged = repo.compare(base, topic)
    merged = repo.compare("main", "topic")
    history = [c.sha for c in repo.get_commits(sha="topic")]

    assert diverged.status == "ahead"
    assert merged.status == "ahead"
    assert [c.sha for c in merged.commits] == [topic, merge]
    assert merged.merge_base_commit.sha == main_fix
    assert [p.sha for p in repo.get_commit(merge).parents] == [topic, main_fix]
    assert history == [merge, main_fix, topic, base]
    assert_contract(sim)


def test_commit_authors_are_github_users_only_when_they_have_a_login(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    by_user = sim.add_commit(REPO, "feature", "PAY-1: by a user", author=ALICE, committer=BOB)
    by_stranger = sim.add_commit(REPO, "feature", "PAY-2: by a stranger", author=OUTSIDER)
    repo = installation_client(sim).get_repo(REPO)

    first, second = repo.get_commit(by_user), repo.get_commit(by_stranger)

    assert (first.author.login, first.committer.login) == ("alice", "bob")
    assert first.commit.author.email == "alice@example.com"
    assert second.author is None
    assert second.commit.author.email == "someone@example.net"
    assert_contract(sim)


def test_commit_history_is_paginated_newest_first_with_link_headers(sim: GitHubSimulator) -> None:
    a_pull_request_with_commits(sim, 45)
    token = token_for(sim)

    page1 = api_get(sim, f"/repos/{REPO}/commits", token, sha="feature", per_page=20)
    page3 = api_get(sim, f"/repos/{REPO}/commits", token, sha="feature", per_page=20, page=3)

    assert page1.json()[0]["commit"]["message"] == "PAY-45: change 45"
    rels = link_rels(page1)
    assert set(rels) == {"next", "last"}
    assert "page=3" in rels["last"]
    assert "per_page=20" in rels["next"]
    assert [c["commit"]["message"] for c in page3.json()] == [
        "PAY-5: change 5",
        "PAY-4: change 4",
        "PAY-3: change 3",
        "PAY-2: change 2",
        "PAY-1: change 1",
        "Initial commit",
    ]
    assert "next" not in link_rels(page3)


def test_per_page_above_100_is_clamped_like_github(sim: GitHubSimulator) -> None:
    a_pull_request_with_commits(sim, 150)
    token = token_for(sim)

    response = api_get(sim, f"/repos/{REPO}/pulls/1/commits", token, per_page=500)

    assert len(response.json()) == 100
    assert "next" in link_rels(response)
    assert len(api_get(sim, f"/repos/{REPO}/pulls/1/commits", token).json()) == 30


def test_pull_requests_list_by_state_and_commit(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sha = sim.add_commit(REPO, "one", "PAY-1: one", author=ALICE)
    sim.add_commit(REPO, "two", "PAY-2: two", author=ALICE)
    first = sim.open_pull_request(REPO, head="one", title="PAY-1", author="alice", labels=("emergency",))
    second = sim.open_pull_request(REPO, head="two", title="PAY-2", author="alice", draft=True)
    sim.edit_pull_request(REPO, second, state="closed")
    repo = installation_client(sim).get_repo(REPO)

    assert [p.number for p in repo.get_pulls(state="open")] == [first]
    assert [p.number for p in repo.get_pulls(state="all")] == [second, first]
    assert [p.number for p in repo.get_commit(sha).get_pulls()] == [first]
    assert [p.state for p in repo.get_commit(repo.get_pull(second).head.sha).get_pulls()] == ["closed"]
    pr = repo.get_pull(first)
    assert [label.name for label in pr.labels] == ["emergency"]
    assert (pr.user.login, pr.head.ref, pr.base.ref, pr.head.sha) == ("alice", "one", "main", sha)
    assert repo.get_pull(second).draft is True
    assert_contract(sim)


def test_reviews_are_listed_against_the_commit_they_approved(sim: GitHubSimulator) -> None:
    number = a_pull_request_with_commits(sim, 1)
    old_head = sim.pull_request(REPO, number)["head"]["sha"]
    sim.add_review(REPO, number, login="bob")
    sim.push(REPO, "feature", "PAY-1: after review", author=ALICE)
    sim.add_review(REPO, number, login="carol", state="CHANGES_REQUESTED")
    pr = installation_client(sim).get_repo(REPO).get_pull(number)

    reviews = [(r.user.login, r.state, r.commit_id) for r in pr.get_reviews()]

    assert reviews == [("bob", "APPROVED", old_head), ("carol", "CHANGES_REQUESTED", pr.head.sha)]
    assert old_head != pr.head.sha
    assert_contract(sim)


# ---------------------------------------------------------------- contents


def test_contents_serves_files_per_branch_and_404s_the_rest(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sim.put_file(REPO, ".github/countersign.yml", "require_ticket: true\n")
    sim.put_file(REPO, ".github/countersign.yml", "require_ticket: false\n", branch="relaxed")
    repo = installation_client(sim).get_repo(REPO)

    found = repo.get_contents(".github/countersign.yml")
    on_branch = repo.get_contents(".github/countersign.yml", ref="relaxed")
    with pytest.raises(GithubException) as missing:
        repo.get_contents(".github/nothing.yml")

    assert not isinstance(found, list)
    assert found.decoded_content == b"require_ticket: true\n"
    assert found.sha == hashlib.sha1(b"blob 21\0require_ticket: true\n").hexdigest()
    assert not isinstance(on_branch, list)
    assert on_branch.decoded_content == b"require_ticket: false\n"
    assert missing.value.status == 404
    assert missing.value.data["message"] == "Not Found"
    assert_contract(sim)


# ---------------------------------------------------------------- check runs and statuses


def test_check_runs_are_created_updated_and_listed(sim: GitHubSimulator) -> None:
    number = a_pull_request_with_commits(sim, 2)
    repo = installation_client(sim).get_repo(REPO)
    head = repo.get_pull(number).head.sha

    run = repo.create_check_run("Countersign", head, status="in_progress", external_id="eval-1")
    run.edit(conclusion="failure", output={"title": "PAY-1 is not approved", "summary": "Ask someone else."})
    again = repo.create_check_run(
        "Countersign", head, conclusion="success", output={"title": "Approved", "summary": "All good."}
    )

    assert run.status == "completed"
    assert run.conclusion == "failure"
    fetched = repo.get_check_run(run.id)
    assert (fetched.output.title, fetched.output.summary) == ("PAY-1 is not approved", "Ask someone else.")
    assert [r.pull_requests[0].number for r in [fetched]] == [number]
    latest = list(repo.get_commit(head).get_check_runs(check_name="Countersign"))
    assert [(r.id, r.conclusion) for r in latest] == [(again.id, "success")]
    every = list(repo.get_commit(head).get_check_runs(filter="all"))
    assert {r.id for r in every} == {run.id, again.id}
    assert [r["id"] for r in sim.check_runs(REPO, head)] == [run.id, again.id]
    assert_contract(sim)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"head_sha": "HEAD"}, "name"),
        ({"name": "Countersign"}, "head_sha"),
        ({"name": "Countersign", "head_sha": "f" * 40}, "No commit found"),
        ({"name": "Countersign", "head_sha": "HEAD", "status": "completed"}, "conclusion"),
        ({"name": "Countersign", "head_sha": "HEAD", "conclusion": "passed"}, "conclusion"),
        ({"name": "C", "head_sha": "HEAD", "output": {"title": "t", "summary": "x" * 65_536}}, "65535"),
        ({"name": "C", "head_sha": "HEAD", "output": {"title": "t", "summary": "s", "text": "x" * 65_536}}, "65535"),
        ({"name": "C", "head_sha": "HEAD", "output": {"summary": "no title"}}, "title"),
    ],
)
def test_check_runs_enforce_githubs_limits(sim: GitHubSimulator, body: dict[str, object], fragment: str) -> None:
    head = sim.add_repository(REPO)
    payload = {k: (head if v == "HEAD" else v) for k, v in body.items()}

    response = requests.post(
        f"{sim.url}/repos/{REPO}/check-runs",
        json=payload,
        headers={"Authorization": f"token {token_for(sim)}"},
        timeout=10,
    )

    assert response.status_code == 422
    assert fragment in response.text
    assert sim.check_runs(REPO) == []


def test_a_summary_of_exactly_65535_characters_is_accepted(sim: GitHubSimulator) -> None:
    head = sim.add_repository(REPO)
    repo = installation_client(sim).get_repo(REPO)

    run = repo.create_check_run("C", head, conclusion="neutral", output={"title": "t", "summary": "x" * 65_535})

    assert len(repo.get_check_run(run.id).output.summary) == 65_535


def test_commit_statuses_combine_by_context(sim: GitHubSimulator) -> None:
    head = sim.add_repository(REPO)
    commit = installation_client(sim).get_repo(REPO).get_commit(head)

    commit.create_status("pending", context="countersign")
    commit.create_status("success", context="countersign", description="approved", target_url="https://x.test")
    commit.create_status("failure", context="ci")

    combined = commit.get_combined_status()
    assert combined.state == "failure"
    assert sorted((s.context, s.state) for s in combined.statuses) == [("ci", "failure"), ("countersign", "success")]
    assert_contract(sim)
    listed = api_get(sim, f"/repos/{REPO}/commits/{head}/statuses", token_for(sim)).json()
    assert [s["state"] for s in listed] == ["failure", "success", "pending"]


# ---------------------------------------------------------------- faults and the request log


def test_faults_answer_in_githubs_error_shape_and_are_logged(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    token = token_for(sim)
    sim.faults.fail_next.extend([502, 429])
    sim.faults.retry_after = 7

    bad_gateway = api_get(sim, f"/repos/{REPO}", token)
    limited = api_get(sim, f"/repos/{REPO}", token)
    fine = api_get(sim, f"/repos/{REPO}", token)

    assert (bad_gateway.status_code, limited.status_code, fine.status_code) == (502, 429, 200)
    assert set(limited.json()) >= {"message", "documentation_url"}
    assert limited.headers["Retry-After"] == "7"
    assert [r.status for r in sim.recorder.requests[-3:]] == [502, 429, 200]


def test_the_state_page_is_neither_logged_nor_faulted(sim: GitHubSimulator) -> None:
    a_pull_request_with_commits(sim, 1)
    sim.faults.down = True
    before = len(sim.recorder.requests)

    state = requests.get(f"{sim.url}/_sim/state", timeout=10).json()

    assert state["repositories"][REPO]["pull_requests"][0]["title"] == "PAY-1: a long change"
    assert len(sim.recorder.requests) == before


# ---------------------------------------------------------------- webhooks


def test_deliver_posts_signed_json_exactly_as_github_does() -> None:
    receiver = WebhookReceiver()
    try:
        with running_github(webhook_url=receiver.url) as sim:
            sim.add_repository(REPO)
            head = sim.add_commit(REPO, "topic", "PAY-3: topic", author=ALICE)
            payload = sim.check_suite_payload(REPO, head)
            response = sim.deliver("check_suite", payload, delivery_id="d-1")
    finally:
        receiver.stop()

    headers, body = receiver.deliveries[-1]
    assert response.status_code == 202
    assert json.loads(body) == payload
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["x-github-event"] == "check_suite"
    assert headers["x-github-delivery"] == "d-1"
    assert headers["x-github-hook-installation-target-id"] == str(APP_ID)
    assert headers["x-github-hook-installation-target-type"] == "integration"
    assert headers["x-github-hook-id"].isdigit()
    expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == f"sha256={expected}"
    assert headers["x-hub-signature"] == "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()


def test_the_signature_matches_githubs_published_test_vector() -> None:
    # From GitHub's docs: this secret and body must sign to this digest. deliver() uses the same HMAC.
    digest = hmac.new(b"It's a Secret to Everybody", b"Hello, World!", hashlib.sha256).hexdigest()
    assert digest == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_deliveries_get_fresh_ids_and_can_be_signed_with_another_secret() -> None:
    receiver = WebhookReceiver()
    try:
        with running_github() as sim:
            sim.add_repository(REPO)
            payload = sim.merge_group_payload(REPO, head_sha="a" * 40, base_sha="b" * 40, head_ref="refs/heads/q")
            sim.deliver("merge_group", payload, url=receiver.url)
            sim.deliver("merge_group", payload, url=receiver.url, secret="wrong")
    finally:
        receiver.stop()

    (first_headers, body), (second_headers, _) = receiver.deliveries
    assert first_headers["x-github-delivery"] != second_headers["x-github-delivery"]
    wrong = hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
    assert second_headers["x-hub-signature-256"] == f"sha256={wrong}"


def test_mutations_send_the_webhooks_github_would() -> None:
    receiver = WebhookReceiver()
    try:
        with running_github(webhook_url=receiver.url) as sim:
            sim.add_repository(REPO)
            first = sim.add_commit(REPO, "feature", "PAY-1: one", author=ALICE)
            number = sim.open_pull_request(REPO, head="feature", title="PAY-1", author="alice")
            second = sim.push(REPO, "feature", "PAY-1: two", author=ALICE)
            review_id = sim.add_review(REPO, number, login="bob")
            sim.edit_pull_request(REPO, number, title="PAY-1: better", labels=["emergency"], state="closed")
    finally:
        receiver.stop()

    events = receiver.events()
    assert [(event, payload["action"]) for event, payload in events] == [
        ("pull_request", "opened"),
        ("pull_request", "synchronize"),
        ("pull_request_review", "submitted"),
        ("pull_request", "edited"),
        ("pull_request", "labeled"),
        ("pull_request", "closed"),
    ]
    synchronize = events[1][1]
    assert (synchronize["before"], synchronize["after"]) == (first, second)
    assert synchronize["pull_request"]["head"]["sha"] == second
    review = events[2][1]["review"]
    assert (review["id"], review["state"], review["commit_id"]) == (review_id, "APPROVED", second)
    assert events[3][1]["changes"] == {"title": {"from": "PAY-1"}}
    assert events[4][1]["label"]["name"] == "emergency"
    assert events[5][1]["pull_request"]["state"] == "closed"
    assert all(payload["installation"]["id"] == 1 for _, payload in events)


def test_without_a_webhook_url_mutations_deliver_nothing(sim: GitHubSimulator) -> None:
    number = a_pull_request_with_commits(sim, 1)
    sim.add_review(REPO, number, login="bob")
    assert sim.deliveries == []
    with pytest.raises(ValueError, match="webhook URL"):
        sim.deliver("ping", {"zen": "Keep it logically awesome."})


def webhook_cases(sim: GitHubSimulator) -> dict[str, tuple[str, dict[str, object]]]:
    """Each payload builder's output, keyed by the webhook description it must satisfy."""
    sim.add_repository(REPO)
    before = sim.add_commit(REPO, "feature", "PAY-1: one", author=ALICE)
    number = sim.open_pull_request(REPO, head="feature", title="PAY-1", author="alice", labels=("emergency",))
    after = sim.push(REPO, "feature", "PAY-1: two", author=Person("Alice", "alice@example.com", "alice"))
    review_id = sim.add_review(REPO, number, login="bob")
    run = installation_client(sim).get_repo(REPO).create_check_run("Countersign", after, status="in_progress")
    sim.edit_pull_request(REPO, number, state="closed")
    return {
        "pull-request-opened": ("pull_request.opened", sim.pull_request_payload(REPO, number, "opened")),
        "pull-request-synchronize": (
            "pull_request.synchronize",
            sim.pull_request_payload(REPO, number, "synchronize", before=before, after=after),
        ),
        "pull-request-edited": (
            "pull_request.opened",
            sim.pull_request_payload(REPO, number, "edited", changes={"title": {"from": "old"}}),
        ),
        "pull-request-labeled": (
            "pull_request.labeled",
            sim.pull_request_payload(REPO, number, "labeled", label=sim.pull_request(REPO, number)["labels"][0]),
        ),
        "pull-request-closed": ("pull_request.closed", sim.pull_request_payload(REPO, number, "closed")),
        "pull-request-review-submitted": ("pull_request_review.submitted", sim.review_payload(REPO, number, review_id)),
        "check-run-rerequested": ("check_run.rerequested", sim.check_run_payload(REPO, run.id)),
        "check-suite-rerequested": ("check_suite.rerequested", sim.check_suite_payload(REPO, after)),
        "merge-group-checks-requested": (
            "merge_group.checks_requested",
            sim.merge_group_payload(
                REPO, head_sha=after, base_sha=before, head_ref="refs/heads/gh-readonly-queue/main/pr-1-" + after
            ),
        ),
    }


def test_payload_builders_satisfy_githubs_webhook_descriptions(sim: GitHubSimulator) -> None:
    spec = load_webhooks_spec()
    for name, (_, payload) in webhook_cases(sim).items():
        assert validate_webhook(spec, name, payload) == [], name


def test_payload_builders_have_the_keys_of_githubs_example_payloads(sim: GitHubSimulator) -> None:
    # The examples predate GitHub Apps' `installation` key on some events; everything they have, we have.
    for name, (example_name, payload) in webhook_cases(sim).items():
        example = load_example(example_name)
        missing = set(example) - set(payload) - {"organization", "enterprise"}
        assert missing == set(), name
        for key in ("pull_request", "review", "check_run", "check_suite", "merge_group"):
            if key in example and key in payload:
                assert set(example[key]) - set(payload[key]) == set(), (name, key)
        assert payload["installation"] == {"id": 1, "node_id": payload["installation"]["node_id"]}


def test_a_broken_payload_fails_the_webhook_description(sim: GitHubSimulator) -> None:
    spec = load_webhooks_spec()
    _, payload = webhook_cases(sim)["pull-request-opened"]
    broken = json.loads(json.dumps(payload))
    del broken["number"]
    broken["pull_request"]["state"] = "merged"

    problems = validate_webhook(spec, "pull-request-opened", broken)

    assert any("'number' is a required property" in p for p in problems)
    assert any("'merged' is not one of" in p for p in problems)


# ---------------------------------------------------------------- answers against the REST description


@needs_spec
def test_answers_match_githubs_documented_response_schemas(sim: GitHubSimulator) -> None:
    number = a_pull_request_with_commits(sim, 3)
    sim.put_file(REPO, "README.md", "hello\n")
    sim.add_review(REPO, number, login="bob")
    head = sim.pull_request(REPO, number)["head"]["sha"]
    token = token_for(sim)
    auth = {"Authorization": f"token {token}"}
    created = requests.post(
        f"{sim.url}/repos/{REPO}/check-runs",
        json={"name": "Countersign", "head_sha": head, "output": {"title": "t", "summary": "s"}},
        headers=auth,
        timeout=10,
    )
    updated = requests.patch(
        f"{sim.url}/repos/{REPO}/check-runs/{created.json()['id']}",
        json={"conclusion": "success"},
        headers=auth,
        timeout=10,
    )
    status = requests.post(
        f"{sim.url}/repos/{REPO}/statuses/{head}", json={"state": "success"}, headers=auth, timeout=10
    )
    jwt_auth = {"Authorization": f"Bearer {app_jwt()}"}
    answers = [
        ("POST", f"/repos/{REPO}/check-runs", created),
        ("PATCH", f"/repos/{REPO}/check-runs/{created.json()['id']}", updated),
        ("POST", f"/repos/{REPO}/statuses/{head}", status),
        (
            "POST",
            "/app/installations/1/access_tokens",
            requests.post(f"{sim.url}/app/installations/1/access_tokens", headers=jwt_auth, timeout=10),
        ),
        ("GET", "/app", requests.get(f"{sim.url}/app", headers=jwt_auth, timeout=10)),
        (
            "GET",
            f"/repos/{REPO}/installation",
            requests.get(f"{sim.url}/repos/{REPO}/installation", headers=jwt_auth, timeout=10),
        ),
    ]
    for path in [
        f"/repos/{REPO}",
        f"/repos/{REPO}/pulls",
        f"/repos/{REPO}/pulls/{number}",
        f"/repos/{REPO}/pulls/{number}/commits",
        f"/repos/{REPO}/pulls/{number}/reviews",
        f"/repos/{REPO}/commits",
        f"/repos/{REPO}/commits/{head}",
        f"/repos/{REPO}/commits/{head}/pulls",
        f"/repos/{REPO}/commits/feature/check-runs",
        f"/repos/{REPO}/commits/feature/status",
        f"/repos/{REPO}/commits/feature/statuses",
        f"/repos/{REPO}/compare/main...feature",
        f"/repos/{REPO}/contents/README.md",
        f"/repos/{REPO}/check-runs/{created.json()['id']}",
        f"/repos/{REPO}/pulls/999",
    ]:
        answers.append(("GET", path, api_get(sim, path, token)))

    spec = load_github_spec()
    problems = [
        p for method, path, r in answers for p in validate_response(spec, method, path, r.status_code, r.json())
    ]
    assert problems == []
    assert_contract(sim)


def test_contents_content_is_base64_wrapped_at_60_characters(sim: GitHubSimulator) -> None:
    sim.add_repository(REPO)
    sim.put_file(REPO, "big.txt", "x" * 200)

    body = api_get(sim, f"/repos/{REPO}/contents/big.txt", token_for(sim)).json()

    assert body["encoding"] == "base64"
    assert all(len(line) <= 60 for line in body["content"].splitlines())
    assert base64.b64decode(body["content"]) == b"x" * 200
