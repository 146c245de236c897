"""Log lines: JSON on stderr, one object per record, with the delivery's context and never a secret."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import re
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ALICE, LiveApp

from gating.console.auth import create_token
from gating.db import Database
from gating.logs import JsonFormatter, bound
from gating.settings import Settings, SettingsError

MINIMAL_ENV = {
    "GITHUB_APP_ID": "1",
    "GITHUB_WEBHOOK_SECRET": "webhook-secret",
    "JIRA_URL": "https://jira.example.com",
    "GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
}


@pytest.fixture
def log_level() -> str:
    """INFO unless a test says otherwise; the default settings are used as they are, so INFO is the default."""
    return "INFO"


@pytest.fixture
def settings(settings: Settings, log_level: str) -> Settings:
    return settings if log_level == "INFO" else dataclasses.replace(settings, log_level=log_level)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every log line the app wrote; a line that starts like JSON must be one whole JSON object."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            value = json.loads(line)
            assert isinstance(value, dict), line
            lines.append(value)
    return lines


def strings(value: Any) -> list[str]:
    """Every string in a decoded log line, keys included: a secret must not hide behind JSON's escapes."""
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *strings(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def of_delivery(lines: list[dict[str, Any]], delivery_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("delivery") == f"github:{delivery_id}"]


def opened_pull_request(app: LiveApp, repo: str, title: str = "PAY-1: work") -> tuple[int, str, dict[str, Any]]:
    """A PR opened while GitHub's webhook is off, so that the test delivers it with an id of its choosing."""
    app.github.webhook_url = None
    sha = app.github.add_commit(repo, "feature/logs", "PAY-1 work", author=ALICE)
    number = app.github.open_pull_request(repo, head="feature/logs", title=title, author="alice")
    return number, sha, app.github.pull_request_payload(repo, number, "opened")


def test_an_accepted_delivery_logs_json_lines_carrying_its_delivery(
    live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    number, sha, payload = opened_pull_request(live_app, repo)
    delivery_id = str(uuid.uuid4())

    assert live_app.deliver("pull_request", payload, delivery_id=delivery_id).status_code == 202
    live_app.settle()
    lines = of_delivery(json_lines(capsys.readouterr().err), delivery_id)

    events = [line["event"] for line in lines]
    assert "webhook.accepted" in events
    assert "gate.pull_request" in events  # logged by the gate, which knows nothing of the delivery
    assert events[-1] == "job.completed"
    for line in lines:
        assert line["repository"] == repo
        assert line["number"] == number
        assert line["delivery_event"] == "pull_request"
        assert line["action"] == "opened"
        assert line["level"] == "INFO"
        assert line["logger"].startswith("gating.")
        assert datetime.fromisoformat(line["time"]).utcoffset() == UTC.utcoffset(None)
    gated = next(line for line in lines if line["event"] == "gate.pull_request")
    assert gated["sha"] == sha
    assert gated["outcome"] == "failed"
    completed = lines[-1]
    assert isinstance(completed["duration_ms"], float) and completed["duration_ms"] >= 0
    assert "traceback" not in completed


def test_a_deployment_delivery_binds_the_deployment_and_its_run(
    live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live_app.github.webhook_url = None
    live_app.github.add_environment(repo, "production")
    sha = live_app.github.add_commit(repo, "main", "PAY-2 change", author=ALICE)
    deployment_id = live_app.github.create_deployment(
        repo, ref="main", sha=sha, environment="production", creator="carol"
    )
    payload = live_app.github.protection_rule_payload(repo, deployment_id)
    run_id = int(payload["deployment_callback_url"].split("/runs/")[1].split("/")[0])
    delivery_id = str(uuid.uuid4())

    live_app.deliver("deployment_protection_rule", payload, delivery_id=delivery_id)
    live_app.settle()
    lines = of_delivery(json_lines(capsys.readouterr().err), delivery_id)

    decided = next(line for line in lines if line["event"] == "deploy.decided")
    assert decided["state"] == "rejected"  # PAY-2 does not exist
    assert isinstance(decided["entry"], int)
    for line in lines:
        assert (line["repository"], line["deployment"], line["run_id"]) == (repo, deployment_id, run_id)
        assert (line["environment"], line["sha"]) == ("production", sha)
    assert lines[-1]["event"] == "job.completed"


def test_a_failing_job_logs_webhook_failed_with_its_delivery_and_traceback(
    live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    number, _, payload = opened_pull_request(live_app, repo)
    delivery_id = str(uuid.uuid4())

    live_app.github.faults.down = True  # GitHub answers 503 to everything
    live_app.deliver("pull_request", payload, delivery_id=delivery_id)
    live_app.settle()
    live_app.github.faults.down = False
    lines = of_delivery(json_lines(capsys.readouterr().err), delivery_id)

    failed = [line for line in lines if line["event"] == "webhook.failed"]
    assert len(failed) == 1
    line = failed[0]
    assert line["level"] == "ERROR"
    assert (line["repository"], line["number"], line["delivery_event"]) == (repo, number, "pull_request")
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert "GitHubError" in line["traceback"]
    assert isinstance(line["duration_ms"], float)
    assert "job.completed" not in [other["event"] for other in lines]


@pytest.mark.parametrize("log_level", ["WARNING"])
def test_log_level_warning_hides_info_lines(live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, payload = opened_pull_request(live_app, repo)
    live_app.deliver("pull_request", payload)  # evaluated: INFO lines only
    live_app.settle()
    failing = str(uuid.uuid4())
    live_app.github.faults.down = True
    live_app.deliver("pull_request", payload, delivery_id=failing)
    live_app.settle()
    live_app.github.faults.down = False

    lines = json_lines(capsys.readouterr().err)
    events = [line["event"] for line in of_delivery(lines, failing)]
    assert events[-1] == "webhook.failed" and events.count("webhook.failed") == 1  # warnings on the way, then this
    assert {line["level"] for line in lines} <= {"WARNING", "ERROR", "CRITICAL"}


def test_a_line_keeps_its_event_name_apart_from_details_and_fields_never_replace_it() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.logging.formatter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("jira.unavailable status=%s", 503, extra={"event": "pull_request", "level": "x"})
        with bound(delivery="github:1", number=None):
            log.warning("Plain words, not an event")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["event"], first["message"], first["level"]) == (
        "jira.unavailable",
        "jira.unavailable status=503",
        "WARNING",
    )
    assert (first["extra_event"], first["extra_level"]) == ("pull_request", "x")
    assert {key: value for key, value in second.items() if key != "time"} == {
        "level": "WARNING",
        "event": "Plain words, not an event",
        "logger": "tests.logging.formatter",
        "delivery": "github:1",
    }


def test_log_level_comes_from_the_environment_and_an_unknown_one_stops_the_app() -> None:
    assert Settings.from_env(MINIMAL_ENV).log_level == "INFO"
    assert Settings.from_env({**MINIMAL_ENV, "LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(SettingsError, match=re.escape("LOG_LEVEL='loud' is not a log level; use one of DEBUG, INFO")):
        Settings.from_env({**MINIMAL_ENV, "LOG_LEVEL": "loud"})


def test_secrets_never_appear_in_log_lines(
    live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    installation_id = live_app.github.pull_request_payload(repo, opened_pull_request(live_app, repo)[0], "opened")[
        "installation"
    ]["id"]
    installation_token = live_app.services.github.installation_token(installation_id)
    api_token = create_token(live_app.services.db, "audit", datetime.now(UTC))
    basic = base64.b64encode(f"{settings.jira_user}:{settings.jira_token}".encode()).decode()
    key_line = settings.github_private_key.strip().splitlines()[1]
    secrets = {
        "GitHub webhook secret": settings.github_webhook_secret,
        "Jira webhook secret": settings.jira_webhook_secret,
        "Jira token": settings.jira_token,
        "Jira basic credentials": basic,
        "GitHub private key": settings.github_private_key,
        "a line of the private key": key_line,
        "installation token": installation_token,
        "API token": api_token,
        "app JWT": live_app.services.github.app_jwt(),
    }
    everything = " ".join(str(value) for value in secrets.values())
    log = logging.getLogger("gating.anywhere")

    log.warning(
        f"test.secrets {everything} Authorization: token {installation_token}",
        extra={
            "headers": {"Authorization": f"Bearer {api_token}", "Accept": "application/json"},
            "authorization": f"Basic {basic}",
            "values": list(secrets.values()),
            "error": f"JiraError HTTP 401\n\trequest headers = {{'Authorization': 'Basic {basic}'}}",
            "url": f"https://api.example.com/x?token={api_token}&page=2",
        },
    )
    try:
        raise RuntimeError(f"failed with {everything}")
    except RuntimeError:
        log.exception("test.secrets_in_a_traceback")

    out = capsys.readouterr().err
    lines = json_lines(out)
    logged = next(line for line in lines if line["event"] == "test.secrets")
    assert logged["headers"]["Accept"] == "application/json"  # what is not a secret stays
    assert logged["url"].endswith("&page=2")
    assert "Traceback" in next(line for line in lines if line["event"] == "test.secrets_in_a_traceback")["traceback"]
    decoded = "\n".join(text for line in lines for text in strings(line))
    leaked = [name for name, value in secrets.items() if value and (value in out or value in decoded)]
    assert not leaked, f"{leaked} appear in the log"
    assert "eyJ" not in out  # no JWT, whole or in part


@pytest.mark.parametrize("log_level", ["DEBUG"])
def test_the_http_clients_debug_lines_leak_no_credentials(
    live_app: LiveApp, repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    live_app.jira.add_ticket("PAY-1", status="In Review")
    _, _, payload = opened_pull_request(live_app, repo)
    live_app.deliver("pull_request", payload)
    live_app.settle()
    out = capsys.readouterr().err
    lines = json_lines(out)

    loggers = {line["logger"] for line in lines}
    assert {"github.Requester", "urllib3.connectionpool"} <= loggers  # the clients did log their requests
    assert any("access_tokens" in line.get("message", line["event"]) for line in lines)
    sent = [r.headers.get("Authorization") for r in live_app.github.recorder.requests + live_app.jira.recorder.requests]
    credentials = {header.split(" ", 1)[-1] for header in sent if header}
    installation_id = payload["installation"]["id"]
    credentials.add(live_app.services.github.installation_token(installation_id))
    assert len(credentials) >= 3  # the app's JWT, an installation token, Jira's basic credentials
    decoded = "\n".join(text for line in lines for text in strings(line))
    assert not [credential for credential in credentials if credential in out or credential in decoded]
    assert "eyJ" not in out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_gunicorn_logs_requests_and_its_own_lines_as_json(tmp_path: Path) -> None:
    from gating.demo import launch_app, wait_healthy
    from simulators.github import generate_app_key

    database_url = f"sqlite:///{tmp_path / 'countersign.sqlite3'}"
    Database(database_url).upgrade()
    env = {
        "PATH": "/usr/bin:/bin",
        **MINIMAL_ENV,
        "GITHUB_APP_PRIVATE_KEY": generate_app_key()[0],
        "DATABASE_URL": database_url,
    }
    api_token = "cs_" + "q" * 43
    port = free_port()
    with (tmp_path / "stderr").open("w") as stderr:
        server = launch_app(port, env, stderr=stderr)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            assert requests.get(f"{url}/healthz?token={api_token}", timeout=10).status_code == 200
            unauthorized = requests.get(
                f"{url}/api/v1/deployments", headers={"Authorization": f"Bearer {api_token}"}, timeout=10
            )
            assert unauthorized.status_code == 401
        finally:
            server.terminate()
            server.wait(timeout=30)
    out = (tmp_path / "stderr").read_text()

    lines = [json.loads(line) for line in out.splitlines()]  # every line gunicorn and the app wrote is JSON
    assert any(line["logger"] == "gunicorn.error" and line["event"].startswith("Booting worker") for line in lines)
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    health = next(line for line in access if line["path"] == "/healthz")
    assert health["event"] == "http.request"
    assert (health["method"], health["status"], health["remote_addr"]) == ("GET", 200, "127.0.0.1")
    assert isinstance(health["duration_ms"], float)
    assert next(line for line in access if line["path"] == "/api/v1/deployments")["status"] == 401
    bad_token = next(line for line in lines if line["event"] == "api.bad_token")
    assert (bad_token["level"], bad_token["path"]) == ("WARNING", "/api/v1/deployments")
    assert api_token not in out
    assert "token=" not in out


def test_gunicorn_refuses_an_unknown_log_level(tmp_path: Path) -> None:
    from gating.demo import launch_app

    with (tmp_path / "stderr").open("w") as stderr:
        server = launch_app(free_port(), {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "loud"}, stderr=stderr)
        assert server.wait(timeout=60) != 0
    assert "LOG_LEVEL='loud' is not a log level" in (tmp_path / "stderr").read_text()
