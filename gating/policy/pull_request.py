"""The merge gate's rules: traceability, approval, separation of duties and review."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gating.policy.config import Policy
from gating.policy.facts import Commit, GitHubPerson, PullRequestFacts
from gating.policy.review_freshness import evaluate_review
from gating.policy.separation_of_duties import check_separation, identity_warnings, is_github_itself
from gating.policy.ticket_approval import evaluate_ticket_approval
from gating.policy.ticket_keys import find_keys, sort_keys
from gating.policy.verdict import Finding, Outcome, TicketResult, Verdict
from jira_client.models import Ticket


@dataclass(frozen=True)
class References:
    """Which tickets a change names, and where."""

    change_keys: tuple[str, ...]  # from the PR title, branch (and body): they cover every commit
    commit_keys: Mapping[str, tuple[str, ...]]  # sha -> keys in that commit's own message

    @property
    def all_keys(self) -> list[str]:
        keys = set(self.change_keys)
        for found in self.commit_keys.values():
            keys.update(found)
        return sort_keys(keys)

    def commits_referencing(self, key: str, commits: Sequence[Commit]) -> list[Commit]:
        if key in self.change_keys:
            return list(commits)
        return [c for c in commits if key in self.commit_keys.get(c.sha, ())]


def collect_references(
    policy: Policy, *, title: str = "", branch: str = "", body: str = "", commits: Sequence[Commit] = ()
) -> References:
    """Keys from each configured source; branch names match case-insensitively (feature/pay-101-x)."""
    sources = set(policy.key_sources)
    change: list[str] = []
    if "title" in sources:
        change.extend(find_keys(title, policy.projects))
    if "branch" in sources:
        change.extend(find_keys(branch, policy.projects, ignore_case=True))
    if "body" in sources:
        change.extend(find_keys(body, policy.projects))
    commit_keys = {c.sha: find_keys(c.message, policy.projects) for c in commits} if "commits" in sources else {}
    return References(tuple(dict.fromkeys(change)), commit_keys)


def known_emails(commits: Iterable[Commit]) -> dict[str, frozenset[str]]:
    """E-mails on commits GitHub attributed to a login, by login: GitHub verified them for that account.

    A commit's e-mail is typed by whoever commits; it says something about a login only because
    GitHub linked that commit to the login. E-mails of unattributed commits are left out, and
    noreply addresses are kept but prove no difference (separation_of_duties decides what counts).
    """
    emails: dict[str, set[str]] = {}
    for commit in commits:
        for person in (commit.author, commit.committer):
            if person.login and person.email and not is_github_itself(person):
                emails.setdefault(person.login, set()).add(person.email)
    return {login: frozenset(found) for login, found in emails.items()}


def evaluate_tickets(
    references: References,
    commits: Sequence[Commit],
    tickets: Mapping[str, Ticket],
    unknown: Iterable[str],
    jira_error: str | None,
    policy: Policy,
    *,
    people: Sequence[tuple[str, GitHubPerson]] = (),
    people_by_key: Mapping[str, Sequence[tuple[str, GitHubPerson]]] | None = None,
    emergency_keys: Collection[str] = (),
    github_merges: Collection[str] = (),
    now: datetime,
) -> tuple[TicketResult, ...]:
    """One result per referenced ticket: approved, by someone who is none of the change's people.

    Tickets in `emergency_keys` (those of an emergency PR) and of an emergency issue type may ship unapproved.
    The authors of `github_merges` (merge commits GitHub made, authored by whoever pressed Merge) merged the
    code but wrote none of it, so they may approve.
    """
    unknown = set(unknown)
    emails = known_emails(commits)
    deadline = now + timedelta(hours=policy.retroactive_deadline_hours)
    results = []
    for key in references.all_keys:
        if jira_error:
            results.append(
                TicketResult(key, None, None, (), None, Outcome.ERROR, (f"{key} could not be read: {jira_error}",))
            )
            continue
        if key in unknown or key not in tickets:
            reason = f"{key} does not exist in Jira, or Countersign's Jira user cannot see it; fix the reference"
            results.append(TicketResult(key, None, None, (), None, Outcome.FAILED, (reason,)))
            continue
        ticket = tickets[key]
        is_emergency = key in emergency_keys or ticket.issue_type in policy.emergency_issue_types
        involved = [*people, *(people_by_key or {}).get(key, ())]
        outcome, reasons, approvers, approved_at = _evaluate_one(
            key, ticket, references, commits, policy, involved, emails, github_merges
        )
        if outcome is not Outcome.PASSED and is_emergency:
            outcome = Outcome.EMERGENCY
            reasons = (
                f"{key} is an emergency change: it may ship now, but needs approval by someone other than "
                f"the authors by {deadline.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({'; '.join(reasons)})",
            )
        results.append(TicketResult(key, ticket.url, ticket.status, approvers, approved_at, outcome, reasons))
    return tuple(results)


def _evaluate_one(
    key: str,
    ticket: Ticket,
    references: References,
    commits: Sequence[Commit],
    policy: Policy,
    people: Sequence[tuple[str, GitHubPerson]],
    emails: Mapping[str, frozenset[str]],
    github_merges: Collection[str] = (),
) -> tuple[Outcome, tuple[str, ...], tuple[str, ...], datetime | None]:
    result = evaluate_ticket_approval(ticket, policy)
    if result.approval is None:
        return Outcome.FAILED, (result.problem or f"{key} is not approved",), (), None
    approval = result.approval
    involved = list(people)
    for commit in references.commits_referencing(key, commits):
        if commit.sha not in github_merges:
            involved.append((f"the author of {commit.short_sha}", commit.author))
        involved.append((f"the committer of {commit.short_sha}", commit.committer))
    reasons: list[str] = []
    for approver in approval.approvers:
        conflicts, unresolved = check_separation(approver, involved, policy.identities, emails)
        reasons.extend(f"{key}: {c}; ask someone else to approve it" for c in conflicts)
        reasons.extend(f"{key}: {u}" for u in unresolved)
    labels = tuple(a.label() for a in approval.approvers)
    outcome = Outcome.FAILED if reasons else Outcome.PASSED
    return outcome, tuple(reasons), labels, approval.approved_at


def exemption(commit: Commit, policy: Policy) -> str | None:
    """Why a commit needs no ticket, or None. Anyone can put a bot's e-mail on a commit, so the author's login
    alone proves nothing: GitHub must attribute both the author and the committer to exempt accounts (GitHub's
    `web-flow` committing on an exempt bot's behalf counts) and report the signature verified."""
    author, committer = commit.author.login, commit.committer.login
    if not policy.is_exempt(author):
        return None
    if not (policy.is_exempt(committer) or (committer or "").lower() == "web-flow") or not commit.verified:
        return None
    return f"{commit.short_sha} by {author}: author and committer are exempt accounts and its signature is verified"


def not_exempt_because(commit: Commit, policy: Policy) -> str | None:
    """For a commit whose author is an exempt account but that is not exempt: what is missing."""
    if not policy.is_exempt(commit.author.login) or exemption(commit, policy):
        return None
    committer = commit.committer.login
    if not (policy.is_exempt(committer) or (committer or "").lower() == "web-flow"):
        who = committer or commit.committer.email or "an unknown account"
        return f"{commit.short_sha} is by {commit.author.login} but was committed by {who}, not an exempt account"
    return f"{commit.short_sha} is by {commit.author.login} but GitHub did not verify its signature"


def exemption_finding(commits: Sequence[Commit], policy: Policy) -> Finding | None:
    """The commits exempted from traceability, and why (shown on the check, never silently)."""
    reasons = tuple(reason for c in commits if (reason := exemption(c, policy)))
    if not reasons:
        return None
    return Finding("exemption", Outcome.PASSED, f"{len(reasons)} commit(s) need no ticket", reasons)


def uncovered_commits(references: References, commits: Sequence[Commit], policy: Policy) -> tuple[Commit, ...]:
    """Commits that name no ticket and belong to no change that does (exempt commits aside)."""
    if references.change_keys:
        return ()
    return tuple(c for c in commits if not references.commit_keys.get(c.sha) and not exemption(c, policy))


def evaluate_pull_request(facts: PullRequestFacts, policy: Policy) -> Verdict:
    """The merge gate: every commit traceable, every ticket approved by a non-author, review if required."""
    references = collect_references(
        policy, title=facts.title, branch=facts.head_ref, body=facts.body, commits=facts.commits
    )
    # An emergency PR: every ticket it references is an emergency change.
    emergency_keys = references.all_keys if policy.emergency_label in facts.labels else ()
    people = [("the PR author", GitHubPerson(login=facts.author))] if facts.author else []
    tickets = evaluate_tickets(
        references,
        facts.commits,
        facts.tickets,
        facts.unknown_tickets,
        facts.jira_error,
        policy,
        people=people,
        emergency_keys=emergency_keys,
        now=facts.evaluated_at,
    )
    findings: list[Finding] = []
    uncovered = uncovered_commits(references, facts.commits, policy)
    if uncovered:
        findings.append(
            traceability_finding(uncovered, f"put a key such as PAY-123 in {_where_keys_are_read(policy)}", policy)
        )
    exempted = exemption_finding(facts.commits, policy)
    if exempted is not None:
        findings.append(exempted)
    warnings = identity_warnings(policy.identities, jira_cloud=facts.jira_cloud)
    if warnings:  # advice, not a failure: it passes, and the check run's details show it
        findings.append(Finding("identities", Outcome.PASSED, "identities may not match on Jira Cloud", warnings))
    if policy.require_review and facts.number is not None:
        excluded = {facts.author.casefold()} | {
            p.login.casefold() for c in facts.commits for p in (c.author, c.committer) if p.login
        }
        problem = evaluate_review(facts.reviews, facts.head_sha, excluded)
        findings.append(
            Finding("review", Outcome.FAILED if problem else Outcome.PASSED, problem or "approved by a reviewer")
        )
    return make_verdict(tickets, findings, uncovered, len(facts.commits), facts.evaluated_at)


_SOURCE_NAMES = {
    "title": "the PR title",
    "branch": "the branch name",
    "body": "the PR body",
    "commits": "each commit message",
}


def _where_keys_are_read(policy: Policy) -> str:
    """The configured key sources in words: the fix must name only places Countersign reads."""
    names = [_SOURCE_NAMES[source] for source in _SOURCE_NAMES if source in policy.key_sources]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def traceability_finding(uncovered: Sequence[Commit], fix: str, policy: Policy) -> Finding:
    """The failure for commits that no ticket covers, naming up to ten of them, and why a bot's is not exempt."""
    listed = ", ".join(f"{c.short_sha} ({c.headline[:60]})" for c in uncovered[:10])
    more = f" and {len(uncovered) - 10} more" if len(uncovered) > 10 else ""
    why_not_exempt = tuple(reason for c in uncovered[:10] if (reason := not_exempt_because(c, policy)))
    return Finding(
        "traceability",
        Outcome.FAILED,
        f"{len(uncovered)} commit(s) name no Jira ticket",
        (f"commits {listed}{more} name no Jira ticket; {fix}", *why_not_exempt),
    )


def make_verdict(
    tickets: Sequence[TicketResult],
    findings: Sequence[Finding],
    uncovered: Sequence[Commit],
    commit_count: int,
    now: datetime,
) -> Verdict:
    outcomes = [t.outcome for t in tickets] + [f.outcome for f in findings] + [Outcome.PASSED]
    outcome = max(outcomes)
    verdict = Verdict(outcome, "", tuple(tickets), tuple(findings), tuple(uncovered), commit_count, now)
    return Verdict(
        outcome, _title(verdict), verdict.tickets, verdict.findings, verdict.uncovered_commits, commit_count, now
    )


def error_verdict(rule: str, summary: str, reason: str, now: datetime) -> Verdict:
    """A verdict for when the gate could not evaluate (bad config, GitHub unreachable): it blocks."""
    return make_verdict((), (Finding(rule, Outcome.ERROR, summary, (reason,)),), (), 0, now)


def _title(verdict: Verdict) -> str:
    """One line that says what to do next."""
    if verdict.outcome is Outcome.ERROR:
        errors = [f for f in verdict.findings if f.outcome is Outcome.ERROR]
        if errors:
            return f"{errors[0].summary}: {(errors[0].reasons or ('',))[0]}"[:200]
        # Otherwise tickets Jira could not read are the error; each says what went wrong (down, refused
        # credentials) and what to do.
        unread = [t for t in verdict.tickets if t.outcome is Outcome.ERROR]
        more = f" (and {len(unread) - 1} more ticket(s))" if len(unread) > 1 else ""
        return f"{unread[0].reasons[0]}{more}"[:250]
    if verdict.outcome is Outcome.FAILED:
        reasons = [r for r in verdict.reasons() if r]
        first = reasons[0] if reasons else "a rule failed"
        if len(reasons) == 1:
            return first[:200]
        return f"{len(reasons)} problems; first: {first}"[:200]
    if verdict.outcome is Outcome.EMERGENCY:
        pending = [t.key for t in verdict.tickets if t.outcome is Outcome.EMERGENCY]
        return f"Emergency change: get {', '.join(pending)} approved in Jira by someone other than the authors"[:200]
    count = len(verdict.tickets)
    if count == 0:
        return "Nothing to approve: every commit is by an exempt author"
    return f"{count} ticket{'s' if count != 1 else ''} approved by someone other than the authors"
