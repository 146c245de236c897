"""Sign-in settings: read at boot, every mistake named with its variable, no secret echoed; scoped token commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from gating.cli import main
from gating.console.auth import TokenError, create_token, list_tokens
from gating.db import Database
from gating.settings import AccessRule, Settings, SettingsError, read_oidc_access

BASE = {
    "GITHUB_APP_ID": "1",
    "GITHUB_WEBHOOK_SECRET": "s",
    "JIRA_URL": "https://jira.example.com",
    "GITHUB_APP_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----",
}
KEY = "0123456789abcdef0123456789abcdef"
OIDC = {
    "OIDC_ISSUER": "https://login.example.com",
    "OIDC_CLIENT_ID": "countersign",
    "OIDC_CLIENT_SECRET": "oidc-secret-value",
    "COUNTERSIGN_OIDC_ACCESS": "group:auditors=*; carol@example.com=acme/web,acme/api",
}
GITHUB = {"GITHUB_CLIENT_ID": "Iv23liabc", "GITHUB_CLIENT_SECRET": "github-secret-value"}


def problems(**env: str) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, **env})
    return info.value.problems


def test_no_sign_in_variables_mean_tokens_only() -> None:
    assert Settings.from_env(BASE).signin is None


def test_github_and_oidc_sign_in_are_read_with_their_access_rules() -> None:
    settings = Settings.from_env({**BASE, **GITHUB, **OIDC, "COUNTERSIGN_SECRET_KEY": KEY})
    signin = settings.signin
    assert signin is not None and signin.github and signin.oidc
    assert signin.oidc_access == (
        AccessRule("group:auditors", ("*",)),
        AccessRule("carol@example.com", ("acme/web", "acme/api")),
    )
    assert signin.cookie_secure and signin.session_hours == 8.0
    # The secrets are among those the logs redact, and none is in the settings' repr.
    for secret in (KEY, "oidc-secret-value", "github-secret-value"):
        assert secret in settings.secret_values() and secret not in repr(settings)


def test_sign_in_without_a_secret_key_or_with_a_short_one_is_named() -> None:
    assert problems(**GITHUB) == (
        "COUNTERSIGN_SECRET_KEY is required when console sign-in is on (it signs the session cookie): "
        "e.g. openssl rand -hex 32",
    )
    (problem,) = problems(**GITHUB, COUNTERSIGN_SECRET_KEY="short")
    assert problem.startswith("COUNTERSIGN_SECRET_KEY is too short (5 characters); use at least 32")
    assert "short'" not in problem


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GITHUB_CLIENT_ID": "x"},
            "GITHUB_CLIENT_ID is set but GITHUB_CLIENT_SECRET is not: sign-in with GitHub needs both",
        ),
        (
            {"OIDC_ISSUER": "https://x.example"},
            "OIDC_ISSUER is set but OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are not: OpenID Connect sign-in needs all "
            "three",
        ),
        (
            {**OIDC, "COUNTERSIGN_OIDC_ACCESS": "", "COUNTERSIGN_SECRET_KEY": KEY},
            "OIDC_ISSUER is set but COUNTERSIGN_OIDC_ACCESS is not: nobody could sign in with it",
        ),
        (
            {**OIDC, "OIDC_ISSUER": "login.example.com", "COUNTERSIGN_SECRET_KEY": KEY},
            "OIDC_ISSUER='login.example.com' is not an http(s) URL",
        ),
        (
            {"COUNTERSIGN_OIDC_ACCESS": "carol@example.com=*"},
            "COUNTERSIGN_OIDC_ACCESS is set but OpenID Connect sign-in is not",
        ),
        (
            {**GITHUB, "COUNTERSIGN_SECRET_KEY": KEY, "COUNTERSIGN_COOKIE_SECURE": "maybe"},
            "COUNTERSIGN_COOKIE_SECURE='maybe' is not true or false",
        ),
        (
            {**GITHUB, "COUNTERSIGN_SECRET_KEY": KEY, "COUNTERSIGN_SESSION_HOURS": "0"},
            "COUNTERSIGN_SESSION_HOURS must be positive",
        ),
    ],
)
def test_incomplete_or_wrong_sign_in_settings_are_named(env: dict[str, str], expected: str) -> None:
    found = problems(**env)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "carol@example.com",
            "COUNTERSIGN_OIDC_ACCESS entry 1 ('carol@example.com') has no '=': write WHO=REPOSITORIES",
        ),
        (
            "auditors=*",
            "COUNTERSIGN_OIDC_ACCESS entry 1 ('auditors=*'): 'auditors' is not an e-mail address (carol@example.com), "
            "a domain (@example.com) or a group (group:NAME)",
        ),
        (
            "a@example.com=*; a@example.com=acme/web",
            "COUNTERSIGN_OIDC_ACCESS entry 2 ('a@example.com=acme/web'): 'a@example.com' is listed twice",
        ),
        (
            "a@example.com=",
            "COUNTERSIGN_OIDC_ACCESS entry 1 ('a@example.com='): no repositories after '='; use * for every repository",
        ),
        (
            "a@example.com=acme",
            "COUNTERSIGN_OIDC_ACCESS entry 1 ('a@example.com=acme'): 'acme' is not a repository pattern "
            "(owner/name, owner/*, or * for every repository)",
        ),
    ],
)
def test_an_access_rule_that_does_not_parse_is_named_with_its_entry(raw: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(expected)):
        read_oidc_access(raw)


def test_access_rules_match_addresses_domains_and_groups_without_regard_to_case() -> None:
    rules = read_oidc_access("Carol@Example.com=acme/web; @audit.example=acme/*; group:SOX=*")
    by_address, by_domain, by_group = rules
    assert by_address.matches("carol@example.com", []) and not by_address.matches("carol@example.co", [])
    assert by_domain.matches("Dana@AUDIT.example", []) and not by_domain.matches("dana@notaudit.example", [])
    assert not by_domain.matches("audit.example@evil.example", [])
    assert by_group.matches(None, ["sox"]) and not by_group.matches("sox@example.com", ["finance"])


# -- countersign token create --repos, token list ---------------------------------------------------------------------


def cli(database_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, catch_exceptions=False)


def test_token_create_with_repos_and_list_shows_the_scope(database_url: str) -> None:
    Database(database_url).upgrade()
    made = cli(database_url, "token", "create", "--name", "acme", "--repos", "acme/*,other/web")
    assert made.exit_code == 0, made.output
    assert cli(database_url, "token", "create", "--name", "all").exit_code == 0
    lines = cli(database_url, "token", "list").output.splitlines()
    assert lines[0].startswith("acme\tcreated ") and lines[0].endswith("\tactive\tacme/*, other/web\tnever used")
    assert lines[1].endswith("\tactive\tevery repository\tnever used")
    bad = cli(database_url, "token", "create", "--name", "bad", "--repos", "acme")
    assert bad.exit_code == 1
    assert "'acme' is not a repository pattern (owner/name, owner/*, or * for every repository)" in bad.output


def test_a_star_among_the_patterns_is_every_repository(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    create_token(db, "star", datetime.now(UTC), "acme/web, *")
    assert list_tokens(db)[0].scope.everything
    with pytest.raises(TokenError, match="is not a repository pattern"):
        create_token(db, "odd", datetime.now(UTC), "acme/web;drop")
    db.dispose()
