"""`countersign serve` and gating/gunicorn_conf.py: gunicorn from an installed package, with settings from the
environment, a clean stop on SIGTERM, and one line per problem when it cannot start."""

from __future__ import annotations

import importlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gating.db import Database
from gating.demo import app_environment
from gating.settings import SettingsError
from simulators.github import GitHubSimulator, generate_app_key
from simulators.jira import JiraSimulator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The demo's environment: the simulators, a migrated SQLite database, no real credentials."""
    private_pem, public_pem = generate_app_key()
    github = GitHubSimulator(app_id=1, app_public_key_pem=public_pem, webhook_secret="webhook-secret")
    jira = JiraSimulator(deployment_type="Cloud", webhook_secret="jira-secret")
    github.start()
    jira.start()
    database_url = f"sqlite:///{tmp_path / 'countersign.sqlite3'}"
    Database(database_url).upgrade()
    env = app_environment(github, jira, private_pem, "webhook-secret", "jira-secret", database_url, LOG_LEVEL="INFO")
    # Whatever the environment running the tests says about gunicorn must not change what is tested.
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_CMD_ARGS", "GUNICORN_CONTROL_SOCKET"):
        env.pop(name, None)
    yield env
    github.stop()
    jira.stop()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line on stderr; each must be a JSON log line."""
    return [json.loads(line) for line in text.splitlines()]


def wait_for_health(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or the first answer waits for the app's boot on a busy machine
        time.sleep(0.1)
    raise AssertionError(f"{url}/healthz never answered")


def serve_then_stop(command: list[str], env: dict[str, str], cwd: Path, port: int) -> tuple[int, list[dict[str, Any]]]:
    """Start the server, wait for /healthz, send SIGTERM; its exit status and log lines."""
    server = subprocess.Popen(command, env=env, cwd=cwd, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    return server.returncode, json_lines(stderr)


def events(lines: list[dict[str, Any]]) -> list[str]:
    return [line["event"] for line in lines if line["logger"] == "gunicorn.error"]


def test_serve_runs_the_app_under_gunicorn_from_any_folder_and_stops_cleanly_on_sigterm(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    elsewhere = tmp_path / "elsewhere"  # not the checkout: no app.py, no gating/ beside it
    elsewhere.mkdir()
    command = [str(BIN / "countersign"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2"]
    status, lines = serve_then_stop(command, demo_env, elsewhere, port)
    assert status == 0
    seen = events(lines)
    assert any(event.startswith(f"Listening at: http://127.0.0.1:{port} ") for event in seen)
    assert "Using worker: gthread" in seen
    assert sum(event.startswith("Booting worker") for event in seen) == 1
    assert seen[-1] == "Shutting down: Master"
    assert "Handling signal: term" in seen
    assert not any(line["level"] in ("ERROR", "CRITICAL") for line in lines)
    health = [line for line in lines if line["event"] == "http.request" and line["path"] == "/healthz"]
    assert health and health[-1]["status"] == 200


def test_serve_takes_its_sizes_from_the_environment(demo_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = {**demo_env, "PORT": str(port), "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "3"}
    status, lines = serve_then_stop([str(BIN / "countersign"), "serve"], env, tmp_path, port)
    assert status == 0
    seen = events(lines)
    assert any(event.startswith(f"Listening at: http://0.0.0.0:{port} ") for event in seen)
    assert sum(event.startswith("Booting worker") for event in seen) == 2


def test_gunicorn_from_the_checkout_keeps_working(demo_env: dict[str, str]) -> None:
    port = free_port()
    command = [str(BIN / "gunicorn"), "-c", "python:gating.gunicorn_conf", "--bind", f"127.0.0.1:{port}", "app:app"]
    status, lines = serve_then_stop(command, {**demo_env, "WEB_CONCURRENCY": "1"}, ROOT, port)
    assert status == 0
    assert events(lines)[-1] == "Shutting down: Master"


def refuse(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    return result.returncode, result.stderr


def test_an_unreachable_database_stops_serve_with_one_line_and_no_traceback(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **demo_env,
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"postgresql+psycopg://countersign:db-password@127.0.0.1:{port}/countersign",
    }
    status, stderr = refuse([str(BIN / "countersign"), "serve", "--bind", f"127.0.0.1:{free_port()}"], env, tmp_path)
    assert status == 1
    [line] = json_lines(stderr)
    assert (line["level"], line["event"], line["logger"]) == ("ERROR", "boot.failed", "gunicorn.error")
    assert line["message"] == (
        f"boot.failed cannot connect to the database at postgresql+psycopg://countersign:***@127.0.0.1:{port}/"
        f'countersign: connection failed: connection to server at "127.0.0.1", port {port} failed: Connection refused'
    )
    assert "db-password" not in stderr and "Traceback" not in stderr


def test_bad_settings_stop_gunicorn_before_any_worker_with_a_line_for_each(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    signing_key = tmp_path / "ledger.pem"
    signing_key.write_text(demo_env["GITHUB_APP_PRIVATE_KEY"])  # RSA, where Ed25519 belongs
    env = {
        **demo_env,
        "LOG_LEVEL": "WARNING",
        "GITHUB_APP_ID": "my-app",
        "JIRA_URL": "https://acme.atlassian.net/browse/PAY-1",
        "COUNTERSIGN_SIGNING_KEY_PATH": str(signing_key),
    }
    command = [str(BIN / "gunicorn"), "-c", "python:gating.gunicorn_conf", "--bind", f"127.0.0.1:{free_port()}"]
    status, stderr = refuse([*command, "app:app"], env, ROOT)
    assert status == 1
    assert [line["message"] for line in json_lines(stderr)] == [
        "boot.failed GITHUB_APP_ID='my-app' is not an integer (the App ID on the GitHub App's settings page)",
        "boot.failed JIRA_URL='https://acme.atlassian.net/browse/PAY-1' is a page of Jira Cloud, not its base URL "
        "(a Cloud site has no path): use https://acme.atlassian.net",
        f"boot.failed COUNTERSIGN_SIGNING_KEY_PATH={signing_key} is not an Ed25519 key (it is RSA); the ledger is "
        "signed with Ed25519 (openssl genpkey -algorithm ed25519 -out ledger.pem)",
    ]
    assert "Booting worker" not in stderr and demo_env["GITHUB_WEBHOOK_SECRET"] not in stderr


def test_serve_refuses_a_port_that_is_not_a_number(demo_env: dict[str, str], tmp_path: Path) -> None:
    status, stderr = refuse([str(BIN / "countersign"), "serve"], {**demo_env, "PORT": "http"}, tmp_path)
    assert status == 1
    assert stderr == "Error: PORT='http' is not a whole number from 1 to 65535\n"


def gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """gating.gunicorn_conf as gunicorn would load it under `env`."""
    for name in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import gating.gunicorn_conf

    return importlib.reload(gating.gunicorn_conf)


def test_the_gunicorn_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = gunicorn_conf(monkeypatch)
    assert (conf.bind, conf.workers, conf.threads, conf.worker_class) == (["127.0.0.1:8000"], 2, 8, "gthread")
    # Above GitHub's 10 s webhook budget, and bounded: a wedged worker is replaced.
    assert 10 < conf.timeout <= 120 and 0 < conf.graceful_timeout <= conf.timeout
    assert conf.preload_app is False and conf.control_socket_disable is True
    conf = gunicorn_conf(monkeypatch, PORT="9000", WEB_CONCURRENCY="4", GUNICORN_THREADS="16", GUNICORN_TIMEOUT="60")
    assert (conf.bind, conf.workers, conf.threads, conf.timeout) == (["0.0.0.0:9000"], 4, 16, 60)
    with pytest.raises(SettingsError, match=r"^WEB_CONCURRENCY='many' is not a whole number from 1 to 64$"):
        gunicorn_conf(monkeypatch, WEB_CONCURRENCY="many")
    monkeypatch.delenv("WEB_CONCURRENCY")
    importlib.reload(importlib.import_module("gating.gunicorn_conf"))
