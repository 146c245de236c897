"""The PostgreSQL job queue (procrastinate): one job per stored delivery, deferred in the transaction that stores it.

The deliveries row stays the record that the gates, `/readyz` and the operators read (queued → processing →
completed | failed); the procrastinate job carries only the delivery's id and decides when and where it runs:
its queue, its lock, its retries, and the recovery of the jobs of a worker that died.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gating.db import Database
from gating.intake.deliveries import QUEUES, Delivery, DeliveryStore
from gating.intake.jobs import Stoppable, delivery_context, run_delivery, with_heartbeat
from gating.logs import bound
from gating.models import Delivery as DeliveryRow

if TYPE_CHECKING:
    from procrastinate import App, JobContext
    from procrastinate.worker import Worker

    from gating.services import Services

log = logging.getLogger(__name__)
# procrastinate's INFO lines say what Countersign's own job.* lines say, and their `action` field would take the
# place of the delivery's action in the lines' context: only its warnings and errors are kept.
logging.getLogger("procrastinate").setLevel(logging.WARNING)

TASK = "countersign.run_delivery"


def uses_job_queue(database_url: str) -> bool:
    """procrastinate needs PostgreSQL; on SQLite the deliveries table is the queue (DatabaseWorker)."""
    return make_url(database_url).get_backend_name() == "postgresql"


def lock_for(event: str, payload: dict[str, Any], source: str = "github") -> str | None:
    """What jobs must not run side by side: one PR head's evaluations, one deployment request's decision.

    In order and one at a time, a later event for the same head or request waits for the one before it
    instead of racing it for the check run or the decision. Events with no such subject (Jira's) get none.
    """
    context = delivery_context(Delivery("", source, event, None, payload, datetime.min))
    repository = context.get("repository")
    if event == "deployment_protection_rule":
        if repository is None or context.get("run_id") is None:
            return None
        return f"deploy:{repository}:{context['run_id']}:{context.get('environment', '')}"
    if source == "github" and repository is not None and context.get("sha") is not None:
        return f"merge:{repository}@{context['sha']}"
    return None


def _libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL (`postgresql+psycopg://…`) as libpq reads it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class JobQueue:
    """The procrastinate app: defers a delivery's job in the caller's transaction, and runs the task
    `register`ed (on a QueueWorker), retrying a failed run with exponential backoff."""

    def __init__(self, database_url: str, *, attempts: int, backoff: int, concurrency: int = 4) -> None:
        from procrastinate import App, PsycopgConnector, RetryStrategy, SyncPsycopgConnector

        # The worker's own connections (the jobs' queries use the app's SQLAlchemy pool): each queue's worker
        # keeps one to LISTEN on, and fetches, finishes and sends heartbeats for up to `concurrency` jobs.
        connector = PsycopgConnector(conninfo=_libpq_url(database_url), min_size=2, max_size=2 * concurrency + 4)
        self.app: App = App(connector=connector)
        # Deferring always runs on the caller's own connection (its transaction stores the delivery), so
        # this connector is never opened; it is apart from the worker's, whose async pool, once open,
        # would take over any synchronous call.
        self._deferrer = App(connector=SyncPsycopgConnector())
        # A failed run is retried `attempts - 1` times, waiting backoff ** n seconds after the n-th run.
        self.retry = RetryStrategy(max_attempts=max(attempts - 1, 0), exponential_wait=backoff)

    def register(self, run: Callable[[int, str, int], None]) -> None:
        """The task: `run(job id, delivery id, runs so far)`; its exceptions are the retries' cue."""

        def task(context: JobContext, delivery_id: str) -> None:
            assert context.job.id is not None
            run(context.job.id, delivery_id, context.job.attempts)

        self.app.task(name=TASK, pass_context=True, retry=self.retry)(task)

    def enqueue(self, session: Session, row: DeliveryRow, *, run_in: float | None = None) -> int:
        """Defer the job of `row` inside `session`'s transaction: it exists exactly when the row's change commits."""
        connection = session.connection().connection.driver_connection
        payload = json.loads(row.payload) if row.payload else {}
        deferrer = self._deferrer.configure_task(
            TASK,
            allow_unknown=True,
            queue=row.queue,
            lock=lock_for(row.event, payload, row.source),
            schedule_in={"seconds": run_in} if run_in else None,
            connection=connection,
        )
        job_id = deferrer.defer(delivery_id=row.id)
        log.info("job.enqueued", extra={"job": job_id, "delivery": row.id, "queue": row.queue, "wait": run_in})
        return job_id


class QueueWorker:
    """procrastinate workers in a thread of their own: one per queue, each with `concurrency` jobs at once, and
    the recovery of the jobs whose worker stopped sending heartbeats (it died: SIGKILL, a lost machine).

    Merge checks and deploy decisions have workers of their own, as on SQLite, so deployments waiting on
    Jira never delay a merge check. Tasks are synchronous: they run in the loop's thread pool, sized for them.
    """

    def __init__(self, queue: JobQueue, store: DeliveryStore, *, concurrency: int, lease: timedelta) -> None:
        self._queue = queue
        self._store = store
        self._concurrency = concurrency
        self._lease = lease.total_seconds()
        self._thread = threading.Thread(target=self._main, name="countersign-queue", daemon=True)
        self._started = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[Worker] = []
        self._recovery: asyncio.Task[None] | None = None
        self._companions: list[Stoppable] = []

    def alongside(self, companion: Stoppable) -> QueueWorker:
        self._companions.append(companion)
        return self

    def start(self, timeout: float = 30.0) -> QueueWorker:
        """Start, and return once the workers are registered (so `/readyz` sees them), or raise why not."""
        self._thread.start()
        if not self._started.wait(timeout) or self._failed is not None:
            raise RuntimeError(f"the job queue's worker did not start: {self._failed!r}")
        return self

    def notify(self, queue: str) -> None:
        """Nothing to do: the job's insertion wakes the workers (LISTEN/NOTIFY), wherever they run."""

    def idle(self) -> bool:
        return self._store.unfinished() == 0

    def alive(self) -> bool:
        return self._thread.is_alive() and self._started.is_set()

    def shutdown(self) -> None:
        """Let running jobs finish (30 s at most); what is not started stays queued for the next worker."""
        for companion in self._companions:
            companion.shutdown()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            for worker in self._workers:
                loop.call_soon_threadsafe(worker.stop)
            if self._recovery is not None:
                loop.call_soon_threadsafe(self._recovery.cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        # Every running job holds a thread: enough for both queues' jobs and procrastinate's own calls.
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=2 * self._concurrency + 4, thread_name_prefix="countersign-job")
        )
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # the thread's last word: /readyz reports the worker stopped
            self._failed = exc
            log.exception("worker.stopped")
        finally:
            self._started.set()
            loop.close()

    async def _serve(self) -> None:
        from procrastinate.worker import Worker

        async with self._queue.app.open_async():
            self._workers = [
                Worker(
                    self._queue.app,
                    queues=[queue],
                    name=f"countersign-{queue}",
                    concurrency=self._concurrency,
                    install_signal_handlers=False,
                    # A worker is presumed dead, and its jobs are retried, after a lease without heartbeat.
                    update_heartbeat_interval=self._lease / 3,
                    stalled_worker_timeout=self._lease,
                    shutdown_graceful_timeout=30,
                    # The deliveries row is the record; a finished job has nothing more to tell.
                    delete_jobs="successful",
                )
                for queue in QUEUES
            ]
            runs = [asyncio.create_task(worker.run()) for worker in self._workers]  # type: ignore[no-untyped-call]
            while any(worker.worker_id is None for worker in self._workers):
                if any(run.done() for run in runs):
                    break
                await asyncio.sleep(0.05)
            self._recovery = asyncio.create_task(self._recover_stalled_jobs())
            self._started.set()
            results = await asyncio.gather(*runs, return_exceptions=True)
            self._recovery.cancel()
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    raise result

    async def _recover_stalled_jobs(self) -> None:
        """Every lease, put back the jobs held by workers that stopped sending heartbeats (they died).

        Each worker process does it: retrying a job is a compare-and-set on its status in the database, so
        two processes recovering the same job put it back once.
        """
        manager = self._queue.app.job_manager
        while True:
            try:
                for job in await manager.get_stalled_jobs(seconds_since_heartbeat=self._lease):
                    try:
                        await manager.retry_job(job)
                    except Exception:  # another process put it back first
                        continue
                    log.warning("job.recovered", extra={"job": job.id, "queue": job.queue})
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is briefly unavailable: try again next time
                log.exception("job.recovery_failed")
            await asyncio.sleep(self._lease)


def worker_seen(db: Database, within: timedelta) -> bool:
    """A procrastinate worker sent a heartbeat within `within`, in any process."""
    with db.session() as session:
        count = session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_workers "
                "WHERE last_heartbeat > now() - make_interval(secs => :seconds)"
            ),
            {"seconds": within.total_seconds()},
        )
    return bool(count)


def queue_figures(db: Database, now: datetime) -> dict[str, tuple[int, float]]:
    """Per queue: jobs waiting or running, and the age of the oldest one's delivery (seconds)."""
    with db.session() as session:
        rows = session.execute(
            text(
                "SELECT j.queue_name, count(*), min(d.received_at) FROM procrastinate_jobs j "
                "LEFT JOIN deliveries d ON d.id = j.args->>'delivery_id' "
                "WHERE j.status IN ('todo', 'doing') GROUP BY j.queue_name"
            )
        ).all()
    figures = {}
    for queue, count, first in rows:
        age = (now - first).total_seconds() if first is not None else 0.0
        figures[str(queue)] = (int(count), max(age, 0.0))
    return figures


def run_job(services: Services, job_id: int, delivery_id: str, runs_before: int) -> None:
    """The task: take the delivery the job names and run its handlers, its lease renewed meanwhile."""
    # Every line of the job names its procrastinate job beside the delivery (run_delivery adds the rest).
    with bound(job=job_id, delivery=delivery_id):
        store = services.deliveries
        lease = timedelta(seconds=services.settings.job_lease_seconds)
        taken = store.take(delivery_id, lease)
        if taken is None:
            log.info("job.nothing_to_do")  # an earlier job of the same delivery finished it
            return
        if isinstance(taken, float):
            # A live worker runs it (a redelivery's job, or a job recovered too early): look again once its
            # lease would have run out, in case that worker dies before finishing.
            log.info("job.held_elsewhere", extra={"wait": taken})
            store.enqueue_again(delivery_id, taken)
            return
        delivery = dataclasses.replace(taken, attempts=runs_before + 1)
        with_heartbeat(store, delivery_id, lease, lambda: run_delivery(services, delivery, retried_by_queue=True))
