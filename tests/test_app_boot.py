"""Booting: settings fail with the variable's name; an un-migrated database is refused with the fix."""

from __future__ import annotations

import re

import pytest

from gating.app import create_app
from gating.db import Database, NotMigrated
from gating.settings import Settings, SettingsError


def test_missing_settings_name_the_variables() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"GITHUB_APP_ID": "1"})
    assert str(info.value).startswith(
        "missing required environment variable(s): GITHUB_WEBHOOK_SECRET, JIRA_URL, "
        "GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH"
    )


def test_a_bad_url_is_named() -> None:
    env = {
        "GITHUB_APP_ID": "1",
        "GITHUB_WEBHOOK_SECRET": "s",
        "JIRA_URL": "jira.example.com",
        "GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
    }
    with pytest.raises(SettingsError, match=re.escape("JIRA_URL='jira.example.com' is not an http(s) URL")):
        Settings.from_env(env)


def test_the_app_refuses_an_unmigrated_database(settings: Settings) -> None:
    with pytest.raises(NotMigrated, match="run `countersign db upgrade`"):
        create_app(settings)
    Database(settings.database_url).upgrade()
    app = create_app(settings)
    client = app.test_client()
    assert client.get("/readyz").json == {"status": "ok", "database": "ok", "worker": "ok"}
    assert client.get("/healthz").json == {"status": "ok"}
    app.extensions["countersign"].processor.shutdown()
