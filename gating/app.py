"""create_app(): the Flask application with its services, blueprints and CLI."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import RequestEntityTooLarge

from gating import metrics
from gating.console import api, pages
from gating.console.signin import init_signin
from gating.db import Database
from gating.gates import deploy, merge, tickets
from gating.gates.emergencies import recheck_emergencies
from gating.github_api import GitHubApp
from gating.github_api.limits import GitHubLimits
from gating.installation_tokens import SqlTokenStore
from gating.intake import health, webhooks
from gating.intake.deliveries import DeliveryStore
from gating.intake.jobs import DatabaseWorker, InlineProcessor, run_delivery
from gating.intake.periodic import PeriodicJob, Scheduler
from gating.intake.queue import JobQueue, QueueWorker, run_job, uses_job_queue
from gating.intake.recovery import recover_missed_deliveries
from gating.intake.routing import EventRouter
from gating.ledger import Ledger, load_signing_key
from gating.ledger.checkpoint_files import write_periodic_checkpoint
from gating.ledger.verification import verify_cached, verify_in_full
from gating.logs import configure_from_settings
from gating.services import Services, utcnow
from gating.settings import Settings, instance_path
from jira_client.gateway import JiraGateway, observe_requests

# One router per feature, composed here: every event Countersign acts on is registered below.
ROUTER = EventRouter(merge.router, deploy.router, tickets.router)


def build_services(settings: Settings, **overrides: Any) -> Services:
    observe_requests(metrics.jira_request)  # Jira's requests and errors counted where they are made
    db = overrides.pop("db", None) or Database(settings.database_url)
    clock = overrides.pop("clock", utcnow)
    # On PostgreSQL each stored delivery gets a procrastinate job, deferred with it; SQLite needs none.
    jobs = (
        JobQueue(
            settings.database_url,
            attempts=settings.job_attempts,
            backoff=settings.job_retry_backoff,
            concurrency=settings.workers,
        )
        if uses_job_queue(settings.database_url)
        else None
    )
    services = Services(
        settings=settings,
        db=db,
        github=overrides.pop("github", None)
        or GitHubApp(
            settings.github_app_id,
            settings.github_private_key,
            settings.github_api_url,
            timeout=settings.github_timeout,
            retry_seconds=settings.github_retry_seconds,
            limits=GitHubLimits(
                max_in_flight=settings.github_max_in_flight, writes_per_minute=settings.github_writes_per_minute
            ),
            # Every web and worker process on this database shares one token per installation.
            tokens=SqlTokenStore(db, settings.github_private_key, clock),
        ),
        jira=overrides.pop("jira", None)
        or JiraGateway(
            settings.jira_url,
            user=settings.jira_user,
            token=settings.jira_token,
            timeout=settings.jira_timeout,
            cache_ttl=settings.jira_cache_seconds,
        ),
        deliveries=DeliveryStore(db, clock, jobs),
        processor=overrides.pop("processor", None) or InlineProcessor(),
        router=ROUTER,
        ledger=overrides.pop("ledger", None)
        or Ledger(db, load_signing_key(settings.signing_key_path) if settings.signing_key_path else None, clock=clock),
        clock=clock,
    )
    if overrides:
        raise TypeError(f"unknown overrides: {sorted(overrides)}")
    if jobs is not None:
        jobs.register(partial(run_job, services))
    return services


def periodic_jobs(services: Services) -> list[PeriodicJob]:
    """What runs on its own, once per period across processes (and once at start)."""
    return [
        PeriodicJob(
            "recover_deliveries", timedelta(minutes=5), partial(recover_missed_deliveries, services), at_start=True
        ),
        PeriodicJob("recheck_emergencies", timedelta(hours=1), partial(recheck_emergencies, services)),
        *checkpoint_jobs(services),
        # Views verify only what was appended since the last verification; this recomputes every entry once a day,
        # which is what finds an entry edited in place inside the range views no longer re-read.
        PeriodicJob("verify_ledger", timedelta(days=1), partial(verify_in_full, services.ledger)),
        # Dossier views verify at most COUNTERSIGN_VIEW_VERIFY_ENTRIES new entries themselves; this walks the rest
        # (the first verification of a large chain, a long run of appends without views), so no view waits for it.
        PeriodicJob("extend_verification", timedelta(minutes=1), partial(verify_cached, services.ledger)),
    ]


def checkpoint_jobs(services: Services) -> list[PeriodicJob]:
    """With COUNTERSIGN_CHECKPOINT_DIR, a signed checkpoint written there every COUNTERSIGN_CHECKPOINT_MINUTES."""
    folder = services.settings.checkpoint_dir
    if not folder:
        return []
    period = timedelta(minutes=services.settings.checkpoint_minutes)
    return [PeriodicJob("write_checkpoint", period, partial(write_periodic_checkpoint, services.ledger, folder))]


def embedded_worker(services: Services, concurrency: int | None = None) -> DatabaseWorker:
    """The worker over the stored deliveries: merge checks and deploy decisions on threads of their own."""
    count = concurrency or services.settings.workers
    threads = {"merge": count, "deploy": count}
    lease = timedelta(seconds=services.settings.job_lease_seconds)
    return DatabaseWorker(partial(run_delivery, services), services.deliveries, threads=threads, lease=lease)


def start_worker(services: Services, concurrency: int | None = None) -> DatabaseWorker | QueueWorker:
    """The worker and the periodic jobs, started: in a web process (the embedded default) or `countersign worker`.

    On PostgreSQL the worker is procrastinate's, on both queues, `concurrency` jobs at once on each; on SQLite
    it is the DatabaseWorker over the deliveries table. The periodic work stays with the Scheduler on both:
    procrastinate's periodic tasks exist only on PostgreSQL, and the Scheduler already runs each job once per
    period across processes (claimed in `periodic_runs`), so one code path serves both databases.
    """
    scheduler = services.scheduler = Scheduler(services.db, services.clock, periodic_jobs(services)).start()
    jobs = services.deliveries.jobs
    lease = timedelta(seconds=services.settings.job_lease_seconds)
    if isinstance(jobs, JobQueue):
        count = concurrency or services.settings.workers
        return QueueWorker(jobs, services.deliveries, concurrency=count, lease=lease).alongside(scheduler).start()
    return embedded_worker(services, concurrency).alongside(scheduler).start()


def create_app(settings: Settings | None = None, *, check_migrations: bool = True, **overrides: Any) -> Flask:
    app = Flask(__name__, instance_path=str(instance_path()), instance_relative_config=True)
    settings = settings or Settings.from_env()
    # First, so that whatever booting logs is already JSON and already free of the secrets.
    configure_from_settings(settings)
    custom_processor = "processor" in overrides
    services = build_services(settings, **overrides)
    if check_migrations:
        services.db.require_migrated()
    if not custom_processor and settings.embedded_worker:
        services.processor = start_worker(services)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["countersign"] = services
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    init_signin(app, settings, csrf_exempt=(webhooks.bp, api.bp))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: Exception) -> Any:
        return jsonify(error=f"body larger than {settings.max_body_bytes} bytes"), 413

    return app
