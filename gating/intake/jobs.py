"""The processing seam: run an accepted delivery's handlers after the webhook was answered.

Handlers sit behind `Processor`, so a job queue can replace the in-process thread pool without
touching them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from gating.github_api.errors import InstallationGone
from gating.intake.deliveries import Delivery
from gating.intake.payloads import NotActionable
from gating.logs import bound

if TYPE_CHECKING:
    from gating.services import Services

log = logging.getLogger(__name__)


# The workflow run a deployment protection rule asks about, named in its callback URL.
_RUN_IN_CALLBACK = re.compile(r"/actions/runs/(\d+)/")


def run_delivery(services: Services, delivery: Delivery) -> None:
    """Run the handlers; a failure is recorded so that a redelivery runs them again."""
    # Bound here, every line the handlers log names the delivery it serves, without their passing it on.
    with bound(**delivery_context(delivery)):
        started = time.perf_counter()
        try:
            services.router.dispatch(delivery, services)
        except (NotActionable, InstallationGone) as exc:
            log.info("webhook.not_actionable", extra={"reason": str(exc), "duration_ms": _elapsed_ms(started)})
            services.deliveries.finish(delivery.id)
        except Exception as exc:  # one catch-all per job: the worker must survive any handler bug
            log.exception("webhook.failed", extra={"duration_ms": _elapsed_ms(started)})
            services.deliveries.fail(delivery.id, f"{type(exc).__name__}: {exc}")
        else:
            services.deliveries.finish(delivery.id)
            log.info("job.completed", extra={"duration_ms": _elapsed_ms(started)})


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def delivery_context(delivery: Delivery) -> dict[str, Any]:
    """What a log line needs to find the delivery and its subject: ids, repository, PR, deployment, ticket.

    Read defensively: the payload is signed, but its shape depends on the event.
    """
    payload = delivery.payload
    pull = _mapping(payload, "pull_request")
    deployment = _mapping(payload, "deployment")
    callback = payload.get("deployment_callback_url")
    run = _RUN_IN_CALLBACK.search(callback) if isinstance(callback, str) else None
    subject = _mapping(payload, "check_run") or _mapping(payload, "check_suite") or _mapping(payload, "merge_group")
    context = {
        "delivery": delivery.id,
        "delivery_event": delivery.event,
        "action": delivery.action,
        "repository": _scalar(_mapping(payload, "repository").get("full_name")),
        "installation_id": _scalar(_mapping(payload, "installation").get("id")),
        "number": _scalar(pull.get("number")),
        "deployment": _scalar(deployment.get("id")),
        "environment": _scalar(payload.get("environment")) if delivery.source == "github" else None,
        "run_id": int(run.group(1)) if run else None,
        "sha": _scalar(
            _mapping(pull, "head").get("sha")
            or deployment.get("sha")
            or subject.get("head_sha")
            or (payload.get("sha") if delivery.event == "deployment_protection_rule" else None)
        ),
        "ticket": _scalar(_mapping(payload, "issue").get("key")) if delivery.source == "jira" else None,
    }
    return {key: value for key, value in context.items() if value is not None}


def _mapping(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _scalar(value: Any) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


class Processor(Protocol):
    def submit(self, job: Callable[[], None]) -> None: ...

    def shutdown(self) -> None: ...


class ThreadProcessor:
    """Runs jobs on a small in-process thread pool, after the webhook has been answered."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="countersign-job")
        self._pending: set[Future[None]] = set()

    def submit(self, job: Callable[[], None]) -> None:
        future = self._pool.submit(job)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def idle(self) -> bool:
        return not self._pending

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class InlineProcessor:
    """Runs each job at once, in the caller's thread (CLI and some tests)."""

    def submit(self, job: Callable[[], None]) -> None:
        job()

    def shutdown(self) -> None:
        pass
