"""The processing seam: run an accepted delivery's handlers after the webhook was answered.

Handlers sit behind `Processor`, so a job queue can replace the in-process thread pool without
touching them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gating.deferral import Answered, RetryLater
from gating.github_api.errors import InstallationGone
from gating.intake.deliveries import LEASE, Delivery, DeliveryStore, queue_for
from gating.intake.payloads import NotActionable
from gating.logs import bound
from gating.metrics import ANSWERED, DELIVERIES

if TYPE_CHECKING:
    from gating.services import Services

log = logging.getLogger(__name__)


# The workflow run a deployment protection rule asks about, named in its callback URL.
_RUN_IN_CALLBACK = re.compile(r"/actions/runs/(\d+)/")


def run_delivery(services: Services, delivery: Delivery, *, retried_by_queue: bool = False) -> None:
    """Run the handlers; a failure is retried with backoff, and only the last run's failure is recorded as the
    delivery's (a redelivery then runs it anew).

    `delivery.attempts` counts the runs so far, this one included. With `retried_by_queue` (procrastinate), a
    failure that will be retried is raised again for the queue's retry strategy to reschedule the job.
    """
    # Bound here, every line the handlers log names the delivery it serves, without their passing it on.
    with bound(**delivery_context(delivery), attempt=delivery.attempts):
        started = time.perf_counter()
        try:
            services.router.dispatch(delivery, services)
        except (NotActionable, InstallationGone) as exc:
            log.info("webhook.not_actionable", extra={"reason": str(exc), "duration_ms": _elapsed_ms(started)})
            services.deliveries.finish(delivery.id)
            _count(delivery, "not_actionable", services)
        except RetryLater as exc:
            # Not an outcome yet: the delivery is queued again for later, and no thread waits for it.
            log.info(
                "job.deferred", extra={"reason": exc.reason, "wait": exc.seconds, "duration_ms": _elapsed_ms(started)}
            )
            services.deliveries.defer(delivery.id, exc.seconds, exc.reason)
        except Exception as exc:  # one catch-all per job: the worker must survive any handler bug
            error = str(exc) if isinstance(exc, Answered) else f"{type(exc).__name__}: {exc}"
            settings = services.settings
            if delivery.attempts >= settings.job_attempts or isinstance(exc, Answered):
                log.exception("webhook.failed", extra={"duration_ms": _elapsed_ms(started)})
                services.deliveries.fail(delivery.id, error)
                _count(delivery, "failed", services)
                return
            # The same backoff as procrastinate's RetryStrategy(exponential_wait=…): backoff ** runs so far.
            wait = float(settings.job_retry_backoff**delivery.attempts)
            # The traceback is logged once, with the last run's failure (webhook.failed).
            log.warning("job.retrying", extra={"error": error[:500], "wait": wait, "duration_ms": _elapsed_ms(started)})
            services.deliveries.retry(delivery.id, wait, error)
            if retried_by_queue:
                raise
        else:
            services.deliveries.finish(delivery.id)
            log.info("job.completed", extra={"duration_ms": _elapsed_ms(started)})
            _count(delivery, "completed", services)


def with_heartbeat(store: DeliveryStore, delivery_id: str, lease: timedelta, work: Callable[[], None]) -> None:
    """Run `work`, renewing the delivery's lease meanwhile: only a dead worker lets it run out."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(lease.total_seconds() / 3):
            try:
                store.renew(delivery_id, lease)
            except Exception:  # a missed beat only shortens the lease
                log.warning("worker.renew_failed", extra={"delivery": delivery_id})

    heart = threading.Thread(target=beat, name=f"countersign-lease-{delivery_id[-8:]}", daemon=True)
    heart.start()
    try:
        work()
    finally:
        done.set()
        heart.join()


def _count(delivery: Delivery, outcome: str, services: Services) -> None:
    DELIVERIES.labels(delivery.source, delivery.event, outcome).inc()
    waited = (services.clock() - delivery.received_at).total_seconds()
    ANSWERED.labels(queue_for(delivery.event)).observe(max(waited, 0.0))


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


class Stoppable(Protocol):
    def shutdown(self) -> None: ...


class Processor(Protocol):
    """Runs the stored deliveries' jobs; `notify` says one was just queued."""

    def notify(self, queue: str) -> None: ...

    def idle(self) -> bool: ...

    def alive(self) -> bool: ...

    def shutdown(self) -> None: ...


class DatabaseWorker:
    """The embedded worker: threads per queue that claim stored deliveries and run their jobs.

    Because the deliveries table is the queue, work left by a process that stopped or died is picked up
    by the next one that starts (a lease that is no longer renewed runs out), and several processes on
    one database share the work. Merge checks and deploy decisions have threads of their own, so
    deployments waiting on Jira never delay a merge check.
    """

    def __init__(
        self,
        run: Callable[[Delivery], None],
        store: DeliveryStore,
        *,
        threads: dict[str, int],
        poll_seconds: float = 1.0,
        lease: timedelta = LEASE,
    ) -> None:
        self._run = run
        self._store = store
        self._poll = poll_seconds
        self._lease = lease
        self._stopping = threading.Event()
        self._wake = {queue: threading.Event() for queue in threads}
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(queue,), name=f"countersign-{queue}-{n}", daemon=True)
            for queue, count in threads.items()
            for n in range(count)
        ]
        self._companions: list[Stoppable] = []

    def alongside(self, companion: Stoppable) -> DatabaseWorker:
        """Stop `companion` (e.g. the periodic scheduler) when the worker stops."""
        self._companions.append(companion)
        return self

    def start(self) -> DatabaseWorker:
        """Start the threads: at once they pick up whatever a previous process left queued or unfinished."""
        for thread in self._threads:
            thread.start()
        return self

    def notify(self, queue: str) -> None:
        self._wake[queue].set()

    def idle(self) -> bool:
        with self._busy_lock:
            busy = self._busy
        return busy == 0 and self._store.unfinished() == 0

    def alive(self) -> bool:
        """Every thread is running: a worker thread that died would leave its queue unserved."""
        return not self._stopping.is_set() and all(thread.is_alive() for thread in self._threads)

    def shutdown(self) -> None:
        self._stopping.set()
        for companion in self._companions:
            companion.shutdown()
        for event in self._wake.values():
            event.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=60)

    def _loop(self, queue: str) -> None:
        while not self._stopping.is_set():
            try:
                delivery = self._store.claim(queue, self._lease)
            except Exception:  # the database is briefly unavailable: try again later, never die
                log.exception("worker.claim_failed", extra={"queue": queue})
                delivery = None
            if delivery is None:
                self._wake[queue].wait(self._poll)
                self._wake[queue].clear()
                continue
            with self._busy_lock:
                self._busy += 1
            try:
                self._run_with_heartbeat(delivery)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _run_with_heartbeat(self, delivery: Delivery) -> None:
        with_heartbeat(self._store, delivery.id, self._lease, lambda: self._run(delivery))


class InlineProcessor:
    """Runs each queued delivery at once, in the caller's thread (the command line)."""

    def __init__(self, run: Callable[[Delivery], None] | None = None, store: DeliveryStore | None = None) -> None:
        self._run = run
        self._store = store

    def notify(self, queue: str) -> None:
        if self._run is None or self._store is None:
            return
        while (delivery := self._store.claim(queue)) is not None:
            self._run(delivery)

    def idle(self) -> bool:
        return True

    def alive(self) -> bool:
        return True

    def shutdown(self) -> None:
        pass
