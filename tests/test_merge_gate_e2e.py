"""The merge gate end to end: signed webhooks in, real PyGithub and jira clients out, over HTTP."""

from __future__ import annotations

import json
import threading
import uuid

import requests
from conftest import ALICE, BOB, CAROL, LiveApp, completed_check, wait_for

from simulators.github import Person


def open_pr(
    app: LiveApp, repo: str, *, title: str, branch: str = "feature/work", messages: tuple[str, ...] = ("Work",)
) -> tuple[int, str]:
    """Alice pushes commits to a branch and opens a PR; GitHub sends `pull_request.opened`."""
    sha = ""
    for message in messages:
        sha = app.github.add_commit(repo, branch, message, author=ALICE)
    number = app.github.open_pull_request(repo, head=branch, title=title, author="alice")
    return number, sha


def github_writes(app: LiveApp) -> list[str]:
    return [f"{r.method} {r.path}" for r in app.github.recorder.requests if r.method in ("POST", "PATCH")]


def test_unapproved_ticket_fails_then_approval_in_jira_turns_it_green(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-101", "Refunds", status="In Review")
    _, sha = open_pr(live_app, repo, title="PAY-101: partial refunds")

    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "PAY-101 is In Review; it needs to be moved to Approved in Jira"
    assert "| Ticket | Status | Approver | Approved at | Verdict | Reason |" in check["output"]["summary"]

    # Bob approves in Jira; Jira's webhook alone must flip the check, with no push.
    live_app.jira.transition("PAY-101", "Approved", by="acc-bob")

    def green() -> dict | None:
        runs = [r for r in live_app.github.check_runs(repo, sha) if r["conclusion"] == "success"]
        return runs[-1] if runs else None

    check = wait_for(green, message="the check to turn green after the Jira webhook")
    assert check["output"]["title"] == "1 ticket approved by someone other than the authors"
    assert "Bob Builder" in check["output"]["summary"]
    # One check run per head SHA: the re-evaluation updated it rather than adding another.
    assert len(live_app.github.check_runs(repo, sha)) == 1


def test_self_approved_ticket_fails_separation_of_duties(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-102", "Self-approved", status="In Review")
    live_app.jira.transition("PAY-102", "Approved", by="acc-alice")
    _, sha = open_pr(live_app, repo, title="PAY-102: change")

    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == (
        f"PAY-102: Alice Author approved it but is also the PR author, the author of {sha[:7]} "
        f"and the committer of {sha[:7]}; ask someone else to approve it"
    )


def test_an_email_mapping_does_not_pass_a_self_approval_when_jira_cloud_hides_the_email(
    live_app: LiveApp, repo: str
) -> None:
    # PRODUCT.md's example mapping, and Alice's Jira Cloud profile hides her e-mail (Cloud's default).
    live_app.github.put_file(
        repo, ".github/countersign.yml", "jira:\n  projects: [PAY]\nidentities:\n  alice: alice@example.com\n"
    )
    live_app.jira.add_user("5b10ac8d82e05b22cc7d4ef5", "Alice Author", email="alice@example.com", hide_email=True)
    live_app.jira.add_ticket("PAY-103", "Self-approved", status="In Review")
    live_app.jira.transition("PAY-103", "Approved", by="5b10ac8d82e05b22cc7d4ef5")
    _, sha = open_pr(live_app, repo, title="PAY-103: change")

    check = completed_check(live_app.github, repo, sha)

    assert check["conclusion"] == "failure"
    assert (
        "PAY-103: cannot tell whether Jira user Alice Author (accountId 5b10ac8d82e05b22cc7d4ef5) is GitHub user "
        f"alice (the PR author, the author of {sha[:7]} and the committer of {sha[:7]}): Jira does not show this "
        "user's e-mail; add alice's Jira accountId under `identities` in .github/countersign.yml "
        "(`alice: 5b10ac8d82e05b22cc7d4ef5` if that is them)"
    ) in check["output"]["summary"]
    assert check["output"]["text"].startswith(
        "### Warnings\n\n- `identities` maps alice to e-mail addresses, but Jira Cloud hides e-mail addresses by "
        "default, so Countersign often cannot match them: map each login to its Jira accountId instead"
    )

    # Mapped by accountId, the same approval is named for what it is.
    live_app.github.put_file(repo, ".github/countersign.yml", "identities:\n  alice: 5b10ac8d82e05b22cc7d4ef5\n")
    sha2 = live_app.github.push(repo, "feature/work", "PAY-103 follow-up", author=ALICE)
    check = completed_check(live_app.github, repo, sha2)
    assert check["output"]["title"].startswith("PAY-103: Alice Author approved it but is also the PR author")
    assert not check["output"]["text"]  # no advice once the mapping is by accountId


def test_a_commit_email_no_github_account_verified_does_not_clear_its_author(live_app: LiveApp, repo: str) -> None:
    # Bob opens the PR; a commit on it claims an e-mail that belongs to no GitHub account. Alice approves.
    live_app.jira.add_ticket("PAY-104", "Refunds", status="In Review")
    live_app.jira.transition("PAY-104", "Approved", by="acc-alice")
    unlinked = Person(name="Alice Author", email="alice@laptop.local")
    live_app.github.add_commit(repo, "feature/refunds", "PAY-104 refunds", author=BOB)
    sha = live_app.github.add_commit(repo, "feature/refunds", "PAY-104 more", author=unlinked)
    live_app.github.open_pull_request(repo, head="feature/refunds", title="PAY-104: refunds", author="bob")

    check = completed_check(live_app.github, repo, sha)

    assert check["conclusion"] == "failure"
    reason = (
        "PAY-104: cannot tell whether Jira user Alice Author (accountId acc-alice) is alice@laptop.local (the "
        f"author of {sha[:7]} and the committer of {sha[:7]}): no GitHub account has verified that e-mail, so it "
        "proves nothing; ask its owner to add it to their GitHub account, which links the commit to their login"
    )
    assert reason in check["output"]["summary"]
    assert check["output"]["title"] == reason[:200]


def test_pr_with_no_ticket_fails_and_lists_the_commits(live_app: LiveApp, repo: str) -> None:
    _, sha = open_pr(live_app, repo, title="Refactor", messages=("Tidy up",))
    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].startswith(f"commits {sha[:7]} (Tidy up) name no Jira ticket")
    assert f"`{sha[:7]}` Tidy up" in check["output"]["text"]


def test_unknown_ticket_is_named(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-bob")
    _, sha = open_pr(live_app, repo, title="PAY-1 and PAY-999")
    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == (
        "PAY-999 does not exist in Jira, or Countersign's Jira user cannot see it; fix the reference"
    )
    assert "[PAY-1](" in check["output"]["summary"]


def test_key_only_in_the_branch_name(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-7", status="In Review")
    live_app.jira.transition("PAY-7", "Approved", by="acc-carol")
    _, sha = open_pr(live_app, repo, title="Refunds", branch="feature/pay-7-refunds")
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"


def test_key_only_in_one_commit_message_covers_only_that_commit(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-8", status="In Review")
    live_app.jira.transition("PAY-8", "Approved", by="acc-carol")
    _, sha = open_pr(live_app, repo, title="Refunds", messages=("PAY-8 refunds",))
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"

    # A second commit without a key is not covered by the first one's key.
    new_sha = live_app.github.push(repo, "feature/work", "more work", author=ALICE)
    check = completed_check(live_app.github, repo, new_sha)
    assert check["conclusion"] == "failure"
    assert new_sha[:7] in check["output"]["title"]


def test_every_commit_of_a_300_commit_pr_is_read(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-carol")
    live_app.jira.add_ticket("PAY-2", status="In Progress")
    messages = (*tuple(f"PAY-1 step {i}" for i in range(299)), "PAY-2 the last one")
    _, sha = open_pr(live_app, repo, title="Big change", messages=messages)
    check = completed_check(live_app.github, repo, sha, name="Countersign")
    # PAY-2 appears only in commit 300, past the pull request commits endpoint's limit of 250.
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "PAY-2 is In Progress; it needs to be moved to Approved in Jira"
    assert "300 commit(s)" in check["output"]["summary"]


def test_bad_signature_is_refused_and_nothing_is_written(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.github.webhook_url = None  # deliver by hand
    sha = live_app.github.add_commit(repo, "feature/x", "PAY-1 work", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/x", title="PAY-1", author="alice")
    payload = live_app.github.pull_request_payload(repo, number, "opened")
    response = live_app.deliver("pull_request", payload, secret="not the secret")
    assert response.status_code == 401
    body = json.dumps(payload).encode()
    unsigned = requests.post(
        live_app.github_webhook,
        data=body,
        headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4())},
        timeout=5,
    )
    assert unsigned.status_code == 400
    live_app.settle()
    assert github_writes(live_app) == []
    assert live_app.github.check_runs(repo, sha) == []


def test_malformed_oversized_and_unsubscribed_deliveries(live_app: LiveApp, repo: str) -> None:
    import hashlib
    import hmac

    def signed_post(body: bytes, event: str = "pull_request") -> requests.Response:
        signature = "sha256=" + hmac.new(b"It's a Secret to Everybody", body, hashlib.sha256).hexdigest()
        return requests.post(
            live_app.github_webhook,
            data=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature,
                "Content-Type": "application/json",
            },
            timeout=10,
        )

    response = signed_post(b"{not json")
    assert response.status_code == 400
    assert response.json() == {"error": "body is not a JSON object"}
    assert signed_post(b" " * (25 * 1024 * 1024 + 1)).status_code == 413
    ignored = signed_post(json.dumps({"action": "deleted", "installation": {"id": 1}}).encode(), event="star")
    assert ignored.status_code == 200
    assert ignored.json()["status"] == "ignored"
    assert github_writes(live_app) == []


def test_duplicate_deliveries_are_processed_once_even_concurrently(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.github.webhook_url = None
    sha = live_app.github.add_commit(repo, "feature/x", "PAY-1 work", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/x", title="PAY-1", author="alice")
    payload = live_app.github.pull_request_payload(repo, number, "opened")
    delivery_id = str(uuid.uuid4())

    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(
                live_app.deliver("pull_request", payload, delivery_id=delivery_id).status_code
            )
        )
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    completed_check(live_app.github, repo, sha)
    live_app.settle()
    assert sorted(statuses) == [200, 200, 200, 200, 202]
    # A redelivery of the completed delivery is acknowledged and skipped.
    again = live_app.deliver("pull_request", payload, delivery_id=delivery_id)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    live_app.settle()
    creates = [w for w in github_writes(live_app) if w.startswith("POST") and w.endswith("/check-runs")]
    assert len(creates) == 1
    assert len(live_app.github.check_runs(repo, sha)) == 1


def test_a_delivery_that_failed_half_way_runs_again_when_redelivered(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-bob")
    live_app.github.webhook_url = None
    sha = live_app.github.add_commit(repo, "feature/x", "PAY-1 work", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/x", title="PAY-1", author="alice")
    payload = live_app.github.pull_request_payload(repo, number, "opened")
    delivery_id = str(uuid.uuid4())

    live_app.github.faults.down = True  # GitHub answers 503 to everything
    assert live_app.deliver("pull_request", payload, delivery_id=delivery_id).status_code == 202
    live_app.settle()
    assert live_app.services.deliveries.status(f"github:{delivery_id}") == "failed"
    live_app.github.faults.down = False

    assert live_app.deliver("pull_request", payload, delivery_id=delivery_id).status_code == 202
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"
    live_app.settle()
    assert live_app.services.deliveries.status(f"github:{delivery_id}") == "completed"


def test_jira_down_never_passes(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-bob")
    live_app.jira.faults.down = True
    _, sha = open_pr(live_app, repo, title="PAY-1: refunds")
    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert "could not be read" in check["output"]["summary"]
    assert "re-run" in check["output"]["title"] or "Jira" in check["output"]["title"]


# Something only Jira's operators should read: it may be in Jira's error bodies, never in a public check run.
INTERNAL = "MARKER-7f3a: upstream jira-db.internal.example:5432 refused"


def public_text(check: dict) -> str:
    output = check["output"]
    return "\n".join(output.get(part) or "" for part in ("title", "summary", "text"))


def test_jira_down_publishes_what_to_do_but_not_its_url_or_answer(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.fault_messages[503] = [f"{INTERNAL} (see {live_app.jira.url}/status)"]
    live_app.jira.faults.down = True
    _, sha = open_pr(live_app, repo, title="PAY-1: refunds")

    check = completed_check(live_app.github, repo, sha)

    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "PAY-1 could not be read: Jira answered HTTP 503; re-run when it is back"
    assert "MARKER-7f3a" not in public_text(check)
    assert live_app.jira.url not in public_text(check)
    assert "127.0.0.1" not in public_text(check)


def test_an_unexpected_jira_answer_is_not_published(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.fault_messages[400] = [INTERNAL]
    live_app.jira.faults.fail_path("/search/jql", 400)
    _, sha = open_pr(live_app, repo, title="PAY-1: refunds")

    check = completed_check(live_app.github, repo, sha)

    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == (
        "PAY-1 could not be read: Jira answered HTTP 400 to a ticket read; re-run, and if it happens again "
        "an administrator will find the details in Countersign's log (jira.unavailable)"
    )
    assert "MARKER-7f3a" not in public_text(check)
    assert live_app.jira.url not in public_text(check)


def test_refused_jira_credentials_say_who_must_act(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.bad_credentials = True
    _, sha = open_pr(live_app, repo, title="PAY-1: refunds")

    check = completed_check(live_app.github, repo, sha)

    assert check["output"]["title"] == (
        "PAY-1 could not be read: Jira refused Countersign's credentials (HTTP 401); an administrator must check "
        "JIRA_USER and JIRA_TOKEN, then re-run"
    )
    assert live_app.jira.url not in public_text(check)


def test_invalid_config_fails_the_check_with_the_error_and_line(live_app: LiveApp, repo: str) -> None:
    live_app.github.put_file(repo, ".github/countersign.yml", "jira:\n  approval_source: email\n")
    _, sha = open_pr(live_app, repo, title="PAY-1")
    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"].startswith("Fix .github/countersign.yml: .github/countersign.yml, line 2:")
    assert "allowed values: changelog, jsm" in check["output"]["title"]


def test_rerun_requested_evaluates_again_with_fresh_jira_data(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    _number, sha = open_pr(live_app, repo, title="PAY-1")
    first = completed_check(live_app.github, repo, sha)
    assert first["conclusion"] == "failure"
    live_app.jira.webhook_url = None  # no Jira webhook this time: only the re-run can notice
    live_app.jira.transition("PAY-1", "Approved", by="acc-bob")
    live_app.deliver("check_run", live_app.github.check_run_payload(repo, first["id"]))

    def green() -> bool:
        return any(r["conclusion"] == "success" for r in live_app.github.check_runs(repo, sha))

    wait_for(green, message="a new, passing check run after Re-run")


def test_review_required_and_a_push_dismisses_it(live_app: LiveApp, repo: str) -> None:
    live_app.github.put_file(
        repo,
        ".github/countersign.yml",
        "identities:\n  alice: acc-alice\n  bob: acc-bob\n  carol: acc-carol\npull_requests:\n  require_review: true\n",
    )
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-carol")
    number, sha = open_pr(live_app, repo, title="PAY-1")
    assert completed_check(live_app.github, repo, sha)["output"]["title"].startswith("no approving review yet")
    live_app.github.add_review(repo, number, login=BOB.login or "bob")
    wait_for(
        lambda: any(r["conclusion"] == "success" for r in live_app.github.check_runs(repo, sha)),
        message="the check to pass after Bob's review",
    )
    new_sha = live_app.github.push(repo, "feature/work", "PAY-1 follow-up", author=ALICE)
    check = completed_check(live_app.github, repo, new_sha)
    assert check["conclusion"] == "failure"
    assert "predate the latest push" in check["output"]["title"]


def test_merge_group_is_evaluated_on_the_group_head(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-5", status="In Progress")
    live_app.github.webhook_url = None
    live_app.github.add_commit(repo, "main", "Earlier work", author=CAROL)
    live_app.github.add_commit(repo, "feature/pay-5", "queued change", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/pay-5", title="Refunds", author="alice")
    # The queue merges the PR's head on a temporary branch; the PR's branch name is what names PAY-5.
    head, payload = live_app.github.queue_merge_group(repo, [number], queued_by=BOB)
    assert live_app.deliver("merge_group", payload).status_code == 202
    check = completed_check(live_app.github, repo, head)
    assert check["conclusion"] == "failure"
    assert check["output"]["title"] == "PAY-5 is In Progress; it needs to be moved to Approved in Jira"


def test_every_pr_in_a_merge_group_is_evaluated_with_its_own_title_and_commits(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-6", status="In Review")
    live_app.jira.transition("PAY-6", "Approved", by="acc-carol")
    live_app.jira.add_ticket("PAY-7", status="In Progress")
    live_app.github.webhook_url = None
    live_app.github.add_commit(repo, "feature/six", "refunds", author=ALICE)
    six = live_app.github.open_pull_request(repo, head="feature/six", title="PAY-6: refunds", author="alice")
    live_app.github.add_commit(repo, "feature/seven", "payouts", author=ALICE)
    seven = live_app.github.open_pull_request(repo, head="feature/seven", title="PAY-7: payouts", author="alice")
    # The group for the last PR holds both; only the last PR's number is in the group's branch name.
    head, payload = live_app.github.queue_merge_group(repo, [six, seven], queued_by=CAROL)
    assert live_app.deliver("merge_group", payload).status_code == 202
    check = completed_check(live_app.github, repo, head)
    assert check["conclusion"] == "failure"
    summary = check["output"]["summary"]
    # PAY-6's commits are covered by PR #six, PAY-7's by PR #seven; PAY-7 is not approved, PAY-6 is — and Carol,
    # who queued both (GitHub's merge commits name her), wrote none of the code.
    assert check["output"]["title"] == "PAY-7 is In Progress; it needs to be moved to Approved in Jira"
    assert "| [PAY-6](" in summary and "✅ passed" in summary
    assert "name no Jira ticket" not in summary


def test_expired_installation_token_is_refreshed(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-bob")
    _, sha = open_pr(live_app, repo, title="PAY-1", branch="one")
    completed_check(live_app.github, repo, sha)
    live_app.github.expire_tokens()
    _, sha2 = open_pr(live_app, repo, title="PAY-1 again", branch="two")
    assert completed_check(live_app.github, repo, sha2)["conclusion"] == "success"
    grants = [r for r in live_app.github.recorder.requests if r.path.endswith("/access_tokens")]
    assert len(grants) == 2


def test_jira_webhook_needs_a_valid_signature(live_app: LiveApp) -> None:
    live_app.jira.add_ticket("PAY-1")
    body = json.dumps(live_app.jira.issue_updated_payload("PAY-1")).encode()
    response = requests.post(
        f"{live_app.url}/webhooks/jira", data=body, headers={"X-Hub-Signature": "sha256=" + "0" * 64}, timeout=5
    )
    assert response.status_code == 401


def test_a_failed_check_run_creation_is_not_repeated_blindly(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.github.faults.answer("/check-runs", 502, method="POST")  # GitHub may have created it anyway
    live_app.github.webhook_url = None
    sha = live_app.github.add_commit(repo, "feature/x", "PAY-1 work", author=ALICE)
    number = live_app.github.open_pull_request(repo, head="feature/x", title="PAY-1", author="alice")
    response = live_app.deliver("pull_request", live_app.github.pull_request_payload(repo, number, "opened"))
    live_app.settle()
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "failure"
    assert live_app.services.deliveries.status(response.json()["delivery"]) == "completed"
    # The client did not retry the POST by itself; the second came after looking for the first's run.
    creating = [
        r.method
        for r in live_app.github.recorder.requests
        if r.path.endswith("/check-runs") and r.method in ("GET", "POST")
    ]
    assert creating == ["GET", "POST", "GET", "POST"]
    assert len(live_app.github.check_runs(repo, sha)) == 1


def test_a_commit_that_borrows_a_bots_identity_is_not_exempt(live_app: LiveApp, repo: str) -> None:
    # Anyone can commit as dependabot[bot]'s e-mail; GitHub then attributes the author to the bot's login.
    bot = Person(
        name="dependabot[bot]", email="49699333+dependabot[bot]@users.noreply.github.com", login="dependabot[bot]"
    )
    spoofed = live_app.github.add_commit(repo, "bump-lib", "Bump lib from 1.0 to 1.1", author=bot, committer=ALICE)
    live_app.github.open_pull_request(repo, head="bump-lib", title="Bump lib from 1.0 to 1.1", author="alice")
    check = completed_check(live_app.github, repo, spoofed)
    assert check["conclusion"] == "failure"
    assert (
        f"{spoofed[:7]} is by dependabot[bot] but was committed by alice, not an exempt account"
        in (check["output"]["summary"])
    )


def test_a_bot_pr_committed_and_signed_through_github_needs_no_ticket(live_app: LiveApp, repo: str) -> None:
    bot = Person(
        name="dependabot[bot]", email="49699333+dependabot[bot]@users.noreply.github.com", login="dependabot[bot]"
    )
    web_flow = Person(name="GitHub", email="noreply@github.com", login="web-flow")
    sha = live_app.github.add_commit(repo, "bump", "Bump lib", author=bot, committer=web_flow, signed=True)
    live_app.github.open_pull_request(repo, head="bump", title="Bump lib", author="dependabot[bot]")
    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "success", check["output"]
    assert check["output"]["title"] == "Nothing to approve: every commit is by an exempt author"
    assert check["output"]["text"] == (
        "### Commits that need no ticket\n\n"
        f"- {sha[:7]} by dependabot[bot]: author and committer are exempt accounts and its signature is verified"
    )
