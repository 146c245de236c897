"""The deploy gate: answer a custom deployment protection rule, after writing the evidence to the ledger."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gating import metrics
from gating.console.index import index_entry
from gating.deferral import Answered, RetryLater
from gating.gates.commit_pulls import CommitPullCache
from gating.gates.emergencies import stored_people
from gating.gates.failures import delivery_label, describe_failure, internal_error_comment
from gating.gates.gather import gather_policy, gather_release_facts, identify_run
from gating.gates.render import COMMENT_LIMIT, render_deployment_comment
from gating.github_api import GitHubError, GitHubNotFound, Installation, writes
from gating.github_api.errors import retrying
from gating.intake.deliveries import Delivery
from gating.intake.payloads import optional, required, timestamp
from gating.intake.routing import EventRouter
from gating.models import DeploymentDecision, Emergency
from gating.policy.config import PolicyError
from gating.policy.deployment import DeploymentRequest, evaluate_deployment
from gating.policy.emergency import involved_people, pending_tickets
from gating.policy.evidence import build_evidence, decision_label, deployment_state, error_evidence
from gating.policy.pull_request import error_verdict
from gating.policy.verdict import Outcome, Verdict
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()
T = TypeVar("T")

PROGRESS_AFTER_SECONDS = 3.0
_CALLBACK_PATH = re.compile(r"/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")


class TransientError(Exception):
    """Jira or GitHub could not be read: worth waiting for, never a reason to approve."""


class AnswerNotSent(Exception):
    """A recorded decision did not reach GitHub: a redelivery sends that same decision."""


@dataclass(frozen=True)
class ProtectionRequest:
    """A `deployment_protection_rule` request: what is asked, and where and as whom to answer."""

    request: DeploymentRequest
    installation_id: int
    callback_url: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any], received_at: datetime) -> ProtectionRequest:
        """Raises NotActionable when GitHub could not be answered: no repository, installation or environment."""
        callback_url = optional(payload, "deployment_callback_url", str) or ""
        deployment = optional(payload, "deployment", dict) or {}  # null when a workflow job asks
        match = _CALLBACK_PATH.search(urlparse(callback_url).path)
        request = DeploymentRequest(
            repository=required(payload, "repository.full_name", str),
            environment=required(payload, "environment", str),
            deployment_id=optional(deployment, "id", int),
            run_id=int(match.group(3)) if match else 0,
            sha=optional(deployment, "sha", str) or optional(payload, "sha", str),
            ref=optional(deployment, "ref", str) or optional(payload, "ref", str),
            requester=optional(deployment, "creator.login", str) or optional(payload, "sender.login", str) or "",
            requested_at=timestamp(deployment, "created_at") or received_at,
        )
        return cls(request, required(payload, "installation.id", int), callback_url)

    @property
    def repository(self) -> str:
        return self.request.repository

    @property
    def environment(self) -> str:
        return self.request.environment


@router.register("deployment_protection_rule", "requested")
def on_protection_rule(delivery: Delivery, services: Services) -> None:
    """Decide a deployment: evidence to the ledger first, then one answer to GitHub."""
    asked = ProtectionRequest.from_payload(delivery.payload, delivery.received_at)
    if not callback_is_trusted(asked.callback_url, services.settings.github_api_url):
        # PyGithub would send the request to the configured host whatever the URL says: refuse it.
        log.warning("deploy.untrusted_callback", extra={"repository": asked.repository, "url": asked.callback_url})
        return
    decide(services, asked, delivery_id=delivery.id, received_at=delivery.received_at)


def callback_is_trusted(url: str, api_url: str) -> bool:
    """Only a protection-rule callback on the configured GitHub API host, scheme and port is called."""
    target, api = urlparse(url), urlparse(api_url)
    if (target.scheme, target.hostname, target.port) != (api.scheme, api.hostname, api.port):
        return False
    prefix = api.path.rstrip("/")
    return target.path.startswith(prefix + "/") and bool(_CALLBACK_PATH.search(target.path))


def decide(
    services: Services, asked: ProtectionRequest, *, delivery_id: str = "", received_at: datetime | None = None
) -> None:
    """Decide and answer. Whatever fails before a decision is recorded, GitHub gets a rejection that names
    the delivery (a deployment left unanswered waits 30 days); the exception then marks the delivery failed.

    While Jira or GitHub is unavailable the job is put back for later (RetryLater) until
    COUNTERSIGN_DEPLOY_RETRY_SECONDS after `received_at` (when the delivery arrived, whichever run this is).
    """
    known: dict[str, DeploymentRequest] = {"request": asked.request}
    try:
        _decide(services, asked, known, received_at or services.clock())
    except (AnswerNotSent, RetryLater):
        # AnswerNotSent: decided and recorded, a retry or a redelivery sends the recorded answer, never a different one.
        # RetryLater: not decided yet and waiting for Jira or GitHub to come back (or a long rate limit): the job runs
        # again later and decides, or sends the recorded answer.
        raise
    except Exception as exc:
        if _reject_after_failure(services, asked, known["request"], delivery_id, exc):
            raise Answered(f"{type(exc).__name__}: {exc}") from exc  # rejected: a retry would change nothing
        raise


def _reject_after_failure(
    services: Services, asked: ProtectionRequest, request: DeploymentRequest, delivery_id: str, exc: Exception
) -> bool:
    """Reject with an error verdict: recorded in the ledger like any decision when the database allows.
    True when GitHub has the rejection (or an earlier decision); False when it could not be sent."""
    log.warning("deploy.error_answer", extra={"repository": asked.repository, "delivery": delivery_id})
    reason = (
        f"Countersign could not decide this deployment ({delivery_label(delivery_id)}): {describe_failure(exc)}; "
        "re-run the deployment job to ask again"
    )
    verdict = error_verdict("internal", "Countersign could not decide this deployment", reason, services.clock())
    try:
        if _decision(services, request) is None:
            _record_and_answer(services, asked, request, verdict, error_evidence(request, verdict, reason))
        return True
    except AnswerNotSent:
        log.exception("deploy.error_answer_not_sent", extra={"repository": asked.repository})
        return False
    except Exception:
        log.exception("deploy.error_not_recorded", extra={"repository": asked.repository})
    try:
        _send_answer(services, asked, "rejected", internal_error_comment(asked.environment, delivery_id, exc))
    except AnswerNotSent:
        log.exception("deploy.error_answer_not_sent", extra={"repository": asked.repository})
        return False
    return True


def _decide(
    services: Services, asked: ProtectionRequest, known: dict[str, DeploymentRequest], received_at: datetime
) -> None:
    # Which attempt of the workflow run asks: a re-run keeps the run id, and is a new request to answer.
    identified = _with_retries(services, asked, received_at, partial(_identify, request=asked.request))
    if isinstance(identified, _GaveUp):
        _record_and_answer(services, asked, asked.request, *_error(services, asked.request, identified))
        return
    request = known["request"] = identified
    existing = _decision(services, request)
    if existing is not None:
        if existing.callback_sent_at is None:
            # Decided and recorded, but the answer was not sent (crash or GitHub down): send the same one.
            _send_answer(services, asked, existing.state, existing.comment)
            _mark_sent(services, existing.id)
        log.info("deploy.already_decided", extra={"repository": asked.repository, "run_id": asked.request.run_id})
        return
    # A long evaluation (thousands of commits, a slow Jira) tells the release manager it is under way.
    progress = threading.Timer(
        PROGRESS_AFTER_SECONDS,
        _try_progress,
        (services, asked, "Countersign is checking this release's commits, tickets and CI results…"),
    )
    progress.daemon = True
    progress.start()
    try:
        result = _with_retries(services, asked, received_at, partial(_evaluate, services, request=request))
    finally:
        progress.cancel()
    verdict, evidence = _error(services, request, result) if isinstance(result, _GaveUp) else result
    _record_and_answer(services, asked, request, verdict, evidence)


def _error(services: Services, request: DeploymentRequest, gave_up: _GaveUp) -> tuple[Verdict, dict[str, Any]]:
    verdict = error_verdict(gave_up.rule, gave_up.summary, gave_up.reason, services.clock())
    return verdict, error_evidence(request, verdict, gave_up.reason)


def _record_and_answer(
    services: Services, asked: ProtectionRequest, request: DeploymentRequest, verdict: Verdict, evidence: dict[str, Any]
) -> None:
    """The decision and its evidence in one transaction, then one answer to GitHub."""
    state = deployment_state(verdict)
    sha = request.sha or ""
    try:
        with services.db.session() as session:
            entry = services.ledger.append(
                "deployment_decision",
                evidence,
                index={
                    "repository": request.repository,
                    "environment": request.environment,
                    "deployment_id": request.deployment_id,
                    "sha": request.sha,
                    "decision": decision_label(verdict),
                },
                session=session,
            )
            index_entry(session, entry, evidence)  # searchable from the moment the decision is
            dossier_url = f"{services.settings.public_url or ''}/deployments/{entry.id}"
            comment = render_deployment_comment(request.environment, sha, verdict, dossier_url, entry.id)
            row = DeploymentDecision(
                repository=request.repository,
                environment=request.environment,
                run_id=request.run_id,
                run_attempt=request.run_attempt or 0,  # 0: GitHub could not be asked which attempt
                deployment_id=request.deployment_id,
                sha=sha,
                state=state,
                comment=comment,
                callback_url=asked.callback_url,
                ledger_entry_id=entry.id,
                decided_at=services.clock(),
            )
            session.add(row)
            if verdict.outcome is Outcome.EMERGENCY:
                session.add(_emergency_row(services, asked, request, verdict, evidence, entry.id))
            session.flush()
            decision_id = row.id
    except IntegrityError:
        if _decision(services, request) is None:
            raise  # no other worker's decision: a database failure like any other
        log.info("deploy.decided_elsewhere", extra={"repository": request.repository, "run_id": request.run_id})
        return
    # The decision and its evidence are committed: a crash from here on leaves it to be re-sent.
    metrics.verdict_published("deploy", verdict.outcome.label, services.clock())
    _send_answer(services, asked, state, comment)
    _mark_sent(services, decision_id)
    log.info("deploy.decided", extra={"repository": request.repository, "state": state, "entry": entry.id})


def _decision(services: Services, request: DeploymentRequest) -> DeploymentDecision | None:
    with services.db.session() as session:
        return session.scalar(
            select(DeploymentDecision).where(
                DeploymentDecision.repository == request.repository,
                DeploymentDecision.environment == request.environment,
                DeploymentDecision.run_id == request.run_id,
                DeploymentDecision.run_attempt == (request.run_attempt or 0),
            )
        )


def _mark_sent(services: Services, decision_id: int) -> None:
    with services.db.session() as session:
        row = session.get(DeploymentDecision, decision_id)
        if row is not None:
            row.callback_sent_at = services.clock()


def _approved_deployments(services: Services, request: DeploymentRequest) -> tuple[tuple[int | None, str], ...]:
    """(deployment id, SHA) of the deployments Countersign approved to this environment, newest first."""
    with services.db.session() as session:
        rows = session.execute(
            select(DeploymentDecision.deployment_id, DeploymentDecision.sha)
            .where(
                DeploymentDecision.repository == request.repository,
                DeploymentDecision.environment == request.environment,
                DeploymentDecision.state == "approved",
            )
            .order_by(DeploymentDecision.decided_at.desc(), DeploymentDecision.id.desc())
            .limit(100)
        )
        return tuple((row.deployment_id, row.sha) for row in rows)


@dataclass(frozen=True)
class _GaveUp:
    """Why a step could not be done: the rule and summary of the error verdict, and its reason."""

    rule: str
    summary: str
    reason: str


def _with_retries(
    services: Services, asked: ProtectionRequest, received_at: datetime, work: Callable[[Installation], T]
) -> T | _GaveUp:
    """Run `work`; while Jira or GitHub is unavailable, report progress and raise RetryLater: the job is run
    again later, holding no worker meanwhile. Past COUNTERSIGN_DEPLOY_RETRY_SECONDS after the delivery was
    received, give up (an error verdict)."""
    try:
        return services.github.with_installation(asked.installation_id, work)
    except RunNotFound as exc:
        # The workflow run the request names does not exist: waiting will not bring it back.
        return _GaveUp("request", "The deployment names no commit", str(exc))
    except GitHubError as exc:
        reason = exc.describe()
    except TransientError as exc:
        reason = str(exc)
    now = services.clock()
    delay = retry_delay(received_at, now)
    if now + timedelta(seconds=delay) > received_at + timedelta(seconds=services.settings.deploy_retry_seconds):
        return _GaveUp("availability", "Evidence could not be gathered", reason)
    _try_progress(services, asked, f"Countersign is waiting: {reason[:200]}. Retrying in {delay:.0f} s.")
    raise RetryLater(delay, reason)


def retry_delay(received_at: datetime, now: datetime) -> float:
    """How long to wait before the next try: as long as the request has waited already (1 s at least, a minute
    at most), so the waits double as with a counter of tries, and nothing needs to remember one."""
    return min(max((now - received_at).total_seconds(), 1.0), 60.0)


class RunNotFound(Exception):
    """The workflow run a request names is gone."""


def _identify(installation: Installation, *, request: DeploymentRequest) -> DeploymentRequest:
    try:
        return identify_run(installation.repo(request.repository), request)
    except GitHubNotFound as exc:
        raise RunNotFound(
            f"the commit to deploy could not be determined: workflow run {request.run_id} was not found"
        ) from exc


def _evaluate(
    services: Services, installation: Installation, *, request: DeploymentRequest
) -> tuple[Verdict, dict[str, Any]]:
    try:
        policy = gather_policy(installation, request.repository)
    except PolicyError as exc:
        verdict = error_verdict("configuration", f"Fix {exc.source}", str(exc), services.clock())
        return verdict, error_evidence(request, verdict)
    except GitHubError as exc:
        raise TransientError(f"{exc.describe()} reading the policy") from exc
    facts = gather_release_facts(
        installation.repo(request.repository),
        services.jira,
        request,
        policy,
        approved=_approved_deployments(services, request),
        first_limit=services.settings.first_deploy_commit_limit,
        clock=services.clock,
        cache=CommitPullCache(services.db, services.clock),
    )
    if facts.jira_error:
        raise TransientError(f"Jira could not be read: {facts.jira_error}")
    verdict = evaluate_deployment(facts, policy)
    return verdict, build_evidence(facts, verdict, policy)


def _send_answer(services: Services, asked: ProtectionRequest, state: str, comment: str) -> None:
    """Send the recorded decision; while GitHub fails (no answer, 5xx, 429, rate limits), try again until the
    deadline, honouring retry-after. Raises AnswerNotSent."""
    body = {"environment_name": asked.environment, "state": state, "comment": comment}
    attempts = 0

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        try:
            services.github.with_installation(
                asked.installation_id, lambda inst: writes.post_protection_rule_review(inst, asked.callback_url, body)
            )
        except GitHubError as exc:
            if exc.status == 422 and attempts > 1:
                # An earlier attempt reached GitHub even though its answer did not reach us.
                log.info("deploy.answer_already_recorded", extra={"repository": asked.repository})
                return
            raise

    try:
        retrying(attempt, seconds=services.settings.deploy_retry_seconds, what="deployment answer")
    except RetryLater:
        raise  # the recorded decision is sent when the job runs again
    except Exception as exc:
        raise AnswerNotSent(f"the answer to {asked.repository} was not sent: {describe_failure(exc)}") from exc


def _try_progress(services: Services, asked: ProtectionRequest, message: str) -> None:
    body = {"environment_name": asked.environment, "comment": message[:COMMENT_LIMIT]}
    try:
        services.github.with_installation(
            asked.installation_id, lambda inst: writes.post_protection_rule_review(inst, asked.callback_url, body)
        )
    except Exception:  # a progress report is a courtesy; its failure changes nothing
        log.info("deploy.progress_failed", extra={"repository": asked.repository})


def _emergency_row(
    services: Services,
    asked: ProtectionRequest,
    request: DeploymentRequest,
    verdict: Verdict,
    evidence: dict[str, Any],
    entry_id: int,
) -> Emergency:
    now = services.clock()
    deadline = evidence.get("emergency_deadline") or now + timedelta(hours=72)
    return Emergency(
        ledger_entry_id=entry_id,
        repository=request.repository,
        environment=request.environment,
        deployment_id=request.deployment_id,
        installation_id=asked.installation_id,
        sha=request.sha or "",
        tickets=" ".join(pending_tickets(verdict)),
        people=stored_people(involved_people(evidence)),
        deadline=deadline,
        created_at=now,
    )
