"""Verdicts as people read them: the check run's title, summary and details; the deployment answer's comment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gating.policy.evidence import deployment_state
from gating.policy.verdict import Outcome, TicketResult, Verdict

# GitHub rejects a check run whose summary or text exceeds 65,535 characters.
OUTPUT_LIMIT = 65_535
COMMENT_LIMIT = 1024  # GitHub's limit on a deployment protection rule comment
_ICONS = {Outcome.PASSED: "✅", Outcome.EMERGENCY: "🚨", Outcome.FAILED: "❌", Outcome.ERROR: "⚠️"}


@dataclass(frozen=True)
class CheckRunOutput:
    conclusion: str  # success | failure
    title: str
    summary: str
    text: str


def conclusion_for(outcome: Outcome) -> str:
    """Only a passing or emergency verdict is success; errors block like failures."""
    return "failure" if outcome.blocks else "success"


def cell(value: object) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no HTML."""
    text = "" if value is None else str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def when(moment: datetime | None) -> str:
    """A time as the tables print it; converted, so the "UTC" label is true whatever zone it came in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _ticket_row(ticket: TicketResult) -> str:
    key = f"[{ticket.key}]({ticket.url})" if ticket.url else ticket.key
    verdict = f"{_ICONS[ticket.outcome]} {ticket.outcome.label}"
    return (
        "| "
        + " | ".join(
            [
                key,
                cell(ticket.status or "—"),
                cell(", ".join(ticket.approvers) or "—"),
                cell(when(ticket.approved_at) or "—"),
                verdict,
                cell("; ".join(ticket.reasons)),
            ]
        )
        + " |"
    )


def render_check_run(verdict: Verdict) -> CheckRunOutput:
    header = (
        f"**{_ICONS[verdict.outcome]} {verdict.outcome.label.capitalize()}** · "
        f"{len(verdict.tickets)} ticket(s) · {verdict.commit_count} commit(s) · evaluated {when(verdict.evaluated_at)}"
    )
    sections = [header, ""]
    if verdict.tickets:
        sections += [
            "| Ticket | Status | Approver | Approved at | Verdict | Reason |",
            "|---|---|---|---|---|---|",
        ]
        footer = ["", "_Approval is read from Jira at evaluation time; the check re-runs when a ticket changes._"]
        rows = [_ticket_row(t) for t in verdict.tickets]
        used = len("\n".join(sections + footer)) + 200
        kept = 0
        for row in rows:
            if used + len(row) + 1 > OUTPUT_LIMIT:
                break
            used += len(row) + 1
            kept += 1
        sections += rows[:kept]
        if kept < len(rows):
            sections.append(f"| … | | | | | {len(rows) - kept} more ticket(s) not shown: the summary is full |")
        sections += footer
    problems = [f for f in verdict.findings if f.outcome is not Outcome.PASSED]
    if problems:
        sections += ["", "### Other rules"]
        for finding in problems:
            for reason in finding.reasons or (finding.summary,):
                sections.append(f"- {_ICONS[finding.outcome]} **{cell(finding.rule)}**: {cell(reason)}")
    summary = _cap("\n".join(sections))
    sections_of_details: list[list[str]] = []
    advice = [r for f in verdict.findings if f.rule == "identities" for r in f.reasons]
    if advice:  # passing, but worth acting on: e.g. e-mails in `identities` on Jira Cloud
        sections_of_details.append(["### Warnings", "", *(f"- {cell(reason)}" for reason in advice)])
    if verdict.uncovered_commits:
        listed = [
            f"- `{c.short_sha}` {cell(c.headline[:100])} — {cell(c.author.label())}" for c in verdict.uncovered_commits
        ]
        sections_of_details.append(["### Commits with no Jira ticket", "", *listed])
    exempted = [reason for f in verdict.findings if f.rule == "exemption" for reason in f.reasons]
    if exempted:
        sections_of_details.append(["### Commits that need no ticket", "", *(f"- {cell(r)}" for r in exempted)])
    details = [line for i, part in enumerate(sections_of_details) for line in ([""] if i else []) + part]
    return CheckRunOutput(conclusion_for(verdict.outcome), verdict.title[:250], summary, _cap("\n".join(details)))


def _cap(text: str) -> str:
    if len(text) <= OUTPUT_LIMIT:
        return text
    note = "\n\n… truncated to GitHub's size limit."
    return text[: OUTPUT_LIMIT - len(note)] + note


def render_deployment_comment(environment: str, sha: str, verdict: Verdict, dossier_url: str, entry_id: int) -> str:
    """A few lines for the release manager: the decision, each failing ticket and rule, the dossier link."""
    approved = deployment_state(verdict) == "approved"
    what = f"of {sha[:7]}" if sha else "(the commit to deploy could not be determined)"
    head = f"Countersign {'approved' if approved else 'rejected'} this deployment to {environment} {what}"
    if verdict.outcome is Outcome.EMERGENCY:
        head += " as an emergency change (approval is due after the fact)"
    reasons = verdict.reasons()
    lines = [head + "."]
    lines += [f"- {reason}" for reason in reasons[:8]]
    if len(reasons) > 8:
        lines.append(f"- and {len(reasons) - 8} more")
    link = f"Dossier: {dossier_url} (ledger entry {entry_id})"
    body = "\n".join(lines)
    if len(body) + len(link) + 1 > COMMENT_LIMIT:
        body = body[: COMMENT_LIMIT - len(link) - 3] + "…"
    return f"{body}\n{link}"
