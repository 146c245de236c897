"""API tokens: `countersign token` create/revoke/list, and bearer auth on GET /api/v1/ledger/verify."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from gating.app import create_app
from gating.cli import main
from gating.console.auth import token_sha256
from gating.db import Database
from gating.ledger import Ledger
from gating.settings import Settings


@pytest.fixture
def app(db: Database, database_url: str, app_keys: tuple[str, str]) -> Iterator[Flask]:
    # Dummy GitHub and Jira endpoints: these tests never reach them.
    settings = Settings(
        github_app_id="4242",
        github_private_key=app_keys[0],
        github_webhook_secret="unused",
        github_api_url="http://127.0.0.1:9",
        jira_url="http://127.0.0.1:9",
        jira_user=None,
        jira_token=None,
        jira_webhook_secret=None,
        database_url=database_url,
    )
    application = create_app(settings, check_migrations=True)
    yield application
    services = application.extensions["countersign"]
    services.processor.shutdown()
    services.db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, catch_exceptions=False)


def create(database_url: str, name: str) -> str:
    result = cli(database_url, "token", "create", "--name", name)
    assert result.exit_code == 0, result.output
    return str(result.output.strip().splitlines()[-1])


def test_token_create_prints_it_last_and_stores_only_its_hash(db: Database, database_url: str) -> None:
    token = create(database_url, "auditor")
    assert token.startswith("cs_") and len(token) > 40
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT name, token_sha256 FROM api_tokens")).all()
    assert [tuple(r) for r in stored] == [("auditor", token_sha256(token))]
    assert create(database_url, "dashboard") != token


def test_token_create_twice_with_one_name_is_a_clear_error(db: Database, database_url: str) -> None:
    create(database_url, "auditor")
    again = cli(database_url, "token", "create", "--name", "auditor")
    assert again.exit_code == 1
    assert "a token named 'auditor' already exists" in again.output


def test_token_list_shows_names_and_dates_never_tokens(db: Database, database_url: str) -> None:
    first = create(database_url, "auditor")
    second = create(database_url, "ci")
    assert cli(database_url, "token", "revoke", "ci").exit_code == 0
    listing = cli(database_url, "token", "list")
    assert listing.exit_code == 0
    lines = listing.output.splitlines()
    assert lines[0].startswith("auditor\tcreated ") and lines[0].endswith("\tactive\tevery repository\tnever used")
    assert lines[1].startswith("ci\tcreated ") and "\trevoked " in lines[1]
    assert first not in listing.output and second not in listing.output


def test_revoking_an_unknown_token_is_an_error(db: Database, database_url: str) -> None:
    result = cli(database_url, "token", "revoke", "nobody")
    assert result.exit_code == 1
    assert "no token named 'nobody'" in result.output


def test_verify_endpoint_requires_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/ledger/verify")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "missing bearer token" in response.get_json()["error"]
    basic = client.get("/api/v1/ledger/verify", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_wrong_token_is_refused_and_never_logged(
    client: FlaskClient, db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = create(database_url, "auditor")
    wrong = token[:-4] + "AAAA"
    with caplog.at_level(logging.DEBUG):
        response = client.get("/api/v1/ledger/verify", headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid or revoked token"}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert all(wrong not in record.getMessage() and wrong not in str(record.__dict__) for record in caplog.records)


def test_verify_endpoint_reports_the_chain(client: FlaskClient, db: Database, database_url: str) -> None:
    token = create(database_url, "auditor")
    headers = {"Authorization": f"Bearer {token}"}
    ledger = Ledger(db)
    for n in range(1, 4):
        ledger.append("deployment_decision", {"n": n}, index={"decision": "approved"})
    response = client.get("/api/v1/ledger/verify", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True and body["count"] == 3 and body["head_hash"] == ledger.head()[1]
    assert body["first_bad_sequence"] is None and body["reason"] is None

    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM ledger_entries WHERE sequence = 2"))
    broken = client.get("/api/v1/ledger/verify", headers=headers).get_json()
    assert broken["ok"] is False and broken["first_bad_sequence"] == 2
    assert "a row is missing" in broken["reason"]


def test_revoked_token_is_refused(client: FlaskClient, db: Database, database_url: str) -> None:
    token = create(database_url, "auditor")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/ledger/verify", headers=headers).status_code == 200
    assert cli(database_url, "token", "revoke", "auditor").exit_code == 0
    response = client.get("/api/v1/ledger/verify", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid or revoked token"}
