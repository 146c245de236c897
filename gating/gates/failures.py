"""What a gate publishes when it could not finish: an error verdict that names the delivery and how to re-run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from gating.github_api import GitHubError
from gating.policy.verdict import Finding, Outcome, Verdict


def delivery_label(delivery_id: str) -> str:
    """The delivery as the GitHub App's "Recent deliveries" page (or Jira's webhook log) names it."""
    if delivery_id.startswith("github:"):
        return f"delivery {delivery_id.removeprefix('github:')}"
    if delivery_id.startswith("jira:"):
        return f"Jira delivery {delivery_id.removeprefix('jira:')}"
    return f"delivery {delivery_id}" if delivery_id else "no delivery"


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in words safe to publish: a status or a kind of error, never a message or a URL."""
    if isinstance(exc, GitHubError):
        if exc.transient:
            return f"{exc.describe()}, and kept failing for longer than Countersign waits"
        return exc.describe()
    if isinstance(exc, SQLAlchemyError):
        return f"Countersign's database failed ({type(exc).__name__})"
    return f"Countersign failed unexpectedly ({type(exc).__name__})"


def internal_error_verdict(delivery_id: str, exc: BaseException, now: datetime) -> Verdict:
    """The merge gate's verdict when evaluating or publishing failed: it blocks, and says how to run it again."""
    label = delivery_label(delivery_id)
    reason = (
        f"{describe_failure(exc)}. Press Re-run on this check to evaluate it again (or redeliver {label} from "
        "the GitHub App's advanced settings); a push to the pull request also runs it."
    )
    title = f"Countersign could not finish this check ({label}): re-run it"
    finding = Finding("internal", Outcome.ERROR, title, (reason,))
    return Verdict(Outcome.ERROR, title, (), (finding,), (), 0, now)


def internal_error_comment(environment: str, delivery_id: str, exc: BaseException) -> str:
    """The deploy gate's rejection when deciding failed: the deployment is refused, never left waiting."""
    return (
        f"Countersign could not decide this deployment to {environment} ({delivery_label(delivery_id)}): "
        f"re-run the deployment job to ask again.\n- {describe_failure(exc)}"
    )
