"""A release's commits as GitHub's history shapes them: which a PR brought, which merges GitHub made, exempt bots."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from builders import ALICE, NOW, a_ticket

from gating.policy.checks import CheckResult
from gating.policy.config import build_policy
from gating.policy.deployment import (
    DeploymentFacts,
    DeploymentRequest,
    PullRequestInfo,
    evaluate_deployment,
    github_merge_commits,
    pull_request_members,
    release_range,
)
from gating.policy.evidence import error_evidence
from gating.policy.facts import Commit, GitHubPerson
from gating.policy.pull_request import error_verdict
from gating.policy.verdict import Finding, Outcome

POLICY = build_policy({"identities": {"alice": "acc-alice", "bob": "acc-bob"}})  # the PR author, the requester
CAROL = GitHubPerson(login="carol", name="Carol Approver", email="carol@example.com")  # JIRA_CAROL's e-mail
WEB_FLOW = GitHubPerson(login="web-flow", name="GitHub", email="noreply@github.com")
BOT = GitHubPerson(login="dependabot[bot]", email="49699333+dependabot[bot]@users.noreply.github.com")


def commit(
    sha: str,
    message: str,
    *parents: str,
    author: GitHubPerson = ALICE,
    committer: GitHubPerson | None = None,
    verified: bool = False,
) -> Commit:
    """A commit whose SHA (and its parents') is one hex digit repeated, so the history reads at a glance."""
    return Commit(sha * 40, message, author, committer or author, tuple(p * 40 for p in parents), verified)


# base <- main1 ------------- merge (PR #5)
#      \                    /
#       feat1 <- feat2 -----
BASE = commit("0", "Initial")
MAIN1 = commit("1", "PAY-9 on main meanwhile", "0")
FEAT1 = commit("2", "Refunds", "0")
FEAT2 = commit("3", "Refunds: tests", "2")
MERGE = commit("4", "Merge pull request #5 from acme/pay-1", "1", "3", author=CAROL, committer=WEB_FLOW, verified=True)
HISTORY = (MERGE, FEAT2, FEAT1, MAIN1, BASE)


def test_a_pr_brought_its_merge_commit_and_what_only_its_branch_reaches() -> None:
    assert pull_request_members(HISTORY, MERGE.sha) == (MERGE.sha, FEAT1.sha, FEAT2.sha)


def test_what_a_branch_merged_from_main_along_the_way_is_not_the_prs() -> None:
    update = commit("6", "Merge branch 'main' into feature/pay-1", "3", "1")
    merge = commit("7", "Merge pull request #5 from acme/pay-1", "1", "6", author=CAROL, committer=WEB_FLOW)
    history = (merge, update, FEAT2, FEAT1, MAIN1, BASE)

    assert pull_request_members(history, merge.sha) == (merge.sha, FEAT1.sha, FEAT2.sha, update.sha)


def test_a_squash_or_rebase_merge_is_the_pr_and_a_commit_outside_the_release_brings_nothing() -> None:
    squashed = commit("5", "Refunds (#5)", "1")
    assert pull_request_members((squashed, MAIN1, BASE), squashed.sha) == (squashed.sha,)
    assert pull_request_members(HISTORY, "f" * 40) == ()


def pull(*commits: Commit, merge: Commit | None = MERGE, head: str | None = FEAT2.sha) -> PullRequestInfo:
    return PullRequestInfo(
        5,
        "PAY-1 refunds",
        "",
        "feature/pay-1",
        "alice",
        (),
        tuple(c.sha for c in commits),
        merge_commit_sha=merge.sha if merge else None,
        merged_by="carol",
        head_sha=head,
    )


def release(commits: tuple[Commit, ...], pulls: tuple[PullRequestInfo, ...]) -> DeploymentFacts:
    head = commits[0].sha
    return DeploymentFacts(
        repository="acme/payments",
        environment="production",
        deployment_id=11,
        run_id=22,
        sha=head,
        ref="main",
        requester="bob",
        requested_at=NOW - timedelta(minutes=5),
        run_attempt=1,
        range=release_range(BASE.sha, head, "last_approved", "ahead", len(commits)),
        commits=commits,
        pulls=pulls,
        tickets={"PAY-1": a_ticket("PAY-1")},  # approved by Carol, who pressed Merge
        unknown_tickets=frozenset(),
        jira_error=None,
        checks=(),
        evaluated_at=NOW,
    )


def test_whoever_pressed_merge_wrote_none_of_the_code_and_may_approve_it() -> None:
    commits = (MERGE, FEAT2, FEAT1)
    pulls = (pull(MERGE, FEAT2, FEAT1),)
    assert github_merge_commits(commits, pulls) == {MERGE.sha: pulls[0]}

    verdict = evaluate_deployment(release(commits, pulls), POLICY)

    assert verdict.passed, verdict.reasons()
    assert verdict.title == "1 ticket approved by someone other than the authors"


def test_a_merge_github_made_when_the_branch_was_updated_is_not_the_prs_merge_and_its_author_counts() -> None:
    # Carol pressed "Update branch": GitHub merged main into the PR's branch, as Carol, and signed it.
    update = commit(
        "6", "Merge branch 'main' into feature/pay-1", "3", "1", author=CAROL, committer=WEB_FLOW, verified=True
    )
    squashed = commit("7", "PAY-1 refunds (#5)", "1")
    commits = (squashed, update, FEAT2, FEAT1)
    pulls = (pull(squashed, update, FEAT2, FEAT1, merge=squashed, head=update.sha),)
    assert github_merge_commits(commits, pulls) == {}

    verdict = evaluate_deployment(release(commits, pulls), POLICY)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        f"PAY-1: Carol Approver approved it but is also the author of {update.short_sha}; "
        "ask someone else to approve it",
    )


def test_a_release_lists_the_exempt_bot_commits_it_ships_and_why() -> None:
    bump = commit("8", "Bump requests from 2.31 to 2.32", "4", author=BOT, committer=WEB_FLOW, verified=True)
    commits = (bump, MERGE, FEAT2, FEAT1)

    verdict = evaluate_deployment(release(commits, (pull(MERGE, FEAT2, FEAT1),)), POLICY)

    assert verdict.passed, verdict.reasons()
    assert (
        Finding(
            "exemption",
            Outcome.PASSED,
            "1 commit(s) need no ticket",
            (
                f"{bump.short_sha} by dependabot[bot]: author and committer are exempt accounts "
                "and its signature is verified",
            ),
        )
        in verdict.findings
    )


def test_an_error_recorded_without_its_detail_keeps_the_request_and_the_decision_only() -> None:
    request = DeploymentRequest("acme/payments", "production", 11, 22, None, "main", "bob", NOW, run_attempt=2)
    verdict = error_verdict("policy", "The policy file cannot be used", "line 3: unknown setting", NOW)

    assert error_evidence(request, verdict) == {
        "repository": "acme/payments",
        "environment": "production",
        "deployment_id": 11,
        "workflow_run_id": 22,
        "workflow_run_attempt": 2,
        "sha": None,
        "ref": "main",
        "requester": "bob",
        "requested_at": NOW,
        "captured_at": NOW,
        "decision": {
            "state": "rejected",
            "outcome": "error",
            "reasons": ["line 3: unknown setting"],
        },
    }


def test_a_required_check_posted_by_another_app_than_the_pinned_one_is_named_and_does_not_count() -> None:
    policy = build_policy(
        {
            "identities": {"alice": "acc-alice", "bob": "acc-bob"},
            "environments": {"production": {"required_checks": [{"name": "build", "app": "github-actions"}]}},
        }
    )
    impostor = CheckResult("build", "check_run", "completed", "success", {"id": 7, "app": "sneaky-ci"})
    facts = replace(release((MERGE, FEAT2, FEAT1), (pull(MERGE, FEAT2, FEAT1),)), checks=(impostor,))

    verdict = evaluate_deployment(facts, policy)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        f"required check `build (by github-actions)` has not succeeded on {MERGE.short_sha} "
        "(missing; `build` from sneaky-ci does not count: the policy pins github-actions)",
    )
