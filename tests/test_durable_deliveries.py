"""Accepted means answered: deliveries are stored with their payload, and work left by a stopped or dead
process is picked up by the next one, with one check run per head whatever happened."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from conftest import ALICE, completed_check, wait_for
from sqlalchemy import select

from gating.app import create_app
from gating.db import Database
from gating.intake.jobs import InlineProcessor
from gating.models import Delivery as DeliveryRow
from gating.services import Services
from gating.settings import Settings
from jira_client.gateway import JiraGateway
from simulators.github import GitHubSimulator
from simulators.http import serve
from simulators.jira import JiraSimulator


@contextmanager
def countersign(settings: Settings, github: GitHubSimulator, *, working: bool = True) -> Iterator[Services]:
    """One Countersign process over HTTP; `working=False`: it accepts deliveries but runs none (it dies first)."""
    gateway = JiraGateway(settings.jira_url, user=settings.jira_user, token=settings.jira_token, timeout=2.0, retries=1)
    app = (
        create_app(settings, jira=gateway)
        if working
        else create_app(settings, jira=gateway, processor=InlineProcessor())
    )
    server = serve(app)
    github.webhook_url = f"{server.url}/webhooks/github"
    services: Services = app.extensions["countersign"]
    try:
        yield services
    finally:
        services.processor.shutdown()
        server.stop()
        services.db.dispose()


def open_pr(github: GitHubSimulator, repo: str, jira: JiraSimulator) -> str:
    jira.add_ticket("PAY-1", status="In Review")
    jira.transition("PAY-1", "Approved", by="acc-carol")
    branch = f"feature/{uuid.uuid4().hex[:6]}"
    sha = github.add_commit(repo, branch, "PAY-1 refunds", author=ALICE)
    github.open_pull_request(repo, head=branch, title="PAY-1: refunds", author="alice")
    return sha


def test_a_delivery_accepted_by_a_process_that_stops_is_answered_by_the_next(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str
) -> None:
    Database(settings.database_url).upgrade()
    with countersign(settings, github, working=False) as first:
        sha = open_pr(github, repo, jira)
        (delivery,) = [d for d in github.deliveries if d["event"] == "pull_request"]
        assert delivery["status"] == 202
        with first.db.session() as session:
            row = session.scalar(select(DeliveryRow))
            assert row is not None and row.status == "queued"
            assert json.loads(row.payload or "{}")["pull_request"]["head"]["sha"] == sha  # the payload itself
        assert github.check_runs(repo, sha) == []
    # The process is gone before it ran the job; the next one to start answers the PR.
    with countersign(settings, github) as second:
        check = completed_check(github, repo, sha)
        assert check["conclusion"] == "success"
        wait_for(second.processor.idle, message="the worker to finish")
        assert len(github.check_runs(repo, sha)) == 1
        assert second.deliveries.status(f"github:{delivery['delivery_id']}") == "completed"


def test_work_a_dead_worker_held_is_taken_over_when_its_lease_runs_out(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str
) -> None:
    Database(settings.database_url).upgrade()
    with countersign(settings, github, working=False) as first:
        sha = open_pr(github, repo, jira)
        # A worker claims it and dies at once: it never renews its lease.
        held = first.deliveries.claim("merge", lease=timedelta(0))
        assert held is not None and first.deliveries.status(held.id) == "processing"
    with countersign(settings, github) as second:
        assert completed_check(github, repo, sha)["conclusion"] == "success"
        wait_for(second.processor.idle, message="the worker to finish")
        assert second.deliveries.status(held.id) == "completed"
        assert len(github.check_runs(repo, sha)) == 1


def test_a_manual_redelivery_of_a_delivery_whose_worker_died_is_honoured(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str
) -> None:
    Database(settings.database_url).upgrade()
    with countersign(settings, github, working=False) as services:
        sha = open_pr(github, repo, jira)
        (delivery,) = [d for d in github.deliveries if d["event"] == "pull_request"]
        assert services.deliveries.claim("merge", lease=timedelta(0)) is not None  # its worker died
        again = github.deliver("pull_request", delivery["payload"], delivery_id=delivery["delivery_id"])
        assert again.status_code == 202 and again.json()["status"] == "accepted"
        # While a live worker holds it, a redelivery is a duplicate.
        assert services.deliveries.claim("merge") is not None
        third = github.deliver("pull_request", delivery["payload"], delivery_id=delivery["delivery_id"])
        assert third.json()["status"] == "duplicate"
    assert github.check_runs(repo, sha) == []
