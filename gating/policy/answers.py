"""The auditor's five questions, answered from a deployment's recorded evidence and its ledger verification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gating.policy.checks import RecordedCheck, check_succeeded, evaluate_required_checks

QUESTIONS = (
    "Which Jira tickets were in this release?",
    "Who approved each, and was that before the deployment was requested?",
    "Which commits were included, and does each map to an approved ticket?",
    "Did every required CI check pass before deployment?",
    "What evidence backs each answer, and is it unaltered?",
)


def _check(record: Mapping[str, Any]) -> RecordedCheck:
    """A recorded check; entries written before `succeeded` was recorded are decided as the gate decides."""
    kind, status, conclusion = str(record.get("kind") or ""), record.get("status"), record.get("conclusion")
    succeeded = record["succeeded"] if "succeeded" in record else check_succeeded(kind, status, conclusion)
    app = record.get("app") or (record.get("raw") or {}).get("app") if kind == "check_run" else None
    ident = (record.get("raw") or {}).get("id") if kind == "check_run" else None
    order = ident if isinstance(ident, int) else 0
    return RecordedCheck(str(record.get("name") or ""), str(conclusion or status), bool(succeeded), app or None, order)


def _approved(ticket: Mapping[str, Any]) -> bool:
    # The gate's per-ticket outcome: "passed" means approved in Jira by someone allowed to approve it.
    return ticket.get("outcome") == "passed"


def answer_questions(
    evidence: Mapping[str, Any], entry: Mapping[str, Any], verification: Mapping[str, Any]
) -> dict[str, Any]:
    tickets = list(evidence.get("tickets") or [])
    by_key = {t.get("key"): t for t in tickets}
    unknown = list(evidence.get("unknown_tickets") or [])

    q1 = {
        "question": QUESTIONS[0],
        "tickets": [
            {k: t.get(k) for k in ("key", "summary", "issue_type", "status", "url")} | {"approved": _approved(t)}
            for t in tickets
        ],
        "unknown_tickets": unknown,
        "count": len(tickets),
    }

    approvals = [
        {
            "key": t.get("key"),
            "approvers": list(t.get("approvers") or []),
            "approved_at": t.get("approved_at"),
            "approved_before_request": bool(t.get("approved_before_request")),
            "approval_source": t.get("approval_source"),
            "outcome": t.get("outcome"),
            "reasons": list(t.get("reasons") or []),
        }
        for t in tickets
    ]
    q2 = {
        "question": QUESTIONS[1],
        "requester": evidence.get("requester"),
        "requested_at": evidence.get("requested_at"),  # absent from entries recorded before it was
        "evaluated_at": evidence.get("captured_at"),
        "approvals": approvals,
        "all_approved_before_request": bool(tickets)
        and all(a["approved_before_request"] and a["outcome"] == "passed" for a in approvals),
    }

    commits = []
    for commit in evidence.get("commits") or []:
        keys = list(commit.get("tickets") or [])
        approved_keys = [k for k in keys if k in by_key and _approved(by_key[k])]
        message = str(commit.get("message") or "")
        author = commit.get("author") or {}
        commits.append(
            {
                "sha": commit.get("sha"),
                "author": author.get("login") or author.get("name"),
                "subject": message.splitlines()[0] if message else "",
                "message": message,
                "tickets": keys,
                "approved_tickets": approved_keys,
                "maps_to_approved_ticket": bool(approved_keys),
            }
        )
    range_ = evidence.get("range") or {}
    q3 = {
        "question": QUESTIONS[2],
        "range": {k: range_.get(k) for k in ("base_sha", "head_sha", "method", "status", "description", "truncated")},
        "commits": commits,
        "count": len(commits),
        "all_map_to_approved_tickets": all(c["maps_to_approved_ticket"] for c in commits),
        # The PRs GitHub says brought the commits, and who merged each (who merged is not an author).
        "pull_requests": [
            {
                "number": p.get("number"),
                "title": p.get("title"),
                "author": p.get("author"),
                "merged_by": p.get("merged_by"),
                "labels": list(p.get("labels") or []),
                "commit_count": len(p.get("commits") or []),
            }
            for p in evidence.get("pull_requests") or []
        ],
        "unmapped": [c["sha"] for c in commits if not c["maps_to_approved_ticket"]],
    }

    checks = list(evidence.get("checks") or [])
    required = [
        {
            "name": r.name,
            "app": r.rule.app,
            "passed": r.passed,
            "found": r.found,
            "results": list(r.results) or ["missing"],
            "not_counted_from": list(r.other_apps),
        }
        for r in evaluate_required_checks(evidence.get("required_checks") or [], [_check(c) for c in checks])
    ]
    q4 = {
        "question": QUESTIONS[3],
        "required": required,
        "all_passed": all(r["passed"] for r in required),
        "checks_on_sha": [
            {k: c.get(k) for k in ("name", "kind", "status", "conclusion")}
            | {"succeeded": _check(c).succeeded, "app": _check(c).app}
            for c in checks
        ],
        "observed_at": evidence.get("captured_at"),
    }

    q5 = {
        "question": QUESTIONS[4],
        "ledger_entry_id": entry.get("id"),
        "sequence": entry.get("sequence"),
        "hash": entry.get("hash"),
        "prev_hash": entry.get("prev_hash"),
        "signature_present": entry.get("signature_present"),
        "signature_valid": entry.get("signature_valid"),
        "entry_hash_matches": verification.get("entry_hash_matches"),
        "chain_ok": verification.get("ok"),
        "entry_verified": verification.get("entry_verified"),
        "chain_count": verification.get("count"),
        "head_hash": verification.get("head_hash"),
        "first_bad_sequence": verification.get("first_bad_sequence"),
        "reason": verification.get("reason"),
        "evidence_captured_at": evidence.get("captured_at"),
        "approval_records": sum(1 for t in tickets if t.get("approval_record")),
    }
    decision = evidence.get("decision") or {}
    return {
        "tickets": q1,
        "approvals": q2,
        "commits": q3,
        "checks": q4,
        "integrity": q5,
        "decision": {
            "state": decision.get("state"),
            "outcome": decision.get("outcome"),
            "reasons": list(decision.get("reasons") or []),
        },
    }
