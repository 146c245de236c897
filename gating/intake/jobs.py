"""The processing seam: run an accepted delivery's handlers after the webhook was answered.

Handlers sit behind `Processor`, so a job queue can replace the in-process thread pool without
touching them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from gating.intake.deliveries import Delivery
from gating.intake.payloads import NotActionable

if TYPE_CHECKING:
    from gating.services import Services

log = logging.getLogger(__name__)


def run_delivery(services: Services, delivery: Delivery) -> None:
    """Run the handlers; a failure is recorded so that a redelivery runs them again."""
    try:
        services.router.dispatch(delivery, services)
    except NotActionable as exc:
        log.info("webhook.not_actionable", extra={"delivery": delivery.id, "event": delivery.event, "reason": str(exc)})
        services.deliveries.finish(delivery.id)
    except Exception as exc:  # one catch-all per job: the worker must survive any handler bug
        log.exception("webhook.failed", extra={"delivery": delivery.id, "event": delivery.event})
        services.deliveries.fail(delivery.id, f"{type(exc).__name__}: {exc}")
    else:
        services.deliveries.finish(delivery.id)


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
