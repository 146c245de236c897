"""`countersign demo`: the app under gunicorn against simulated GitHub and Jira, with a live scenario."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import requests

from gating.console.auth import create_token
from gating.db import Database
from simulators.github import GitHubSimulator, Person, generate_app_key
from simulators.jira import JiraSimulator

REPO = "acme/payments"
ALICE = Person(name="Alice Developer", email="alice@acme.example", login="alice")
CONFIG = """\
# Countersign policy for acme/payments (seeded by the demo)
jira:
  projects: [PAY]
  approved_statuses: [Approved]
identities:          # GitHub login -> Jira accountId
  alice: acc-alice
  bob: acc-bob
  carol: acc-carol
environments:
  production:
    required_checks: [build]
"""


def say(step: str, text: str = "") -> None:
    print(f"\n\033[1m▶ {step}\033[0m" + (f"\n  {text}" if text else ""), flush=True)


def wait_for_check(
    github: GitHubSimulator, sha: str, *, conclusion: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in github.check_runs(REPO, sha) if r["status"] == "completed"]
        if runs and (conclusion is None or runs[-1]["conclusion"] == conclusion):
            return runs[-1]
        time.sleep(0.1)
    raise RuntimeError(f"no completed check run on {sha[:7]} after {timeout:.0f}s: see the app's log above")


def show(check: dict[str, Any]) -> None:
    mark = "✅" if check["conclusion"] == "success" else "❌"
    print(f"  {mark} check run '{check['name']}': {check['conclusion']}")
    print(f"     {check['output']['title']}")


def run_demo(*, port: int, github_port: int, jira_port: int, keep_serving: bool) -> int:
    # The simulators' access logs would drown the story; their state pages show everything.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="countersign-demo-"))
    private_pem, public_pem = generate_app_key()
    webhook_secret, jira_secret = secrets.token_hex(16), secrets.token_hex(16)
    app_url = f"http://127.0.0.1:{port}"

    github = GitHubSimulator(app_id=1, app_public_key_pem=public_pem, webhook_secret=webhook_secret)
    jira = JiraSimulator(deployment_type="Cloud", webhook_secret=jira_secret)
    github.start(github_port)
    jira.start(jira_port)
    say("Simulated GitHub and Jira are up", f"GitHub API {github.url}   Jira {jira.url}")

    database_url = f"sqlite:///{workdir / 'countersign.sqlite3'}"
    Database(database_url).upgrade()
    env = app_environment(
        github, jira, private_pem, webhook_secret, jira_secret, database_url, COUNTERSIGN_PUBLIC_URL=app_url
    )
    server = launch_app(port, env)
    try:
        wait_healthy(app_url, server)
        say("Countersign is serving", f"{app_url}  (gunicorn, SQLite at {workdir / 'countersign.sqlite3'})")
        github.webhook_url = f"{app_url}/webhooks/github"
        jira.webhook_url = f"{app_url}/webhooks/jira"
        _scenario(github, jira)
        _deployment_scenario(github, jira)
        token = create_token(Database(database_url), "demo", datetime.now(UTC))
        verification = requests.get(
            f"{app_url}/api/v1/ledger/verify", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        entries = requests.get(
            f"{app_url}/api/v1/deployments", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        latest = entries.json()["deployments"][0]["id"] if entries.ok and entries.json().get("deployments") else None
        say(
            "The evidence ledger",
            f"verification: {'OK' if verification['ok'] else 'BROKEN'}, {verification['count']} entries, "
            f"head {verification['head_hash'][:16]}…",
        )
        if latest is not None:
            print(f"  dossier (JSON)  curl -H 'Authorization: Bearer {token}' {app_url}/api/v1/deployments/{latest}")
            print(f"  dossier (page)  {app_url}/deployments/{latest}  (user: any, password: the token)")
        say(
            "Explore",
            f"Countersign health   {app_url}/healthz\n"
            f"  GitHub state         {github.url}/_sim/state\n"
            f"  Jira state           {jira.url}/_sim/state",
        )
        if not keep_serving:
            return 0
        print("\nServing until Ctrl-C.", flush=True)
        # Blocked first, so that Ctrl-C and a plain `kill` both end here and the cleanup below runs.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)
        github.stop()
        jira.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def app_environment(
    github: GitHubSimulator,
    jira: JiraSimulator,
    private_pem: str,
    webhook_secret: str,
    jira_secret: str,
    database_url: str,
    **extra: str,
) -> dict[str, str]:
    """The variables that point Countersign at the simulators (no real credentials anywhere)."""
    return {
        **os.environ,
        "GITHUB_APP_ID": str(github.app_id),
        "GITHUB_APP_PRIVATE_KEY": private_pem,
        "GITHUB_WEBHOOK_SECRET": webhook_secret,
        "GITHUB_API_URL": github.url or "",
        "JIRA_URL": jira.url or "",
        "JIRA_USER": "countersign@acme.example",
        "JIRA_TOKEN": "simulated-token",
        "JIRA_WEBHOOK_SECRET": jira_secret,
        "DATABASE_URL": database_url,
        # The scenario's steps are the story on stdout; the app's INFO lines would bury them on the same terminal.
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        **extra,
    }


def launch_app(
    port: int, env: dict[str, str], threads: int = 8, *, stderr: IO[str] | None = None
) -> subprocess.Popen[bytes]:
    """Countersign under gunicorn, as in production: one worker process with threads, JSON logs on stderr."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    command = [gunicorn, "-c", "python:gating.gunicorn_conf", "--workers", "1", "--threads", str(threads)]
    command += ["--bind", f"127.0.0.1:{port}", "gating.app:create_app()"]
    return subprocess.Popen(command, env=env, stderr=stderr)


def wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the app exited with status {server.returncode}: see its log above")
        try:
            if requests.get(f"{url}/readyz", timeout=1).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or a first answer slowed by the app's boot on a busy machine: ask again
        time.sleep(0.2)
    raise RuntimeError(f"the app did not become ready at {url}")


def wait_for_answer(github: GitHubSimulator, count: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decided = [a for a in github.deployment_answers(REPO) if a["state"]]
        if len(decided) >= count:
            return decided[count - 1]
        time.sleep(0.1)
    raise RuntimeError(f"no answer to deployment request {count} after {timeout:.0f}s: see the app's log above")


def show_answer(answer: dict[str, Any]) -> None:
    mark = "✅" if answer["state"] == "approved" else "❌"
    print(f"  {mark} deployment to {answer['environment_name']}: {answer['state']}")
    for line in answer["comment"].splitlines()[1:]:
        print(f"     {line}")


def _deployment_scenario(github: GitHubSimulator, jira: JiraSimulator) -> None:
    # The release: what was merged since production last ran (a successful deployment GitHub knows of).
    base = github.add_commit(
        REPO, "main", "Release 1.0", author=Person("Release Bot", "bot@acme.example", "renovate[bot]")
    )
    earlier = github.create_deployment(
        REPO, ref="main", sha=base, environment="production", creator="bob", deliver=False
    )
    github.set_deployment_status(REPO, earlier, "success")
    github.add_environment(REPO, "production")
    jira.add_ticket("PAY-103", "Refund receipts", status="In Review")
    github.add_commit(REPO, "main", "PAY-101 partial refunds", author=ALICE)
    sha = github.add_commit(REPO, "main", "PAY-103 refund receipts", author=ALICE)
    github.add_check_run(REPO, sha, "build")

    say("4. Carol deploys main to production while PAY-103 is still in review")
    github.create_deployment(REPO, ref="main", sha=sha, environment="production", creator="carol")
    show_answer(wait_for_answer(github, 1))

    say("5. Bob approves PAY-103; the next deployment request is approved")
    jira.transition("PAY-103", "Approved", by="acc-bob")
    github.create_deployment(REPO, ref="main", sha=sha, environment="production", creator="carol")
    show_answer(wait_for_answer(github, 2))


def _scenario(github: GitHubSimulator, jira: JiraSimulator) -> None:
    jira.add_user("acc-alice", "Alice Developer", email="alice@acme.example")
    jira.add_user("acc-bob", "Bob Reviewer", email="bob@acme.example")
    jira.add_user("acc-carol", "Carol Releaser", email="carol@acme.example")
    jira.add_ticket("PAY-101", "Partial refunds", status="In Review")
    jira.add_ticket("PAY-102", "Faster payouts", status="In Review")
    github.add_repository(REPO)
    github.put_file(REPO, ".github/countersign.yml", CONFIG)

    say("1. Alice opens a PR for PAY-101, which nobody has approved yet")
    github.add_commit(REPO, "feature/pay-101-refunds", "Add partial refunds", author=ALICE)
    sha = github.add_commit(REPO, "feature/pay-101-refunds", "Cover refunds in tests", author=ALICE)
    github.open_pull_request(REPO, head="feature/pay-101-refunds", title="PAY-101: Partial refunds", author="alice")
    show(wait_for_check(github, sha))

    say("2. Bob approves PAY-101 in Jira; Jira's webhook re-runs the check, no push needed")
    jira.transition("PAY-101", "Approved", by="acc-bob")
    show(wait_for_check(github, sha, conclusion="success"))

    say("3. Alice approves her own ticket PAY-102 and opens its PR")
    jira.transition("PAY-102", "Approved", by="acc-alice")
    sha = github.add_commit(REPO, "feature/pay-102-payouts", "PAY-102 faster payouts", author=ALICE)
    github.open_pull_request(REPO, head="feature/pay-102-payouts", title="Faster payouts", author="alice")
    show(wait_for_check(github, sha))
