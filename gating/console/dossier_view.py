"""The dossier as an auditor reads it: the recorded evidence put into words, rule by rule and question by question.

Pure: a dossier (`gating.console.dossiers`) and the present moment in, plain values out, for the page and the
export to lay out. Everything shown comes from what the entry records; what it does not record is said to be not
recorded, and a link is made only to something the evidence names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from gating.console.wording import approval_timing, join_words, noun, parse_time, plural, relative, utc, when
from gating.policy.facts import GitHubPerson
from gating.policy.separation_of_duties import is_github_itself, is_noreply, same_person
from jira_client.parsing import parse_user

CONFIG_FILE = ".github/countersign.yml"

# Internal codes, in words.
OUTCOMES = {
    "passed": "passed",
    "failed": "failed",
    "emergency": "emergency change: may ship, approval due after the fact",
    "error": "could not be evaluated",
}
DECISIONS = {"approved": "Approved", "rejected": "Rejected"}
APPROVAL_SOURCES = {"changelog": "Jira status change", "jsm": "Jira Service Management approval"}
CHECK_KINDS = {"check_run": "check run", "status": "commit status"}
ERROR_RULES = {"internal": "Countersign itself", "configuration": "The policy file", "jira": "Reading Jira"}

# Failing rules first, then emergencies, then the rest, each group in the table's own order.
_RANK = {"error": 0, "failed": 0, "emergency": 1, "passed": 2}


@dataclass(frozen=True)
class Links:
    """Where links point: GitHub's web address (derived from the API URL) and Jira's base URL, when configured."""

    github_web: str | None = None
    jira: str | None = None

    @classmethod
    def from_api(cls, github_api_url: str | None, jira_url: str | None) -> Links:
        return cls(github_web_url(github_api_url) if github_api_url else None, (jira_url or "").rstrip("/") or None)


def github_web_url(api_url: str) -> str:
    """https://api.github.com -> https://github.com; GitHub Enterprise Server's https://HOST/api/v3 -> https://HOST."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc == "api.github.com":
        return f"{parts.scheme}://github.com"
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _person(person: Mapping[str, Any] | None) -> dict[str, Any]:
    """A GitHub person as recorded, and how to name them: 'Alice Author (alice, alice@example.com)'."""
    person = person or {}
    login, name, email = person.get("login"), person.get("name"), person.get("email")
    details = [value for value in (login, email) if value and value != name]
    label = f"{name} ({', '.join(details)})" if name and details else name or ", ".join(details) or "not recorded"
    return {"login": login, "name": name, "email": email, "label": label}


def _jira_label(user: Mapping[str, Any]) -> str:
    """'Carol Approver (accountId acc-carol, e-mail carol@example.com)', naming what Jira recorded."""
    parts = [
        f"{kind} {user[field]}"
        for kind, field in (
            ("accountId", "accountId"),
            ("username", "name"),
            ("key", "key"),
            ("e-mail", "emailAddress"),
        )
        if user.get(field)
    ]
    name = user.get("displayName") or "a Jira user"
    return f"{name} ({', '.join(parts)})" if parts else f"{name} (no account recorded)"


def _recorded_approvers(record: Any) -> list[Mapping[str, Any]] | None:
    """The Jira users the approval record names: a changelog's author, or a JSM approval's approving approvers."""
    if not isinstance(record, Mapping):
        return None
    author = record.get("author")
    if isinstance(author, Mapping):
        return [author]
    approvers = record.get("approvers")
    if isinstance(approvers, list):
        return [
            entry["approver"]
            for entry in approvers
            if isinstance(entry, Mapping)
            and isinstance(entry.get("approver"), Mapping)
            and entry.get("approverDecision") == "approved"
        ]
    return None


def _resolution(person: Mapping[str, Any], identities: Mapping[str, str] | None) -> str:
    """How a GitHub person is tied to a Jira account for the comparison: the mapping, an e-mail, or nothing."""
    if identities is None:
        return "not recorded (this entry predates recording the identity mapping)"
    login, email = person.get("login"), person.get("email")
    mapped = next((value for key, value in identities.items() if login and key.casefold() == login.casefold()), None)
    if mapped is not None:
        return f"the mapping `{login}: {mapped}` in {CONFIG_FILE}"
    if email and not is_noreply(email):
        return f"the e-mail {email}" + ("" if login else ", which no GitHub account has verified")
    if email:
        return f"nothing: {email} is a GitHub noreply address, and {CONFIG_FILE} maps no account"
    return f"nothing: no e-mail recorded, and {CONFIG_FILE} maps no account"


def _people_for(ticket: str, evidence: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Whom the approver of `ticket` was compared with: the requester, the authors and committers of the commits
    that reference it, and the authors of the PRs whose title or branch name it."""
    people: list[tuple[str, dict[str, Any]]] = []
    if evidence.get("requester"):
        people.append(("the deployment requester", _person({"login": evidence["requester"]})))
    merges = {p.get("merge_commit_sha"): p for p in evidence.get("pull_requests") or [] if p.get("merge_commit_sha")}
    for commit in evidence.get("commits") or []:
        if ticket not in (commit.get("tickets") or []):
            continue
        short = str(commit.get("sha") or "")[:7]
        author, committer = commit.get("author") or {}, commit.get("committer") or {}
        pull = merges.get(commit.get("sha"))
        if pull is not None and (committer.get("login") or "").lower() == "web-flow":
            role = f"the author of {short}, GitHub's merge commit of PR #{pull.get('number')} (who pressed Merge)"
        else:
            role = f"the author of {short}"
        people.append((role, _person(author)))
        people.append((f"the committer of {short}", _person(committer)))
    for pull in evidence.get("pull_requests") or []:
        named = f"{pull.get('title') or ''} {pull.get('head_ref') or ''}".casefold()
        if ticket.casefold() in named and pull.get("author"):
            people.append((f"the author of PR #{pull.get('number')}", _person({"login": pull["author"]})))
    return people


def _known_emails(evidence: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    emails: dict[str, set[str]] = {}
    for commit in evidence.get("commits") or []:
        for person in (commit.get("author") or {}, commit.get("committer") or {}):
            login, email = person.get("login"), person.get("email")
            if login and email and not is_github_itself(GitHubPerson(login, None, email)):
                emails.setdefault(login, set()).add(email)
    return {login: frozenset(found) for login, found in emails.items()}


def separation(ticket: Mapping[str, Any], evidence: Mapping[str, Any]) -> dict[str, Any]:
    """The separation-of-duties comparison for one ticket, as far as the evidence records it."""
    recorded = _recorded_approvers(ticket.get("approval_record"))
    identities = evidence.get("identities")
    identities = dict(identities) if isinstance(identities, Mapping) else None
    approvers = []
    for raw in recorded or []:
        user = parse_user(raw)
        rows = []
        for role, person in _people_for(str(ticket.get("key")), evidence):
            github = GitHubPerson(person["login"], person["name"], person["email"])
            if is_github_itself(github):
                rows.append(_comparison(role, person, "GitHub itself", "not a person: not compared", "muted"))
                continue
            how = _resolution(person, identities)
            if identities is None or user is None:
                rows.append(_comparison(role, person, how, "not recorded", "muted"))
                continue
            same = same_person(github, user, identities, _known_emails(evidence))
            result = {True: ("the same person", "bad"), False: ("different people", "ok"), None: ("cannot tell", "bad")}
            rows.append(_comparison(role, person, how, *result[same]))
        approvers.append({"jira": _jira_label(raw), "comparisons": rows})
    outcome = ticket.get("outcome")
    sod_reasons = [r for r in ticket.get("reasons") or [] if _is_separation_reason(r)]
    return {
        "key": ticket.get("key"),
        "recorded": recorded is not None,
        "approvers": approvers,
        "approver_names": list(ticket.get("approvers") or []),
        "passed": bool(ticket.get("approvers")) and not sod_reasons,
        "evaluated": bool(ticket.get("approvers")),
        "reasons": sod_reasons,
        "outcome": outcome,
    }


def _comparison(role: str, person: Mapping[str, Any], how: str, result: str, css: str) -> dict[str, Any]:
    return {"role": role, "github": person["label"], "how": how, "result": result, "class": css}


# The evidence records each ticket's reasons as the gate wrote them, not the rule each came from; these are the
# phrasings of gating.policy.separation_of_duties (a conflict, an identity it cannot tell apart, an approver with
# no account). A reason that matches none still shows, under the ticket and in the decision's reasons.
def _is_separation_reason(reason: str) -> bool:
    return "approved it but is also" in reason or "cannot tell whether" in reason or "names no account" in reason


def _is_requester_reason(reason: str) -> bool:
    return "the deployment requester" in reason


def _rule(name: str, outcome: str, details: Sequence[str]) -> dict[str, Any]:
    return {
        "name": name,
        "outcome": outcome,
        "words": OUTCOMES.get(outcome, outcome),
        "failing": outcome in ("failed", "error"),
        "details": list(details),
    }


def rules(evidence: Mapping[str, Any], answers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rule the gate applied, with its outcome and why, the failing ones first."""
    tickets = list(evidence.get("tickets") or [])
    unknown = list(evidence.get("unknown_tickets") or [])
    findings = list(evidence.get("findings") or [])
    out = []

    unapproved = [t for t in tickets if not t.get("approvers")]
    errors = [t for t in unapproved if t.get("outcome") == "error"]
    failing = [t for t in unapproved if t.get("outcome") == "failed"]
    emergencies = [t for t in tickets if t.get("outcome") == "emergency"]
    if errors:
        outcome = "error"
    elif failing or unknown:
        outcome = "failed"
    elif emergencies:
        outcome = "emergency"
    else:
        outcome = "passed"
    details = [r for t in errors + failing for r in t.get("reasons") or []]
    details += [f"{key} is not known to Jira" for key in unknown if not any(t.get("key") == key for t in tickets)]
    details += [r for t in emergencies for r in t.get("reasons") or []]
    if outcome == "passed":
        count = len(tickets)
        details.append(
            f"{plural(count, 'ticket')} in an approved status with a recorded approval"
            if count
            else "no ticket to approve"
        )
    out.append(_rule("Tickets approved in Jira", outcome, details))

    traceability = [f for f in findings if f.get("rule") == "traceability"]
    exempt = [f for f in findings if f.get("rule") == "exemption"]
    if traceability:
        out.append(
            _rule("Every commit maps to a ticket", traceability[0].get("outcome") or "failed", _reasons(traceability))
        )
    else:
        commits = len(evidence.get("commits") or [])
        lines = [f"{plural(commits, 'commit')}: each names a ticket, or came with a pull request that does"]
        lines += [r for f in exempt for r in f.get("reasons") or []]
        out.append(_rule("Every commit maps to a ticket", "passed", lines))

    sod_failures = [
        r
        for t in tickets
        if t.get("approvers") and t.get("outcome") in ("failed", "emergency")
        for r in t.get("reasons") or []
        if _is_separation_reason(r) and not _is_requester_only(r)
    ]
    approved = [t for t in tickets if t.get("approvers")]
    out.append(
        _rule(
            "Separation of duties",
            "failed" if sod_failures else "passed",
            sod_failures
            or [
                f"{plural(len(approved), 'ticket')} approved by someone who is none of its authors or committers"
                if approved
                else "no approval to compare"
            ],
        )
    )

    required = list(answers.get("checks", {}).get("required") or [])
    lines = [_required_line(r) for r in required] or ["no check is required for this environment"]
    out.append(_rule("Required CI checks", "passed" if all(r.get("passed") for r in required) else "failed", lines))

    requester = evidence.get("requester") or "not recorded"
    by_requester = [r for t in tickets for r in t.get("reasons") or [] if _is_requester_reason(r)]
    out.append(
        _rule(
            "The requester approved none of the tickets",
            "failed" if by_requester else "passed",
            by_requester or [f"{requester} requested the deployment and approved none of its tickets"],
        )
    )

    for finding in findings:
        rule = str(finding.get("rule") or "")
        if rule in ("traceability", "exemption", "required_checks"):
            continue
        name = ERROR_RULES.get(rule, rule.replace("_", " ").capitalize())
        out.append(_rule(name, str(finding.get("outcome") or "failed"), _reasons([finding])))
    if evidence.get("error"):
        out.append(_rule("Gathering the evidence", "error", [str(evidence["error"])]))
    return sorted(out, key=lambda rule: _RANK.get(rule["outcome"], 0))


def _is_requester_only(reason: str) -> bool:
    """A conflict that is only the requester's (the requester rule names it), not also an author's or committer's."""
    return _is_requester_reason(reason) and "author of" not in reason and "committer of" not in reason


def _reasons(findings: Sequence[Mapping[str, Any]]) -> list[str]:
    return [r for f in findings for r in (f.get("reasons") or [f.get("summary") or ""]) if r]


def _required_line(required: Mapping[str, Any]) -> str:
    app = f" (posted by {required['app']})" if required.get("app") else ""
    results = [r for r in required.get("results") or [] if r != "missing"]
    if required.get("passed"):
        return f"{required.get('name')}{app} succeeded"
    if not results:
        return f"{required.get('name')}{app} is missing: no such check on the commit"
    return f"{required.get('name')}{app} has not succeeded ({join_words(results)})"


def _range_words(evidence: Mapping[str, Any], base: Mapping[str, Any] | None, now: datetime) -> str:
    range_ = evidence.get("range") or {}
    count = len(evidence.get("commits") or [])
    environment = evidence.get("environment") or "this environment"
    base_sha = str(range_.get("base_sha") or "")[:7]
    head = str(range_.get("head_sha") or evidence.get("sha") or "")[:7]
    status, method = range_.get("status"), range_.get("method")
    if status == "first" or method == "first_deployment":
        limited = (
            " (limited by COUNTERSIGN_FIRST_DEPLOY_COMMITS)" if range_.get("truncated") else " (its whole history)"
        )
        return f"first deployment to {environment}: {plural(count, 'commit')} reachable from {head}{limited}"
    if not range_:
        return "not recorded"
    if method == "last_approved":
        earlier = f"the last deployment to {environment}, {base_sha}"
        if base is not None:
            earlier += f", approved {relative(base.get('decided_at'), now)} and reported deployed by GitHub"
        else:
            earlier += ", approved by Countersign and reported deployed by GitHub"
    else:
        earlier = f"the last successful deployment to {environment} that GitHub reports, {base_sha}"
    if status == "identical":
        return f"a redeploy of {earlier}: no new commits"
    if status == "behind":
        return f"a rollback: {head} is an ancestor of {earlier}, so it ships no new commits"
    if status == "diverged":
        return (
            f"{plural(count, 'commit')} since the merge base with {earlier} (the history diverged, e.g. a force-push)"
        )
    return f"{plural(count, 'commit')} since {earlier}"


def _ticket_url(ticket: Mapping[str, Any], links: Links) -> str | None:
    if ticket.get("url"):
        return str(ticket["url"])
    return f"{links.jira}/browse/{quote(str(ticket.get('key')))}" if links.jira and ticket.get("key") else None


def dossier_view(
    dossier: Mapping[str, Any], now: datetime, links: Links | None = None, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the page shows, in words. `base`: the ledger's record of the deployment the range starts from."""
    links = links or Links()
    evidence: Mapping[str, Any] = dossier.get("evidence") or {}
    answers: Mapping[str, Any] = dossier.get("answers") or {}
    verification: Mapping[str, Any] = dossier.get("verification") or {}
    entry: Mapping[str, Any] = dossier.get("entry") or {}
    repo = evidence.get("repository")
    web = f"{links.github_web}/{repo}" if links.github_web and repo else None
    requested_at = evidence.get("requested_at")

    tickets = []
    for t in evidence.get("tickets") or []:
        timing, timing_class = (
            approval_timing(t.get("approved_at"), requested_at)
            if t.get("approvers")
            else (
                "not approved",
                "missing",
            )
        )
        tickets.append(
            {
                "key": t.get("key"),
                "url": _ticket_url(t, links),
                "summary": t.get("summary") or "",
                "type": t.get("issue_type") or "not recorded",
                "status": t.get("status") or "not recorded",
                "approvers": join_words(list(t.get("approvers") or [])) or "nobody",
                "approved_at": utc(t.get("approved_at")) or "not approved",
                "timing": timing,
                "timing_class": {"before": "ok", "missing": "bad", "after": "bad"}.get(timing_class, "warn"),
                "source": APPROVAL_SOURCES.get(str(t.get("approval_source")))
                or ("not recorded" if t.get("approvers") else "no approval recorded"),
                "outcome": OUTCOMES.get(str(t.get("outcome")), str(t.get("outcome"))),
                "outcome_class": str(t.get("outcome")),
                "reasons": list(t.get("reasons") or []),
                "separation": separation(t, evidence),
            }
        )

    prs_by_commit: dict[str, list[int]] = {}
    pulls = []
    for p in evidence.get("pull_requests") or []:
        for sha in p.get("commits") or []:
            prs_by_commit.setdefault(sha, []).append(p.get("number"))
        pulls.append(
            {
                "number": p.get("number"),
                "url": f"{web}/pull/{p.get('number')}" if web else None,
                "title": p.get("title") or "",
                "author": p.get("author") or "not recorded",
                "merged_by": p.get("merged_by") or "not recorded",
                "commits": plural(len(p.get("commits") or []), "commit"),
                "labels": join_words(list(p.get("labels") or [])) or "none",
            }
        )
    commits = []
    mapped = {c.get("sha"): c for c in answers.get("commits", {}).get("commits") or []}
    for c in evidence.get("commits") or []:
        sha = str(c.get("sha") or "")
        answer = mapped.get(sha) or {}
        author, committer = _person(c.get("author")), _person(c.get("committer"))
        commits.append(
            {
                "sha": sha,
                "short": sha[:7],
                "url": f"{web}/commit/{sha}" if web and sha else None,
                "subject": (c.get("message") or "").splitlines()[0] if c.get("message") else "",
                "author": author["label"],
                "committer": committer["label"],
                "pulls": [{"number": n, "url": f"{web}/pull/{n}" if web else None} for n in prs_by_commit.get(sha, [])],
                "tickets": join_words(list(c.get("tickets") or [])) or "none",
                "maps": bool(answer.get("maps_to_approved_ticket")),
                "approved_tickets": join_words(list(answer.get("approved_tickets") or [])),
            }
        )

    checks = []
    for c in evidence.get("checks") or []:
        raw = c.get("raw") or {}
        kind = c.get("kind")
        app = c.get("app") or (raw.get("app") if kind == "check_run" else None)
        url = raw.get("html_url") or raw.get("target_url") or None
        checks.append(
            {
                "name": c.get("name"),
                "kind": CHECK_KINDS.get(str(kind), str(kind)),
                "app": app or ("not recorded" if kind == "check_run" else "a commit status names no app"),
                "result": c.get("conclusion") or c.get("status") or "not recorded",
                "succeeded": bool(c.get("succeeded")),
                "url": url if isinstance(url, str) and url.startswith(("https://", "http://")) else None,
            }
        )
    required = []
    for r in answers.get("checks", {}).get("required") or []:
        matching = [c for c in checks if c["name"] == r.get("name") and (not r.get("app") or c["app"] == r.get("app"))]
        required.append(
            {
                "name": r.get("name"),
                "pinned": r.get("app") or "any app",
                "passed": bool(r.get("passed")),
                "line": _required_line(r),
                "matching": matching,
                "not_counted": join_words(list(r.get("not_counted_from") or [])),
            }
        )

    decision = answers.get("decision") or {}
    state = str(decision.get("state") or "")
    rule_rows = rules(evidence, answers)
    failing = [rule for rule in rule_rows if rule["failing"]]

    run_id = evidence.get("workflow_run_id")
    attempt = evidence.get("workflow_run_attempt")
    run_url = None
    if web and run_id:
        run_url = f"{web}/actions/runs/{run_id}" + (f"/attempts/{attempt}" if attempt else "")
    environment = evidence.get("environment")
    full = verification.get("last_full_verification")
    how = verification.get("how")
    pending = verification.get("pending")
    checked = int(verification.get("entries_checked") or 0)
    if how == "incremental":
        how_words = (
            f"continued from the last verification: {plural(checked, 'entry')} appended since "
            f"{noun(checked, 'was')} checked, "
            "and the last verified entry was checked to be unchanged"
        )
    elif how == "cached":
        how_words = "nothing was appended since the last verification, whose last entry was checked to be unchanged"
    elif how == "full":
        how_words = f"every entry recomputed ({plural(checked, 'entry')})"
    elif how == "pending" and isinstance(pending, Mapping):
        left = int(pending.get("entries") or 0)
        how_words = (
            f"not to the end: {pending.get('reason')}; the worker verifies the {plural(left, 'entry')} left "
            "(it extends the verification every minute), so this page does not wait for it"
        )
    else:
        how_words = "not recorded"
    chain_class, chain_words = _chain_state(verification)
    count = len(evidence.get("commits") or [])
    uncovered = answers.get("commits", {}).get("unmapped") or []
    questions = {
        "tickets": _tickets_answer(evidence),
        "approvals": _approvals_answer(tickets, requested_at),
        "commits": (
            f"{plural(count, 'commit')}: "
            + (
                "each maps to an approved ticket"
                if not uncovered
                else f"{plural(len(uncovered), 'commit')} {noun(len(uncovered), 'does')} not map to an approved ticket"
            )
            if count
            else "no commits in the range"
        ),
        "checks": _checks_answer(required),
        "integrity": _integrity_answer(verification, full, now),
    }
    return {
        "title": f"{repo or 'not recorded'} to {environment or 'not recorded'}",
        "decision": DECISIONS.get(state, "Not recorded"),
        "decision_class": state or "error",
        "decision_outcome": OUTCOMES.get(str(decision.get("outcome")), "")
        if decision.get("outcome") != "passed"
        else "",
        "failing": failing,
        "failing_words": f"{plural(len(failing), 'rule')} failed",
        "reasons": list(decision.get("reasons") or []),
        "requested_at": when(requested_at, now) or "not recorded",
        "evaluated_at": when(evidence.get("captured_at"), now) or "not recorded",
        "recorded_at": when(entry.get("recorded_at"), now),
        "requester": evidence.get("requester") or "not recorded",
        "sha": evidence.get("sha") or "",
        "sha_url": f"{web}/commit/{evidence.get('sha')}" if web and evidence.get("sha") else None,
        "ref": evidence.get("ref"),
        "deployment_id": evidence.get("deployment_id"),
        "deployments_url": f"{web}/deployments/{quote(str(environment))}" if web and environment else None,
        "run_id": run_id,
        "run_attempt": attempt,
        "run_url": run_url,
        "error": evidence.get("error"),
        "questions": questions,
        "rules": rule_rows,
        "tickets": tickets,
        "unknown_tickets": list(evidence.get("unknown_tickets") or []),
        "range": _range_words(evidence, base, now),
        "range_truncated": bool((evidence.get("range") or {}).get("truncated")),
        "commits": commits,
        "pulls": pulls,
        "checks": checks,
        "required": required,
        "proof": {
            "entry_id": entry.get("id"),
            "sequence": entry.get("sequence"),
            "hash": entry.get("hash"),
            "prev_hash": entry.get("prev_hash"),
            "signature": entry.get("signature") or None,
            "signed_by": entry.get("signed_by"),
            "signature_valid": entry.get("signature_valid"),
            "entry_verified": bool(verification.get("entry_verified")),
            "hash_matches": bool(verification.get("entry_hash_matches")),
            "chain_ok": bool(verification.get("ok")),
            "chain_class": chain_class,
            "chain_words": chain_words,
            "verdict_class": VERDICTS[_entry_state(verification)][0],
            "verdict": VERDICTS[_entry_state(verification)][1],
            "chain_count": plural(int(verification.get("count") or 0), "entry"),
            "first_bad": verification.get("first_bad_sequence"),
            "reason": verification.get("reason"),
            "head_hash": verification.get("head_hash"),
            "how": how_words,
            "verified_at": when(verification.get("verified_at"), now) or "not recorded",
            "full": (
                {
                    "when": when(full.get("at"), now),
                    "through": full.get("through_sequence"),
                    "ok": bool(full.get("ok")),
                }
                if isinstance(full, Mapping)
                else None
            ),
            "stored": join_words(
                [
                    plural(int(answers.get("integrity", {}).get("approval_records") or 0), "Jira approval record"),
                    plural(len(commits), "commit"),
                    plural(len(pulls), "pull request"),
                    plural(len(checks), "check result"),
                ]
            ),
        },
        "produced_at": utc(now),
    }


def _tickets_answer(evidence: Mapping[str, Any]) -> str:
    keys = [str(t.get("key")) for t in evidence.get("tickets") or []]
    unknown = list(evidence.get("unknown_tickets") or [])
    text = f"{plural(len(keys), 'ticket')}" + (f": {join_words(keys)}" if keys else "")
    if unknown:
        text += f"; {plural(len(unknown), 'referenced key')} Jira does not know: {join_words(unknown)}"
    return text


def _approvals_answer(tickets: Sequence[Mapping[str, Any]], requested_at: Any) -> str:
    if not tickets:
        return "no tickets to approve"
    late = [t["key"] for t in tickets if t["timing_class"] != "ok"]
    conflicted = [t["key"] for t in tickets if t["separation"]["evaluated"] and not t["separation"]["passed"]]
    moment = "the request" if parse_time(requested_at) else "the evaluation (the request time is not recorded)"
    if not late and not conflicted:
        return f"every ticket was approved before {moment}, by someone other than its authors"
    parts = []
    if late:
        parts.append(f"{join_words(late)} {noun(len(late), 'was')} not approved before {moment}")
    if conflicted:
        parts.append(f"{join_words(conflicted)} failed separation of duties")
    return "no: " + "; ".join(parts)


def _checks_answer(required: Sequence[Mapping[str, Any]]) -> str:
    if not required:
        return "no check is required for this environment"
    failed = [r["name"] for r in required if not r["passed"]]
    if not failed:
        return f"yes: {plural(len(required), 'required check')} succeeded before the decision"
    return f"no: {join_words(failed)} had not succeeded"


# What the page says of this entry's place in the chain, by `_entry_state`: (class, words).
VERDICTS = {
    "verified": ("ok", "Ledger verified:"),
    "waiting": ("warn", "Not verified yet:"),
    "unverified": ("bad", "Ledger NOT VERIFIED:"),
    "broken": ("bad", "Ledger BROKEN:"),
}


def _entry_state(verification: Mapping[str, Any]) -> str:
    """Verified through this entry; waiting for the worker's walk, nothing found wrong; not verified because what was
    verified before no longer holds (the worker's walk will say where); or broken."""
    if verification.get("entry_verified"):
        return "verified"
    pending = verification.get("pending")
    if isinstance(pending, Mapping):
        if pending.get("cache_failed"):
            return "unverified"
        if verification.get("first_bad_sequence") is None:
            return "waiting"
    return "broken"


def _chain_state(verification: Mapping[str, Any]) -> tuple[str, str]:
    """The chain's verification in words, with its class: verified (how far), broken (where), or not verified."""
    if verification.get("ok"):
        through = verification.get("verified_through")
        if verification.get("pending") and through is not None:
            return "warn", f"verified OK through entry {through}; the entries after it are not verified yet"
        return "ok", "verified OK"
    if verification.get("first_bad_sequence") is not None:
        return "bad", f"broken at entry {verification.get('first_bad_sequence')}: {verification.get('reason')}"
    return "bad", f"not verified: {verification.get('reason') or 'no verification recorded'}"


def _integrity_answer(verification: Mapping[str, Any], full: Any, now: datetime) -> str:
    state = _entry_state(verification)
    if state == "waiting":
        return (
            "not yet: the chain has not been verified through this entry "
            f"({(verification.get('pending') or {}).get('reason')}); reload in a minute or two"
        )
    if state == "unverified":
        return f"no: the ledger is not verified through this entry ({verification.get('reason')})"
    if state == "broken":
        return "no: the ledger does not verify through this entry"
    text = "yes: this entry's hash matches its content and the chain verifies through it"
    if not verification.get("ok"):
        text += f", but is broken after it ({verification.get('reason')})"
    if isinstance(full, Mapping) and full.get("at"):
        text += f"; last verified in full {relative(full.get('at'), now)}"
    return text
