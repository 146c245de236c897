"""The deploy gate's pure core over literal facts: checks, release ranges, evidence, emergencies, the five answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from builders import ALICE, BOB, JIRA_ALICE, JIRA_CAROL, NOW, a_commit, a_ticket

from gating.policy.answers import QUESTIONS, answer_questions
from gating.policy.checks import CheckResult, RequiredCheckRule, check_succeeded, evaluate_required_checks
from gating.policy.config import build_policy
from gating.policy.deployment import (
    DeploymentFacts,
    DeploymentRequest,
    PullRequestInfo,
    ReleaseRange,
    ShippedBefore,
    emergency_tickets,
    evaluate_deployment,
    first_deployment_range,
    release_base,
    release_range,
)
from gating.policy.emergency import (
    approved_within_deadline,
    evaluate_retroactive_approval,
    involved_people,
    is_overdue,
    pending_tickets,
)
from gating.policy.evidence import approved_before, build_evidence, decision_label, deployment_state, error_evidence
from gating.policy.facts import GitHubPerson
from gating.policy.pull_request import error_verdict
from gating.policy.verdict import Outcome
from jira_client.models import Ticket

POLICY = build_policy(
    {
        "environments": {"production": {"required_checks": ["build", "jenkins"]}},
        "identities": {"alice": "acc-alice", "bob": "acc-bob"},
    }
)
SHA = "a" * 40
BASE = "b" * 40


def a_check(name: str, kind: str, status: str, conclusion: str | None = None) -> CheckResult:
    return CheckResult(name, kind, status, conclusion, {"name": name})


PASSING_CHECKS = (
    a_check("build", "check_run", "completed", "success"),
    a_check("jenkins", "status", "success"),  # Jenkins and CircleCI report commit statuses
)


def release_facts(
    *, tickets: tuple[Ticket, ...] | None = None, checks: tuple[CheckResult, ...] = PASSING_CHECKS
) -> DeploymentFacts:
    tickets = tickets if tickets is not None else (a_ticket("PAY-1"),)
    commit = a_commit("PAY-1 refunds", author=ALICE, committer=ALICE)
    return DeploymentFacts(
        repository="acme/payments",
        environment="production",
        deployment_id=11,
        run_id=22,
        sha=SHA,
        ref="main",
        requester="bob",
        requested_at=NOW - timedelta(minutes=5),
        run_attempt=1,
        range=release_range(BASE, SHA, "last_approved", "ahead", 1),
        commits=(commit,),
        pulls=(),
        tickets={t.key: t for t in tickets},
        unknown_tickets=frozenset(),
        jira_error=None,
        checks=checks,
        evaluated_at=NOW,
    )


def test_whether_a_check_passed_is_decided_once_for_runs_and_statuses() -> None:
    assert check_succeeded("check_run", "completed", "success")
    assert check_succeeded("check_run", "completed", "skipped")
    assert not check_succeeded("check_run", "in_progress", None)
    assert not check_succeeded("check_run", "completed", "failure")
    assert check_succeeded("status", "success", None)
    assert not check_succeeded("status", "pending", None)
    results = evaluate_required_checks(
        ["build", "jenkins", "lint"], [*PASSING_CHECKS, a_check("build", "check_run", "completed", "failure")]
    )
    assert [(r.name, r.passed, r.results) for r in results] == [
        ("build", True, ("failure", "success")),  # one success of that name is enough
        ("jenkins", True, ("success",)),
        ("lint", False, ()),
    ]
    assert not results[2].found


def test_release_ranges_say_how_they_were_determined() -> None:
    assert release_range(BASE, SHA, "last_approved", "ahead", 3).description == (
        "3 commit(s) since the last deployment Countersign approved and GitHub reports as deployed (bbbbbbb)"
    )
    assert release_range(BASE, SHA, "last_successful", "behind", 0).description == (
        "a rollback: aaaaaaa is an ancestor of the last successful deployment GitHub reports (bbbbbbb), "
        "so it ships no new commits"
    )
    assert release_range(BASE, SHA, "last_approved", "identical", 0).description.startswith("a redeploy of aaaaaaa")
    assert (
        "e.g. after a force-push: 4 commit(s)" in release_range(BASE, SHA, "last_approved", "diverged", 4).description
    )
    first = first_deployment_range(SHA, 1000, True, 1000)
    assert first == ReleaseRange(
        None,
        SHA,
        "first_deployment",
        "first",
        "first deployment to this environment: the 1000 most recent commits reachable from aaaaaaa (limited to 1000)",
        True,
    )
    assert first_deployment_range(SHA, 5, False, 1000).description.endswith("(its whole history)")


def test_evidence_records_the_request_the_commits_the_tickets_and_each_checks_outcome() -> None:
    facts = release_facts()
    verdict = evaluate_deployment(facts, POLICY)
    assert verdict.passed, verdict.reasons()
    evidence = build_evidence(facts, verdict, POLICY)
    assert {k: evidence[k] for k in ("repository", "environment", "deployment_id", "workflow_run_id", "sha")} == {
        "repository": "acme/payments",
        "environment": "production",
        "deployment_id": 11,
        "workflow_run_id": 22,
        "sha": SHA,
    }
    assert evidence["requester"] == "bob" and evidence["captured_at"] == NOW
    assert evidence["requested_at"] == NOW - timedelta(minutes=5)
    (ticket,) = evidence["tickets"]
    assert ticket["key"] == "PAY-1" and ticket["outcome"] == "passed" and ticket["approvers"] == ["Carol Approver"]
    assert ticket["approved_at"] == NOW - timedelta(hours=1) and ticket["approved_before_request"] is True
    assert ticket["approval_source"] == "changelog" and ticket["approval_record"] == {"id": "h"}
    assert evidence["commits"][0]["tickets"] == ["PAY-1"]
    assert [(c["name"], c["kind"], c["succeeded"]) for c in evidence["checks"]] == [
        ("build", "check_run", True),
        ("jenkins", "status", True),
    ]
    assert evidence["decision"] == {"state": "approved", "outcome": "passed", "reasons": []}
    assert evidence["emergency_deadline"] is None
    assert evidence["identities"] == {"alice": "acc-alice", "bob": "acc-bob"}


def test_the_answers_read_the_recorded_check_outcome_so_a_passing_status_passes() -> None:
    facts = release_facts()
    evidence = build_evidence(facts, evaluate_deployment(facts, POLICY), POLICY)
    answers = answer_questions(evidence, {"id": 5, "sequence": 5}, {"ok": True, "entry_verified": True})
    assert answers["checks"]["all_passed"] is True
    assert [(r["name"], r["passed"]) for r in answers["checks"]["required"]] == [("build", True), ("jenkins", True)]
    # An entry written before `succeeded` was recorded is decided the same way.
    for check in evidence["checks"]:
        del check["succeeded"]
    again = answer_questions(evidence, {}, {})
    assert [(r["name"], r["passed"]) for r in again["checks"]["required"]] == [("build", True), ("jenkins", True)]


def test_the_five_answers_name_tickets_approvals_commits_checks_and_integrity() -> None:
    facts = release_facts(
        tickets=(a_ticket("PAY-1", status="In Review"),),
        checks=(a_check("build", "check_run", "completed", "failure"),),
    )
    verdict = evaluate_deployment(facts, POLICY)
    evidence = build_evidence(facts, verdict, POLICY)
    entry = {"id": 9, "sequence": 4, "hash": "h", "prev_hash": "p", "signature_present": False}
    answers = answer_questions(evidence, entry, {"ok": True, "count": 4, "entry_verified": True})
    assert answers["tickets"]["question"] == QUESTIONS[0]
    assert answers["tickets"]["tickets"][0] | {} == {
        "key": "PAY-1",
        "summary": "PAY-1 summary",
        "issue_type": "Story",
        "status": "In Review",
        "url": "https://jira.example/browse/PAY-1",
        "approved": False,
    }
    assert answers["approvals"]["all_approved_before_request"] is False
    assert answers["commits"]["all_map_to_approved_tickets"] is False
    assert answers["commits"]["unmapped"] == [facts.commits[0].sha]
    assert [(r["name"], r["passed"], r["results"]) for r in answers["checks"]["required"]] == [
        ("build", False, ["failure"]),
        ("jenkins", False, ["missing"]),
    ]
    assert answers["integrity"]["ledger_entry_id"] == 9 and answers["integrity"]["entry_verified"] is True
    assert answers["decision"]["state"] == "rejected"
    assert deployment_state(verdict) == "rejected" and decision_label(verdict) == "rejected"


def test_an_approval_counts_as_before_the_request_to_the_second_github_records() -> None:
    requested = NOW  # GitHub's created_at: whole seconds
    assert approved_before(NOW - timedelta(hours=3), requested)
    assert approved_before(NOW + timedelta(milliseconds=400), requested)  # within the request's second
    assert not approved_before(NOW + timedelta(seconds=1), requested)
    assert not approved_before(None, requested)


def test_an_error_is_recorded_with_the_request_and_rejects() -> None:
    request = DeploymentRequest("acme/payments", "production", None, 22, None, None, "bob", NOW)
    verdict = error_verdict("availability", "Evidence could not be gathered", "Jira could not be read", NOW)
    evidence = error_evidence(request, verdict, "Jira could not be read")
    assert evidence["error"] == "Jira could not be read" and evidence["sha"] is None
    assert evidence["decision"]["state"] == "rejected" and evidence["decision"]["outcome"] == "error"


def test_an_emergency_names_its_people_and_is_approved_after_the_fact_only_by_someone_else() -> None:
    facts = release_facts(tickets=(a_ticket("PAY-1", status="In Review", issue_type="Emergency Change"),))
    verdict = evaluate_deployment(facts, POLICY)
    assert verdict.outcome is Outcome.EMERGENCY and decision_label(verdict) == "emergency"
    assert pending_tickets(verdict) == ["PAY-1"]
    evidence = build_evidence(facts, verdict, POLICY)
    assert evidence["emergency_deadline"] == NOW + timedelta(hours=72)
    people = involved_people(evidence)
    short = facts.commits[0].sha[:7]
    assert people == [
        ("the deployment requester", GitHubPerson("bob")),
        (f"the author of {short}", ALICE),
        (f"the committer of {short}", ALICE),
    ]
    identities = POLICY

    later = NOW + timedelta(hours=5)
    by_carol = {"PAY-1": a_ticket("PAY-1", approved_at=later)}
    (record,) = evaluate_retroactive_approval(["PAY-1"], by_carol, people, identities) or [None]
    assert record is not None and record["approvers"] == ["Carol Approver"] and record["approved_at"] == later
    assert approved_within_deadline([record], NOW + timedelta(hours=72))
    assert not approved_within_deadline([record], NOW + timedelta(hours=1))

    by_the_author = {"PAY-1": a_ticket("PAY-1", approver=JIRA_ALICE)}
    assert evaluate_retroactive_approval(["PAY-1"], by_the_author, people, identities) is None
    still_in_review = {"PAY-1": a_ticket("PAY-1", status="In Review")}
    assert evaluate_retroactive_approval(["PAY-1"], still_in_review, people, identities) is None
    assert evaluate_retroactive_approval(["PAY-1"], {}, people, identities) is None
    # An approver who cannot be told apart from the people involved does not count either.
    unmapped = [("the author of 1234567", GitHubPerson("dave"))]
    assert evaluate_retroactive_approval(["PAY-1"], by_carol, unmapped, identities) is None
    assert evaluate_retroactive_approval(["PAY-1"], by_carol, [("x", BOB)], identities) is not None
    assert is_overdue(NOW, NOW + timedelta(seconds=1)) and not is_overdue(NOW, NOW)
    assert JIRA_CAROL.label() == "Carol Approver"


def test_a_pinned_required_check_counts_only_the_app_that_posts_it() -> None:
    def run(name: str, app: str, conclusion: str = "success") -> CheckResult:
        return CheckResult(name, "check_run", "completed", conclusion, {"name": name, "app": app})

    rules = [RequiredCheckRule("build", "github-actions"), RequiredCheckRule.of("lint")]
    (build, lint) = evaluate_required_checks(rules, [run("build", "sneaky-ci"), run("lint", "any-ci")])
    assert (build.passed, build.results, build.other_apps) == (False, (), ("sneaky-ci",))
    assert lint.passed
    (build,) = evaluate_required_checks(rules[:1], [run("build", "sneaky-ci"), run("build", "github-actions")])
    assert build.passed and build.other_apps == ("sneaky-ci",)
    # A commit status names no app: it cannot satisfy a pinned rule.
    (build,) = evaluate_required_checks(rules[:1], [a_check("build", "status", "success")])
    assert not build.passed and build.other_apps == ("a commit status",)
    assert RequiredCheckRule.of({"name": "build", "app": "github-actions"}).label() == "build (by github-actions)"


def test_only_each_apps_latest_run_of_a_check_counts() -> None:
    def run(ident: int, conclusion: str, app: str = "github-actions") -> CheckResult:
        return CheckResult("build", "check_run", "completed", conclusion, {"id": ident, "app": app})

    # A success, then a failed re-run: the check has not succeeded.
    (build,) = evaluate_required_checks(["build"], [run(1, "success"), run(2, "failure")])
    assert not build.passed and build.results == ("failure",)
    (build,) = evaluate_required_checks(["build"], [run(2, "success"), run(1, "failure")])
    assert build.passed
    # Apps are apart: another app's later failure does not hide GitHub Actions' success.
    (build,) = evaluate_required_checks(["build"], [run(1, "success"), run(2, "failure", "other-ci")])
    assert build.passed and build.results == ("failure", "success")


def test_the_policy_accepts_a_name_or_a_pinned_check_and_says_what_it_expects() -> None:
    from gating.policy.config import PolicyError, parse_policy

    policy = parse_policy("environments:\n  production:\n    required_checks: [lint, {name: build, app: gha}]\n")
    assert policy.environment("production").required_checks == (
        RequiredCheckRule("lint"),
        RequiredCheckRule("build", "gha"),
    )
    try:
        parse_policy("environments:\n  production:\n    required_checks: [{app: gha}]\n")
    except PolicyError as exc:
        assert exc.line == 3
        assert exc.message == (
            "`environments.production.required_checks.0` is {'app': 'gha'}; expected a check name, "
            "or {name: NAME, app: APP-SLUG} to pin the app that posts it"
        )
    else:
        raise AssertionError("a required check without a name was accepted")


def test_one_emergency_pr_makes_only_its_own_tickets_emergencies() -> None:
    hotfix = a_commit("Stop the bleeding")
    own = a_commit("OPS-7 guard the retry loop")  # a commit of the emergency PR names a ticket of its own
    feature = a_commit("Payouts in bulk")
    direct = a_commit("PAY-3 tidy up")
    pulls = (
        PullRequestInfo(1, "OPS-9 hotfix", "", "hotfix/ops-9", "alice", ("emergency",), (hotfix.sha, own.sha)),
        PullRequestInfo(2, "PAY-2 bulk payouts", "", "feature/pay-2", "alice", (), (feature.sha,)),
    )
    unapproved = ("OPS-9", "OPS-7", "PAY-2", "PAY-3")
    facts = replace(
        release_facts(tickets=tuple(a_ticket(k, status="In Review") for k in unapproved)),
        commits=(hotfix, own, feature, direct),
        pulls=pulls,
    )
    verdict = evaluate_deployment(facts, POLICY)
    outcomes = {t.key: t.outcome for t in verdict.tickets}
    assert outcomes == {
        "OPS-7": Outcome.EMERGENCY,
        "OPS-9": Outcome.EMERGENCY,
        "PAY-2": Outcome.FAILED,  # another PR in the same release: evaluated normally
        "PAY-3": Outcome.FAILED,  # a direct commit: evaluated normally
    }
    assert not verdict.passed
    assert emergency_tickets(facts.commits, facts.pulls, POLICY) == {"OPS-9", "OPS-7"}


def test_a_release_starts_at_the_last_approved_deployment_that_github_reports_as_shipped() -> None:
    approved = ((30, "c" * 40), (20, "b" * 40), (None, "d" * 40))
    # 30 was approved but never succeeded (stopped); 20 was approved and shipped.
    assert release_base(ShippedBefore(approved, ((20, "b" * 40), (10, "e" * 40))), SHA) == ("b" * 40, "last_approved")
    # Nothing approved shipped: the last deployment GitHub reports as successful.
    assert release_base(ShippedBefore(approved[:1], ((10, "e" * 40),)), SHA) == ("e" * 40, "last_successful")
    # A request with no deployment id is matched by its SHA.
    assert release_base(ShippedBefore(approved[2:], ((40, "d" * 40),)), SHA) == ("d" * 40, "last_approved")
    # The SHA being deployed is no base of its own unless Countersign approved it before.
    assert release_base(ShippedBefore((), ((10, SHA),)), SHA) == (None, "first_deployment")
    assert release_base(ShippedBefore((), ()), SHA) == (None, "first_deployment")
