"""The dossier in words, from recorded evidence alone: rules and their order, ranges, identities, links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gating.console.dossier_view import Links, dossier_view, github_web_url, rules

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
ALICE = {"login": "alice", "name": "Alice Author", "email": "alice@example.com"}
WEB_FLOW = {"login": "web-flow", "name": "GitHub", "email": "noreply@github.com"}


def dossier(**evidence: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "repository": "acme/payments",
        "environment": "production",
        "sha": "a" * 40,
        "requester": "dave",
        "requested_at": "2026-12-01T12:00:00Z",
        "captured_at": "2026-12-01T12:00:05Z",
        "commits": [],
        "tickets": [],
        "findings": [],
        "identities": {"alice": "acc-alice"},
        "decision": {"state": "approved", "outcome": "passed", "reasons": []},
    }
    base.update(evidence)
    return {
        "evidence": base,
        "answers": {
            "checks": {"required": []},
            "commits": {"commits": [], "unmapped": []},
            "decision": base["decision"],
        },
        "verification": {"ok": True, "entry_verified": True, "entry_hash_matches": True, "count": 3},
        "entry": {"id": 3, "sequence": 3, "hash": "b" * 64, "prev_hash": "c" * 64},
    }


def test_github_web_addresses_from_the_api_url() -> None:
    assert github_web_url("https://api.github.com") == "https://github.com"
    assert github_web_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com"
    assert Links.from_api("https://api.github.com", "https://jira.example.com/") == Links(
        "https://github.com", "https://jira.example.com"
    )
    assert Links.from_api(None, "") == Links(None, None)


def test_an_evaluation_that_failed_names_that_first() -> None:
    document = dossier(
        error="GitHub answered HTTP 502",
        findings=[{"rule": "internal", "outcome": "error", "summary": "Countersign could not decide", "reasons": []}],
        decision={"state": "rejected", "outcome": "error", "reasons": ["Countersign could not decide"]},
    )
    view = dossier_view(document, NOW)
    assert [(r["name"], r["words"]) for r in view["rules"][:2]] == [
        ("Countersign itself", "could not be evaluated"),
        ("Gathering the evidence", "could not be evaluated"),
    ]
    assert view["decision"] == "Rejected" and view["decision_outcome"] == "could not be evaluated"
    assert view["questions"]["tickets"] == "0 tickets" and view["questions"]["approvals"] == "no tickets to approve"
    assert view["questions"]["commits"] == "no commits in the range"
    assert view["range"] == "not recorded"


def test_ranges_in_words() -> None:
    def words(range_: dict[str, Any], commits: int = 4, base: dict[str, Any] | None = None) -> str:
        document = dossier(range=range_, commits=[{"sha": f"{n:040d}"} for n in range(commits)])
        document["range_base"] = base
        return str(dossier_view(document, NOW, base=base)["range"])

    first = {"base_sha": None, "head_sha": "a" * 40, "method": "first_deployment", "status": "first"}
    assert words(first, 1) == "first deployment to production: 1 commit reachable from aaaaaaa (its whole history)"
    assert words(first | {"truncated": True}).endswith("(limited by COUNTERSIGN_FIRST_DEPLOY_COMMITS)")
    approved = {"base_sha": "b" * 40, "head_sha": "a" * 40, "method": "last_approved", "status": "ahead"}
    assert words(approved, base={"id": 1, "decided_at": "2026-12-01T12:00:00Z"}) == (
        "4 commits since the last deployment to production, bbbbbbb, approved 2 days ago and reported deployed "
        "by GitHub"
    )
    assert words(approved) == (
        "4 commits since the last deployment to production, bbbbbbb, approved by Countersign and reported deployed "
        "by GitHub"
    )
    successful = approved | {"method": "last_successful"}
    earlier = "the last successful deployment to production that GitHub reports, bbbbbbb"
    assert words(successful | {"status": "identical"}, 0) == f"a redeploy of {earlier}: no new commits"
    assert words(successful | {"status": "behind"}, 0) == (
        f"a rollback: aaaaaaa is an ancestor of {earlier}, so it ships no new commits"
    )
    assert words(successful | {"status": "diverged"}, 2) == (
        f"2 commits since the merge base with {earlier} (the history diverged, e.g. a force-push)"
    )


def ticket(**fields: Any) -> dict[str, Any]:
    return {
        "key": "PAY-1",
        "status": "Approved",
        "approvers": ["Carol Approver"],
        "approved_at": "2026-12-01T11:00:00Z",
        "outcome": "passed",
        "reasons": [],
        "approval_source": "changelog",
        "approval_record": {"author": {"accountId": "acc-carol", "displayName": "Carol Approver"}},
    } | fields


def test_identities_are_named_as_recorded_and_github_itself_is_not_a_person() -> None:
    commits = [
        {"sha": "1" * 40, "tickets": ["PAY-1"], "author": ALICE, "committer": WEB_FLOW},
        {"sha": "2" * 40, "tickets": ["PAY-1"], "author": {"login": "erin", "email": "1+erin@users.noreply.github.com"},
         "committer": {"login": None, "name": "Someone", "email": "someone@example.com"}},
        {"sha": "3" * 40, "tickets": ["PAY-1"], "author": {"login": "frank"}, "committer": {"login": "frank"}},
    ]  # fmt: skip
    pulls = [{"number": 5, "title": "PAY-1: refunds", "head_ref": "x", "author": "alice", "commits": ["1" * 40],
              "merge_commit_sha": "1" * 40, "merged_by": "carol"}]  # fmt: skip
    view = dossier_view(dossier(commits=commits, pull_requests=pulls, tickets=[ticket()]), NOW, Links("https://gh"))
    (approver,) = view["tickets"][0]["separation"]["approvers"]
    assert approver["jira"] == "Carol Approver (accountId acc-carol)"
    rows = {(c["role"], c["how"], c["result"]) for c in approver["comparisons"]}
    assert ("the deployment requester", "nothing: no e-mail recorded, and .github/countersign.yml maps no account",
            "cannot tell") in rows  # fmt: skip
    assert (
        "the author of 1111111, GitHub's merge commit of PR #5 (who pressed Merge)",
        "the mapping `alice: acc-alice` in .github/countersign.yml",
        "different people",
    ) in rows
    assert ("the committer of 1111111", "GitHub itself", "not a person: not compared") in rows
    noreply = (
        "nothing: 1+erin@users.noreply.github.com is a GitHub noreply address, and .github/countersign.yml maps "
        "no account"
    )
    assert ("the author of 2222222", noreply, "cannot tell") in rows
    assert ("the committer of 2222222", "the e-mail someone@example.com, which no GitHub account has verified",
            "cannot tell") in rows  # fmt: skip
    assert (
        "the author of PR #5",
        "the mapping `alice: acc-alice` in .github/countersign.yml",
        "different people",
    ) in rows
    assert view["pulls"][0]["url"] == "https://gh/acme/payments/pull/5" and view["pulls"][0]["commits"] == "1 commit"


def test_a_service_management_approval_names_the_approvers_who_approved() -> None:
    record = {"approvers": [
        {"approver": {"accountId": "acc-carol", "displayName": "Carol Approver"}, "approverDecision": "approved"},
        {"approver": {"accountId": "acc-bob", "displayName": "Bob"}, "approverDecision": "declined"},
        "not an approver",
    ]}  # fmt: skip
    view = dossier_view(dossier(tickets=[ticket(approval_record=record, approval_source="jsm")]), NOW)
    separation = view["tickets"][0]["separation"]
    assert [a["jira"] for a in separation["approvers"]] == ["Carol Approver (accountId acc-carol)"]
    assert view["tickets"][0]["source"] == "Jira Service Management approval"
    unreadable = dossier_view(dossier(tickets=[ticket(approval_record={"id": "h"})]), NOW)
    assert unreadable["tickets"][0]["separation"]["recorded"] is False
    nothing = dossier_view(dossier(tickets=[ticket(approval_record=None, approval_source=None)]), NOW)
    assert nothing["tickets"][0]["separation"]["approvers"] == [] and nothing["tickets"][0]["source"] == "not recorded"
    nameless = dossier_view(dossier(tickets=[ticket(approval_record={"author": {"displayName": "Automation"}})]), NOW)
    assert nameless["tickets"][0]["separation"]["approvers"][0]["jira"] == "Automation (no account recorded)"


def test_rules_for_emergencies_unknown_tickets_and_missing_checks() -> None:
    emergency = ticket(
        key="OPS-1", approvers=[], approved_at=None, outcome="emergency", reasons=["OPS-1 is an emergency"]
    )
    evidence = dossier(tickets=[emergency], unknown_tickets=[])["evidence"]
    answers = {"checks": {"required": [
        {"name": "build", "app": "github-actions", "passed": False, "results": ["missing"]},
        {"name": "lint", "app": None, "passed": True, "results": ["success"]},
    ]}}  # fmt: skip
    found = rules(evidence, answers)
    assert [(r["name"], r["outcome"]) for r in found] == [
        ("Required CI checks", "failed"),
        ("Tickets approved in Jira", "emergency"),
        ("Every commit maps to a ticket", "passed"),
        ("Separation of duties", "passed"),
        ("The requester approved none of the tickets", "passed"),
    ]
    assert found[0]["details"] == [
        "build (posted by github-actions) is missing: no such check on the commit",
        "lint succeeded",
    ]
    assert found[1]["details"] == ["OPS-1 is an emergency"] and found[3]["details"] == ["no approval to compare"]
    unknown = rules(dossier(unknown_tickets=["PAY-9"])["evidence"], {})
    assert unknown[0]["details"] == ["PAY-9 is not known to Jira"]
    assert rules(dossier()["evidence"], {})[0]["details"] == ["no ticket to approve"]
    jira_down = ticket(approvers=[], outcome="error", reasons=["PAY-1 could not be read: Jira answered HTTP 503"])
    assert rules(dossier(tickets=[jira_down])["evidence"], {})[0]["words"] == "could not be evaluated"


def test_the_requester_rule_and_the_separation_rule_each_name_their_own_conflict() -> None:
    requester = "PAY-1: Dave approved it but is also the deployment requester; ask someone else to approve it"
    both = "PAY-2: Alice approved it but is also the author of 1111111 and the deployment requester; ask someone else"
    tickets = [ticket(outcome="failed", reasons=[requester]), ticket(key="PAY-2", outcome="failed", reasons=[both])]
    found = {r["name"]: r for r in rules(dossier(tickets=tickets)["evidence"], {})}
    assert found["The requester approved none of the tickets"]["details"] == [requester, both]
    assert found["Separation of duties"]["details"] == [both]


def test_the_proof_and_a_chain_broken_after_the_entry() -> None:
    document = dossier()
    document["verification"] |= {"ok": False, "reason": "entry 5: hash does not match its content (edited)"}
    full = {"at": "2026-12-03T11:00:00Z", "through_sequence": 4, "ok": True}
    document["verification"] |= {"how": "cached", "last_full_verification": full}
    view = dossier_view(document, NOW)
    assert view["questions"]["integrity"] == (
        "yes: this entry's hash matches its content and the chain verifies through it, but is broken after it "
        "(entry 5: hash does not match its content (edited)); last verified in full 1 hour ago"
    )
    assert view["proof"]["full"] == {"when": "2026-12-03 11:00:00 UTC (1 hour ago)", "through": 4, "ok": True}
    assert view["proof"]["how"].startswith("nothing was appended since the last verification")
    document["verification"] = {}
    assert dossier_view(document, NOW)["proof"]["how"] == "not recorded"
    assert dossier_view(document, NOW)["questions"]["integrity"] == "no: the ledger does not verify through this entry"


def test_a_signed_entry_shows_its_signature_and_the_key_that_made_it() -> None:
    from gating.console.rendering import render_dossier

    document = dossier()
    document["entry"] |= {"signature": "d" * 128, "signed_by": "e" * 64, "signature_valid": True}
    html = render_dossier(document, now=NOW)
    assert f'<code>{"d" * 128}</code> <span class="ok">valid</span>' in html
    assert f'Signed by key</th><td data-label="Signed by key"><code>{"e" * 64}</code>' in html
    assert "Produced at 2026-12-03 12:00:00 UTC" in html
