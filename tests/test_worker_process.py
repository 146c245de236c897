"""`countersign worker` as its own process: killed mid-evaluation, the next worker finishes the job, once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALICE, GITHUB_SECRET, JIRA_SECRET, completed_check, wait_for
from sqlalchemy import select
from test_durable_deliveries import countersign

from gating.db import Database
from gating.demo import app_environment
from gating.models import CheckRunRecord
from gating.models import Delivery as DeliveryRow
from gating.settings import Settings
from simulators.github import GitHubSimulator
from simulators.jira import JiraSimulator

COUNTERSIGN = str(Path(sys.executable).parent / "countersign")


@pytest.fixture
def worker_env(settings: Settings, github: GitHubSimulator, jira: JiraSimulator) -> Iterator[dict[str, str]]:
    env = app_environment(
        github, jira, settings.github_private_key, GITHUB_SECRET, JIRA_SECRET, settings.database_url,
        COUNTERSIGN_JOB_LEASE_SECONDS="2", JIRA_TIMEOUT="30",
    )  # fmt: skip
    yield env


# A worker is a fresh process that imports the app before it works: on a busy machine that alone takes seconds.
WAIT = 60.0


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([COUNTERSIGN, "worker"], env=env, stderr=subprocess.DEVNULL, start_new_session=True)


def status_of(settings: Settings, delivery_id: str) -> str | None:
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            row = session.get(DeliveryRow, delivery_id)
            return row.status if row else None
    finally:
        database.dispose()


def run_recorded(settings: Settings, sha: str) -> bool:
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            row = session.scalar(select(CheckRunRecord).where(CheckRunRecord.head_sha == sha))
            return row is not None and row.check_run_id is not None
    finally:
        database.dispose()


def test_a_worker_killed_mid_evaluation_leaves_its_job_to_the_next_one(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str, worker_env: dict[str, str]
) -> None:
    Database(settings.database_url).upgrade()
    web_only = dataclasses.replace(settings, embedded_worker=False)  # the web process only stores and answers
    with countersign(web_only, github, working=False):
        jira.add_ticket("PAY-1", status="In Review")
        jira.transition("PAY-1", "Approved", by="acc-carol")
        jira.faults.hang = 20  # the evaluation waits on a slow Jira...
        first = start_worker(worker_env)
        try:
            branch = f"feature/{uuid.uuid4().hex[:6]}"
            sha = github.add_commit(repo, branch, "PAY-1 refunds", author=ALICE)
            github.open_pull_request(repo, head=branch, title="PAY-1: refunds", author="alice")
            (delivery,) = [d for d in github.deliveries if d["event"] == "pull_request"]
            delivery_id = f"github:{delivery['delivery_id']}"
            wait_for(
                lambda: status_of(settings, delivery_id) == "processing", message="the worker to claim it", timeout=WAIT
            )
            wait_for(lambda: github.check_runs(repo, sha), message="the check run in progress", timeout=WAIT)
            # Killed once the run is recorded: a worker killed between GitHub's answer and that record leaves
            # a claim the next worker waits out (COUNTERSIGN_GITHUB_RETRY_SECONDS + 30 s) before adopting the run.
            wait_for(lambda: run_recorded(settings, sha), message="the check run recorded", timeout=WAIT)
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # ...when the worker is killed outright
            first.wait(10)
        jira.faults.hang = 0
        second = start_worker(worker_env)
        try:
            check = completed_check(github, repo, sha)
            assert check["conclusion"] == "success"
            wait_for(
                lambda: status_of(settings, delivery_id) == "completed", message="the delivery completed", timeout=WAIT
            )
            assert len(github.check_runs(repo, sha)) == 1  # the dead worker's run, completed by the new one
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(90) == 0


def test_a_deployment_whose_worker_is_killed_is_answered_once_by_the_next(
    settings: Settings, github: GitHubSimulator, jira: JiraSimulator, repo: str, worker_env: dict[str, str]
) -> None:
    from types import SimpleNamespace

    from test_deploy_gate_e2e import setup_release

    Database(settings.database_url).upgrade()
    with countersign(settings, github, working=False):
        jira.add_ticket("PAY-1", status="In Review")
        jira.transition("PAY-1", "Approved", by="acc-carol")
        sha = setup_release(SimpleNamespace(github=github), repo, ["PAY-1 refunds"])  # type: ignore[arg-type]
        jira.faults.hang = 20
        first = start_worker(worker_env)
        try:
            github.create_deployment(repo, ref="main", sha=sha, environment="production", creator="dave")
            (delivery,) = [d for d in github.deliveries if d["event"] == "deployment_protection_rule"]
            delivery_id = f"github:{delivery['delivery_id']}"
            wait_for(
                lambda: status_of(settings, delivery_id) == "processing", message="the worker to claim it", timeout=WAIT
            )
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        jira.faults.hang = 0
        second = start_worker(worker_env)
        try:
            answered = wait_for(
                lambda: [a for a in github.deployment_answers(repo) if a["state"]],
                message="the deployment answered",
                timeout=WAIT,
            )
            wait_for(
                lambda: status_of(settings, delivery_id) == "completed", message="the delivery completed", timeout=WAIT
            )
            assert [a["state"] for a in answered] == ["approved"], answered
            assert len([a for a in github.deployment_answers(repo) if a["state"]]) == 1
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(90) == 0
