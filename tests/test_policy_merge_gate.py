"""The merge gate beyond the basics: where keys are read from, a change naming none, reviews, merge queue groups."""

from __future__ import annotations

from datetime import timedelta

from builders import ALICE, BOB, JIRA_ALICE, JIRA_BOB, NOW, a_commit, a_ticket, pr_facts

from gating.policy.config import build_policy
from gating.policy.deployment import MergeGroupFacts, PullRequestInfo, evaluate_merge_group
from gating.policy.facts import Review
from gating.policy.pull_request import evaluate_pull_request
from gating.policy.verdict import Outcome, Verdict
from jira_client.models import Ticket


def test_keys_are_read_only_from_the_configured_sources() -> None:
    policy = build_policy({"jira": {"key_sources": ["commits"]}})
    tidy = a_commit("tidy up")
    facts = pr_facts(
        title="PAY-1: refunds", branch="feature/pay-2-refunds", commits=(tidy,), tickets=(a_ticket("PAY-1"),)
    )

    verdict = evaluate_pull_request(facts, policy)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.tickets == ()  # neither the title's PAY-1 nor the branch's PAY-2 is looked at
    assert verdict.uncovered_commits == (tidy,)
    assert verdict.title == (
        f"commits {tidy.short_sha} (tidy up) name no Jira ticket; put a key such as PAY-123 in each commit message"
    )


def test_a_pr_that_names_no_ticket_anywhere_fails_naming_its_commits() -> None:
    first, second = a_commit("Refunds\n\nWith a body"), a_commit("tidy up")

    verdict = evaluate_pull_request(pr_facts(title="Refunds", commits=(first, second)), build_policy())

    assert verdict.outcome is Outcome.FAILED
    assert [(f.rule, f.summary) for f in verdict.findings] == [("traceability", "2 commit(s) name no Jira ticket")]
    assert verdict.title == (
        f"commits {first.short_sha} (Refunds), {second.short_sha} (tidy up) name no Jira ticket; "
        "put a key such as PAY-123 in the PR title, the branch name or each commit message"
    )


def test_the_pr_body_is_a_source_only_when_configured_and_then_covers_every_commit() -> None:
    commits = (a_commit("tidy up"), a_commit("more"))
    body = "Implements PAY-7.\n\nSee also the runbook."
    facts = pr_facts(title="Refunds", body=body, commits=commits, tickets=(a_ticket("PAY-7"),))

    assert not evaluate_pull_request(facts, build_policy()).passed
    with_body = evaluate_pull_request(facts, build_policy({"jira": {"key_sources": ["title", "body"]}}))
    assert with_body.passed
    assert [t.key for t in with_body.tickets] == ["PAY-7"]
    assert with_body.uncovered_commits == ()


def test_a_branch_name_names_a_key_in_any_case_and_commit_messages_only_in_upper_case() -> None:
    fix = a_commit("pay-3 lower case in a message is not a key")
    facts = pr_facts(title="Refunds", branch="feature/pay-2-refunds", commits=(fix,), tickets=(a_ticket("PAY-2"),))

    verdict = evaluate_pull_request(facts, build_policy({"jira": {"key_sources": ["branch", "commits"]}}))

    assert verdict.passed
    assert [t.key for t in verdict.tickets] == ["PAY-2"]


REVIEWS = build_policy({"pull_requests": {"require_review": True}})
COMMITS = (a_commit("PAY-1 refunds"),)
HEAD = COMMITS[-1].sha


def reviewed(*reviews: Review) -> Verdict:
    return evaluate_pull_request(pr_facts(commits=COMMITS, tickets=(a_ticket("PAY-1"),), reviews=reviews), REVIEWS)


def test_a_comment_after_an_approval_neither_withdraws_nor_grants_it() -> None:
    approved = Review("carol", "APPROVED", HEAD, NOW - timedelta(hours=2))
    commented = Review("carol", "COMMENTED", HEAD, NOW - timedelta(hours=1))
    pending = Review("dave", "PENDING", HEAD, None)

    verdict = reviewed(approved, commented, pending)

    assert verdict.passed
    assert [f.summary for f in verdict.findings if f.rule == "review"] == ["approved by a reviewer"]
    assert reviewed(commented).title == (
        "no approving review yet; ask someone who did not write this code to review it"
    )


def test_changes_requested_after_an_approval_withdraws_it_whatever_the_case_of_the_login() -> None:
    approved = Review("Carol", "APPROVED", HEAD, NOW - timedelta(hours=2))
    changes = Review("carol", "CHANGES_REQUESTED", HEAD, NOW - timedelta(hours=1))

    verdict = reviewed(approved, changes)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == "no approving review yet; ask someone who did not write this code to review it"
    assert reviewed(changes, approved).passed  # approved again after asking for changes


def test_an_approval_by_the_author_does_not_count_whatever_the_case_of_the_login() -> None:
    assert reviewed(Review("ALICE", "APPROVED", HEAD, NOW)).title == (
        "the only approving reviews are by authors or committers of this PR; ask someone else to review it"
    )


# A merge queue's group: the PRs it is about to merge together, each with its own commits.
MAPPED = build_policy({"identities": {"alice": "acc-alice", "bob": "acc-bob"}})
REFUNDS = a_commit("Refunds", author=ALICE)
PAYOUTS = a_commit("Payouts in bulk", author=BOB)


def group(*pulls: PullRequestInfo, tickets: tuple[Ticket, ...]) -> MergeGroupFacts:
    return MergeGroupFacts(
        repository="acme/payments",
        head_sha="f" * 40,
        commits=(REFUNDS, PAYOUTS),
        pulls=pulls,
        tickets={t.key: t for t in tickets},
        unknown_tickets=frozenset(),
        jira_error=None,
        evaluated_at=NOW,
    )


def test_each_pr_in_a_merge_group_is_judged_against_its_own_author_only() -> None:
    pulls = (
        PullRequestInfo(1, "PAY-1 refunds", "", "feature/refunds", "alice", (), (REFUNDS.sha,)),
        PullRequestInfo(2, "PAY-2 payouts", "", "feature/payouts", "bob", (), (PAYOUTS.sha,)),
    )
    # Bob approved Alice's ticket and Alice Bob's: neither approved their own change.
    crossed = group(*pulls, tickets=(a_ticket("PAY-1", approver=JIRA_BOB), a_ticket("PAY-2", approver=JIRA_ALICE)))

    assert evaluate_merge_group(crossed, MAPPED).title == "2 tickets approved by someone other than the authors"

    own = group(*pulls, tickets=(a_ticket("PAY-1", approver=JIRA_BOB), a_ticket("PAY-2", approver=JIRA_BOB)))
    verdict = evaluate_merge_group(own, MAPPED)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        f"PAY-2: Bob Builder approved it but is also the author of PR #2, the author of {PAYOUTS.short_sha} and "
        f"the committer of {PAYOUTS.short_sha}; ask someone else to approve it",
    )


def test_a_pr_in_a_merge_group_that_names_no_ticket_fails_the_group_naming_its_commits() -> None:
    pulls = (
        PullRequestInfo(1, "PAY-1 refunds", "", "feature/refunds", "alice", (), (REFUNDS.sha,)),
        PullRequestInfo(2, "Payouts", "", "feature/payouts", "bob", (), (PAYOUTS.sha,)),
    )

    verdict = evaluate_merge_group(group(*pulls, tickets=(a_ticket("PAY-1"),)), MAPPED)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.uncovered_commits == (PAYOUTS,)
    assert verdict.title == (
        f"commits {PAYOUTS.short_sha} (Payouts in bulk) name no Jira ticket; "
        "neither do the PRs they came with; reference a ticket in each"
    )


def test_the_fix_for_an_untraced_commit_names_only_the_places_keys_are_read() -> None:
    from gating.policy.config import build_policy

    commits_only = build_policy({"jira": {"key_sources": ["commits"]}})
    verdict = evaluate_pull_request(pr_facts(title="PAY-1: refunds", commits=(a_commit("tidy"),)), commits_only)
    (finding,) = [f for f in verdict.findings if f.rule == "traceability"]
    assert finding.reasons[0].endswith("name no Jira ticket; put a key such as PAY-123 in each commit message")
    with_body = build_policy({"jira": {"key_sources": ["title", "body", "commits"]}})
    verdict = evaluate_pull_request(pr_facts(title="refunds", commits=(a_commit("tidy"),)), with_body)
    (finding,) = [f for f in verdict.findings if f.rule == "traceability"]
    assert finding.reasons[0].endswith("put a key such as PAY-123 in the PR title, the PR body or each commit message")
