"""Deployment dossiers: search the ledger's deployment decisions, build the auditor's view of one, render it.

A dossier is one `deployment_decision` ledger entry seen by an auditor: the evidence exactly as recorded, the
entry's place in the hash chain, the verification of the chain up to now, and the five questions answered from
that evidence (PRODUCT.md, "The auditor's five questions"). The same document backs the JSON API, the HTML page
and `countersign export`; rendering needs no Flask request context.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select

from gating.db import Database
from gating.ledger import Ledger, LedgerEntryView, VerifyResult, entry_hash
from gating.ledger.chain import signature_valid as check_signature
from gating.models import Emergency, LedgerEntry

KIND = "deployment_decision"
DECISIONS = ("approved", "rejected", "emergency")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
CHECK_PASSED = ("success", "neutral", "skipped")  # as the deploy gate counts a check as succeeded
QUESTIONS = (
    "Which Jira tickets were in this release?",
    "Who approved each, and was that before the deployment was requested?",
    "Which commits were included, and does each map to an approved ticket?",
    "Did every required CI check pass before deployment?",
    "What evidence backs each answer, and is it unaltered?",
)
_SHA = re.compile(r"^[0-9a-fA-F]{1,64}$")


class BadParameter(ValueError):
    """A search parameter that cannot be understood; `name` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


# --- search ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentQuery:
    repo: str | None = None
    environment: str | None = None
    ticket: str | None = None
    sha: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    limit: int | None = DEFAULT_LIMIT

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, max_limit: int | None = MAX_LIMIT) -> DeploymentQuery:
        """From query-string style arguments; blank values are ignored. Raises BadParameter."""

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            return value or None

        decision = text("decision")
        if decision is not None:
            decision = decision.lower()
            if decision not in DECISIONS:
                raise BadParameter("decision", f"{decision!r} is not one of {', '.join(DECISIONS)}")
        sha = text("sha")
        if sha is not None and not _SHA.match(sha):
            raise BadParameter("sha", f"{sha!r} is not a hexadecimal commit SHA or prefix")
        limit: int | None = DEFAULT_LIMIT
        raw_limit = text("limit")
        if raw_limit is not None:
            try:
                limit = int(raw_limit)
            except ValueError:
                raise BadParameter("limit", f"{raw_limit!r} is not an integer") from None
            if limit < 1 or (max_limit is not None and limit > max_limit):
                raise BadParameter("limit", f"must be between 1 and {max_limit}")
        since = parse_when(text("since"), "since")
        until = parse_when(text("until"), "until", end_of_day=True)
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "must be later than since")
        return cls(
            repo=text("repo"),
            environment=text("environment"),
            ticket=text("ticket"),
            sha=sha.lower() if sha else None,
            since=since,
            until=until,
            decision=decision,
            limit=limit,
        )


def parse_when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """ISO-8601 date or datetime, as UTC when it names no zone. A bare date as an upper bound covers that day."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadParameter(
            name, f"{value!r} is not an ISO-8601 date or datetime (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def search_deployments(db: Database, query: DeploymentQuery) -> list[LedgerEntryView]:
    """Deployment decisions matching `query`, newest first. `sha` matches as a prefix; `ticket` as a whole key."""
    statement = select(LedgerEntry).where(LedgerEntry.kind == KIND).order_by(LedgerEntry.sequence.desc())
    if query.repo is not None:
        statement = statement.where(LedgerEntry.repository == query.repo)
    if query.environment is not None:
        statement = statement.where(LedgerEntry.environment == query.environment)
    if query.decision is not None:
        statement = statement.where(LedgerEntry.decision == query.decision)
    if query.sha is not None:
        statement = statement.where(LedgerEntry.sha.like(f"{query.sha}%"))
    if query.since is not None:
        statement = statement.where(LedgerEntry.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(LedgerEntry.created_at < query.until)
    if query.ticket is not None:
        escaped = query.ticket.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(LedgerEntry.payload.like(f'%"{escaped}"%', escape="\\"))
    if query.limit is not None:
        statement = statement.limit(query.limit)
    with db.session() as session:
        return [LedgerEntryView.of(row) for row in session.scalars(statement)]


def _evidence(entry: LedgerEntryView) -> dict[str, Any]:
    try:
        data = entry.data
    except (ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded_at(entry: LedgerEntryView) -> str:
    try:
        return str(entry.content()["recorded_at"])
    except (ValueError, KeyError, TypeError):
        return entry.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(entry: LedgerEntryView) -> dict[str, Any]:
    evidence = _evidence(entry)
    return {
        "id": entry.id,
        "recorded_at": _recorded_at(entry),
        "repository": entry.repository,
        "environment": entry.environment,
        "deployment_id": entry.deployment_id,
        "sha": entry.sha,
        "decision": entry.decision,
        "tickets": [t.get("key") for t in evidence.get("tickets") or []],
        "commit_count": len(evidence.get("commits") or []),
        "links": {"self": f"/api/v1/deployments/{entry.id}", "page": f"/deployments/{entry.id}"},
    }


# --- the dossier -------------------------------------------------------------------------------------------------


def load_dossier(ledger: Ledger, entry_id: int, verification: VerifyResult | None = None) -> dict[str, Any] | None:
    """The dossier of ledger entry `entry_id`, or None when there is no such deployment decision."""
    entry = ledger.get(entry_id)
    if entry is None or entry.kind != KIND:
        return None
    return build_dossier(entry, verification if verification is not None else ledger.verify(), ledger)


def build_dossier(entry: LedgerEntryView, verification: VerifyResult, ledger: Ledger | None = None) -> dict[str, Any]:
    evidence = _evidence(entry)
    hash_matches = entry_hash(entry.prev_hash, entry.payload) == entry.hash
    signature_valid: bool | None = None
    if entry.signature and ledger is not None and ledger.public_key is not None:
        signature_valid = check_signature(ledger.public_key, entry.hash, entry.signature)
    covered = verification.ok or (
        verification.first_bad_sequence is not None and verification.first_bad_sequence > entry.sequence
    )
    verification_doc = verification.as_dict() | {
        "entry_hash_matches": hash_matches,
        "entry_verified": bool(covered and hash_matches),
    }
    entry_doc = {
        "id": entry.id,
        "sequence": entry.sequence,
        "kind": entry.kind,
        "recorded_at": _recorded_at(entry),
        "hash": entry.hash,
        "prev_hash": entry.prev_hash,
        "signature_present": bool(entry.signature),
        "signature_valid": signature_valid,
    }
    return {
        "id": entry.id,
        "summary": summary(entry),
        "evidence": evidence,
        "entry": entry_doc,
        "verification": verification_doc,
        "answers": answer_questions(evidence, entry_doc, verification_doc),
    }


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
        "unmapped": [c["sha"] for c in commits if not c["maps_to_approved_ticket"]],
    }

    checks = list(evidence.get("checks") or [])
    required = []
    for name in evidence.get("required_checks") or []:
        matching = [c for c in checks if c.get("name") == name]
        passed = any(c.get("status") == "completed" and c.get("conclusion") in CHECK_PASSED for c in matching)
        seen = sorted({str(c.get("conclusion") or c.get("status")) for c in matching})
        required.append({"name": name, "passed": passed, "found": bool(matching), "results": seen or ["missing"]})
    q4 = {
        "question": QUESTIONS[3],
        "required": required,
        "all_passed": all(r["passed"] for r in required),
        "checks_on_sha": [{k: c.get(k) for k in ("name", "kind", "status", "conclusion")} for c in checks],
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


# --- emergencies -------------------------------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_emergencies(db: Database, now: datetime, *, overdue: bool | None = None) -> list[dict[str, Any]]:
    """Unresolved emergency changes, earliest deadline first; `overdue` True/False keeps only those past/before it."""
    statement = select(Emergency).where(Emergency.resolved_at.is_(None)).order_by(Emergency.deadline, Emergency.id)
    now = _aware(now)
    found = []
    with db.session() as session:
        for row in session.scalars(statement):
            deadline = _aware(row.deadline)
            late = deadline < now
            if overdue is not None and late != overdue:
                continue
            found.append(
                {
                    "id": row.id,
                    "repository": row.repository,
                    "environment": row.environment,
                    "deployment_id": row.deployment_id,
                    "sha": row.sha,
                    "tickets": row.tickets.split(),
                    "deadline": _iso(deadline),
                    "overdue": late,
                    "created_at": _iso(row.created_at),
                    "ledger_entry_id": row.ledger_entry_id,
                    "links": {"page": f"/deployments/{row.ledger_entry_id}"},
                }
            )
    return found


# --- rendering ---------------------------------------------------------------------------------------------------

_environment: Environment | None = None


def templates() -> Environment:
    """The Jinja environment for Countersign's pages: autoescaped, usable with or without Flask."""
    global _environment
    if _environment is None:
        env = Environment(
            loader=PackageLoader("gating", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["short"] = lambda sha: (sha or "")[:7]
        _environment = env
    return _environment


def render_dossier(dossier: Mapping[str, Any]) -> str:
    return templates().get_template("dossier.html").render(d=dossier, questions=QUESTIONS)


def render_dashboard(
    deployments: Iterable[Mapping[str, Any]],
    emergencies: Iterable[Mapping[str, Any]],
    filters: Mapping[str, str],
    error: str | None = None,
) -> str:
    return (
        templates()
        .get_template("dashboard.html")
        .render(
            deployments=list(deployments),
            emergencies=list(emergencies),
            filters=filters,
            decisions=DECISIONS,
            error=error,
        )
    )


def render_message(title: str, message: str) -> str:
    return templates().get_template("message.html").render(title=title, message=message)
