"""Accepted means answered: deliveries are stored with their payload, and work left by a stopped or dead
process is picked up by the next one, with one check run per head whatever happened."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from conftest import ALICE, LiveApp, completed_check, wait_for
from flask import Flask
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
    # As under gunicorn, the socket listens before the app is built: the sweep at start may have GitHub
    # redeliver at once, and that request waits for the app rather than being refused.
    ready = threading.Event()
    built: dict[str, Flask] = {}

    def when_built(environ: dict[str, Any], start_response: Any) -> Any:
        ready.wait(30)
        return built["app"](environ, start_response)

    server = serve(when_built)
    github.webhook_url = f"{server.url}/webhooks/github"
    app = (
        create_app(settings, jira=gateway)
        if working
        else create_app(settings, jira=gateway, processor=InlineProcessor())
    )
    built["app"] = app
    ready.set()
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


def test_deliveries_github_failed_to_send_while_countersign_was_down_are_redelivered_once(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str
) -> None:
    Database(settings.database_url).upgrade()
    with countersign(settings, github) as up:
        delivered = open_pr(github, repo, jira)
        completed_check(github, repo, delivered)
        wait_for(up.processor.idle, message="the worker to finish")
    # Countersign is down (its address refuses connections): GitHub records the failed attempt, no more.
    branch = f"feature/{uuid.uuid4().hex[:6]}"
    missed = github.add_commit(repo, branch, "PAY-1 more refunds", author=ALICE)
    github.open_pull_request(repo, head=branch, title="PAY-1: more refunds", author="alice")
    failed = [d for d in github.hook_deliveries if d["status"] != "OK"]
    assert [d["status"] for d in failed] == ["failed to connect"]
    with countersign(settings, github):
        # On start it lists the app's deliveries and asks GitHub to redeliver the one it never got.
        assert completed_check(github, repo, missed)["conclusion"] == "success"
        assert github.redeliveries_requested == [failed[0]["id"]]
        redelivered = [d for d in github.hook_deliveries if d["redelivery"]]
        assert [(d["guid"], d["status"]) for d in redelivered] == [(failed[0]["guid"], "OK")]


def test_the_recovery_can_be_run_by_hand(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from gating.cli import main
    from gating.demo import app_environment

    Database(settings.database_url).upgrade()
    github.webhook_url = "http://127.0.0.1:9/webhooks/github"  # nothing listens: every attempt fails
    open_pr(github, repo, jira)
    (failed,) = github.hook_deliveries
    env = app_environment(github, jira, settings.github_private_key, "s", "s", settings.database_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["deliveries", "recover"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("1 delivery(ies) GitHub failed to send asked for again")
    assert github.redeliveries_requested == [failed["id"]]


def test_deployments_waiting_on_a_jira_outage_do_not_delay_a_merge_check(live_app: LiveApp, repo: str) -> None:
    from test_deploy_gate_e2e import answers, deploy, setup_release

    live_app.services.settings = dataclasses.replace(live_app.services.settings, deploy_retry_seconds=120)
    live_app.jira.add_ticket("PAY-1", status="In Review")
    sha = setup_release(live_app, repo, ["PAY-1 refunds"])
    live_app.jira.faults.down = True
    for _ in range(live_app.services.settings.workers + 1):  # more than there are threads for deployments
        deploy(live_app, repo, sha)
    wait_for(
        lambda: len({a["run_id"] for a in live_app.github.deployment_answers(repo) if a["state"] is None}) >= 4,
        message="four deployments waiting on Jira",
    )
    # A PR opened now is checked at once, on threads of its own: it does not queue behind the deployments.
    live_app.github.add_commit(repo, "feature/pay-1", "PAY-1 more", author=ALICE)
    live_app.github.open_pull_request(repo, head="feature/pay-1", title="PAY-1: more", author="alice")
    head = live_app.github.pull_request(repo, 1)["head"]["sha"]
    check = completed_check(live_app.github, repo, head)
    assert check["conclusion"] == "failure" and "Jira" in check["output"]["title"]
    assert not [a for a in live_app.github.deployment_answers(repo) if a["state"]]  # still waiting
    live_app.jira.faults.down = False
    assert len(answers(live_app, repo, live_app.services.settings.workers + 1)) == 5


def test_a_deferred_delivery_waits_its_time_then_runs_again(database_url: str) -> None:
    """A job that asks to be run later holds no worker: it is queued again, invisible until its time."""
    from datetime import UTC, datetime

    from gating.intake.deliveries import Delivery, DeliveryStore

    now = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    db = Database(database_url)
    db.upgrade()
    store = DeliveryStore(db, lambda: now[0])
    delivery = Delivery("d-1", "github", "deployment_protection_rule", "requested", {"x": 1}, now[0])
    assert store.accept(delivery, "digest")
    assert store.claim("deploy") is not None
    store.defer("d-1", 30, "Jira is unavailable")
    assert store.status("d-1") == "queued"
    assert store.claim("deploy") is None, "taken before its time"
    now[0] += timedelta(seconds=31)
    again = store.claim("deploy")
    assert again is not None and again.payload == {"x": 1}
    db.dispose()
