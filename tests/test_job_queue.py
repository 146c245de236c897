"""The job queue: a job per stored delivery, committed with it; retries with backoff; deployments that wait on an
outage as jobs put back for later, holding no worker thread; on PostgreSQL, procrastinate's queue seen by /readyz
and /metrics."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from conftest import ALICE, LiveApp, completed_check, wait_for
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session
from test_deploy_gate_e2e import answers, approved, deploy, setup_release
from test_durable_deliveries import countersign

from gating.db import Database
from gating.intake.deliveries import Delivery, DeliveryStore
from gating.intake.queue import JobQueue, lock_for
from gating.models import Delivery as DeliveryRow
from gating.settings import Settings
from simulators.github import GitHubSimulator

on_postgresql = pytest.mark.skipif(
    os.environ.get("COUNTERSIGN_TEST_DB") != "postgresql",
    reason="procrastinate runs on PostgreSQL: COUNTERSIGN_TEST_DB=postgresql TEST_DATABASE_URL=…",
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One worker thread (one job at a time) per queue: what waits must not hold it."""
    return dataclasses.replace(settings, workers=1)


def jobs(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT queue_name, lock, status, args FROM procrastinate_jobs ORDER BY id")
            ).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


# ---------------------------------------------------------------- what runs one at a time


def test_a_pull_requests_events_are_locked_by_head_and_a_deployment_request_by_run_and_environment() -> None:
    pull = {"repository": {"full_name": "acme/pay"}, "pull_request": {"number": 7, "head": {"sha": "abc123"}}}
    assert lock_for("pull_request", pull) == "merge:acme/pay@abc123"
    assert lock_for(
        "check_suite", {"repository": {"full_name": "acme/pay"}, "check_suite": {"head_sha": "abc123"}}
    ) == ("merge:acme/pay@abc123")
    request = {
        "repository": {"full_name": "acme/pay"},
        "environment": "production",
        "deployment_callback_url": "https://api.github.com/repos/acme/pay/actions/runs/42/deployment_protection_rule",
    }
    assert lock_for("deployment_protection_rule", request) == "deploy:acme/pay:42:production"
    assert lock_for("jira:issue_updated", {"issue": {"key": "PAY-1"}}, source="jira") is None
    assert lock_for("pull_request", {"repository": {"full_name": "acme/pay"}}) is None  # no head: no natural key


# ---------------------------------------------------------------- retries


def test_a_run_that_fails_once_is_retried_and_its_check_completes(live_app: LiveApp, repo: str) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="acc-carol")
    live_app.github.faults.answer("/compare/", 200, body='{"commits": [{"sha": ', method="GET", times=1)
    sha = live_app.github.add_commit(repo, "feature/pay-1", "PAY-1 refunds", author=ALICE)
    live_app.github.open_pull_request(repo, head="feature/pay-1", title="PAY-1: refunds", author="alice")
    live_app.settle()
    assert completed_check(live_app.github, repo, sha)["conclusion"] == "success"
    with live_app.services.db.session() as session:
        (row,) = session.query(DeliveryRow).filter(DeliveryRow.event == "pull_request").all()
        assert (row.status, row.attempts) == ("completed", 2)


# ---------------------------------------------------------------- deployments waiting on an outage


def test_two_deployments_waiting_on_jira_hold_no_thread_and_are_both_answered_once_it_is_back(
    live_app: LiveApp, repo: str
) -> None:
    live_app.services.settings = dataclasses.replace(live_app.services.settings, deploy_retry_seconds=300)
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    live_app.jira.faults.down = True
    deploy(live_app, repo, sha)
    deploy(live_app, repo, sha)

    def waiting() -> set[int]:
        runs = {a["run_id"] for a in live_app.github.deployment_answers(repo) if a["state"] is None}
        return runs if len(runs) == 2 else set()

    # Both said they are waiting: the one deploy thread was not held by the first while Jira was down.
    wait_for(waiting, timeout=30, message="both deployments waiting on Jira")
    assert not [a for a in live_app.github.deployment_answers(repo) if a["state"]]
    live_app.jira.faults.down = False

    found = answers(live_app, repo, 2)
    live_app.settle(timeout=30)
    assert sorted(a["state"] for a in found) == ["approved", "approved"]
    decided = [a for a in live_app.github.deployment_answers(repo) if a["state"]]
    assert len(decided) == 2 and len({a["run_id"] for a in decided}) == 2  # one answer per request


def test_a_deployment_waiting_past_the_deadline_is_rejected_once_with_the_reason(live_app: LiveApp, repo: str) -> None:
    approved(live_app, "PAY-1")
    sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    live_app.jira.faults.down = True
    deploy(live_app, repo, sha)
    (answer,) = answers(live_app, repo)
    live_app.settle()
    assert answer["state"] == "rejected"
    assert "Jira could not be read" in answer["comment"]
    progress = [a for a in live_app.github.deployment_answers(repo) if a["state"] is None]
    assert progress, "it said it was waiting before it gave up"
    assert len([a for a in live_app.github.deployment_answers(repo) if a["state"]]) == 1
    with live_app.services.db.session() as session:
        (row,) = session.query(DeliveryRow).filter(DeliveryRow.event == "deployment_protection_rule").all()
        assert row.status == "completed"


# ---------------------------------------------------------------- procrastinate on PostgreSQL


class Failing:
    """Defers the job as asked, then fails the transaction, as a crash or a database error after it would."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def enqueue(self, session: Session, row: DeliveryRow, *, run_in: float | None = None) -> int:
        self.queue.enqueue(session, row, run_in=run_in)
        raise RuntimeError("the transaction fails after the job was deferred")


@on_postgresql
def test_a_delivery_and_its_job_commit_together_or_not_at_all(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    queue = JobQueue(database_url, attempts=3, backoff=2)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    payload = {"repository": {"full_name": "acme/pay"}, "pull_request": {"head": {"sha": "abc123"}}}

    with pytest.raises(RuntimeError):
        DeliveryStore(db, lambda: now, Failing(queue)).accept(
            Delivery("github:lost", "github", "pull_request", "opened", payload, now), "digest"
        )
    assert jobs(database_url) == []
    with db.session() as session:
        assert session.get(DeliveryRow, "github:lost") is None

    store = DeliveryStore(db, lambda: now, queue)
    assert store.accept(Delivery("github:kept", "github", "pull_request", "opened", payload, now), "digest")
    assert not store.accept(Delivery("github:kept", "github", "pull_request", "opened", payload, now), "digest")
    assert jobs(database_url) == [
        {
            "queue_name": "merge",
            "lock": "merge:acme/pay@abc123",
            "status": "todo",
            "args": {"delivery_id": "github:kept"},
        }
    ]
    db.dispose()


@on_postgresql
def test_with_no_worker_anywhere_readiness_says_so_and_the_metrics_count_the_waiting_job(
    settings: Settings, github: GitHubSimulator, jira: Any, repo: str
) -> None:
    from test_metrics import value

    from gating.app import start_worker

    Database(settings.database_url).upgrade()
    web_only = dataclasses.replace(settings, embedded_worker=False)
    with countersign(web_only, github, working=False) as services:
        url = github.webhook_url.removesuffix("/webhooks/github")  # type: ignore[union-attr]
        response = requests.get(f"{url}/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json()["worker"].startswith("none seen in the last 60 s")

        jira.add_ticket("PAY-1", status="In Review")
        github.add_commit(repo, "feature/x", "PAY-1 refunds", author=ALICE)
        github.open_pull_request(repo, head="feature/x", title="PAY-1: refunds", author="alice")
        from test_metrics import scrape

        scraped = scrape(type("App", (), {"url": url})())  # type: ignore[arg-type]
        assert value(scraped, "countersign_queue_depth", queue="merge") == 1
        assert value(scraped, "countersign_queue_oldest_age_seconds", queue="merge") >= 0

        worker = start_worker(services)  # a worker starts, as `countersign worker` would, elsewhere
        try:
            assert requests.get(f"{url}/readyz", timeout=10).json()["worker"] == "ok"
            sha = github.pull_request(repo, 1)["head"]["sha"]
            completed_check(github, repo, sha)
            wait_for(lambda: not jobs(settings.database_url), message="the finished job to be removed")
        finally:
            worker.shutdown()


@on_postgresql
def test_the_migration_adds_procrastinates_schema_and_the_downgrade_removes_it(database_url: str) -> None:
    from alembic import command

    from gating.db import _alembic_config

    Database(database_url).upgrade()
    engine = create_engine(database_url)

    def tables() -> set[str]:
        return {t for t in inspect(engine).get_table_names() if t.startswith("procrastinate_")}

    assert tables() == {
        "procrastinate_jobs",
        "procrastinate_workers",
        "procrastinate_events",
        "procrastinate_periodic_defers",
    }
    with engine.begin() as connection:
        config = _alembic_config(database_url)
        config.attributes["connection"] = connection
        command.downgrade(config, "0011")  # the revision before the job queue's
    assert tables() == set()
    with engine.connect() as connection:
        functions = connection.execute(text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%'"))
        assert functions.scalar() == 0
    Database(database_url).upgrade()  # and back again, from nothing left over
    assert "procrastinate_jobs" in tables()
    engine.dispose()
