"""The optional rule: an approving review by someone other than the authors, on the current head."""

from __future__ import annotations

from collections.abc import Iterable

from gating.policy.facts import Review


def evaluate_review(reviews: Iterable[Review], head_sha: str, excluded: set[str]) -> str | None:
    """None when a fresh approving review by a non-author exists; otherwise the problem, with its fix."""
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.state in ("COMMENTED", "PENDING"):
            continue  # a comment neither grants nor withdraws approval
        latest[review.login.casefold()] = review
    approvals = [r for r in latest.values() if r.state == "APPROVED"]
    independent = [r for r in approvals if r.login.casefold() not in excluded]
    fresh = [r for r in independent if r.commit_id == head_sha]
    if fresh:
        return None
    if independent:
        stale = ", ".join(f"{r.login} (on {(r.commit_id or '?')[:7]})" for r in independent)
        return f"approving reviews by {stale} predate the latest push {head_sha[:7]}; ask for a new review"
    if approvals:
        return "the only approving reviews are by authors or committers of this PR; ask someone else to review it"
    return "no approving review yet; ask someone who did not write this code to review it"
