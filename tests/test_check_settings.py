"""`countersign check-settings` checks for real and names every problem; database errors are one line everywhere.

Driven through the real command line against the GitHub and Jira simulators, with broken settings of each kind.
"""

from __future__ import annotations

import dataclasses
import socket
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import APP_ID, CORE_VARIABLES, GITHUB_SECRET, JIRA_SECRET
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy.engine import make_url

from gating.app import create_app
from gating.cli import main
from gating.db import Database, DatabaseUnavailable
from gating.settings import Settings, SettingsError, read_jira_url
from simulators.github import GitHubSimulator, generate_app_key
from simulators.jira import JiraSimulator

JIRA_TOKEN = "jira-api-token-that-must-not-show"
DB_PASSWORD = "db-password-that-must-not-show"

# Every variable Countersign reads: unset unless a test sets it, whatever the environment running the tests has.
VARIABLES = (
    *CORE_VARIABLES,
    "COUNTERSIGN_PUBLIC_URL",
    "COUNTERSIGN_DEPLOY_RETRY_SECONDS",
    "COUNTERSIGN_FIRST_DEPLOY_COMMITS",
    "JIRA_TIMEOUT",
    "GITHUB_TIMEOUT",
    "JIRA_CACHE_SECONDS",
    "COUNTERSIGN_WORKERS",
    "LOG_LEVEL",
)

SKIPPED_GITHUB = "skipped: GitHub not contacted until its settings above are fixed"
SKIPPED_JIRA = "skipped: Jira not contacted until its settings above are fixed"


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused(port: int) -> str:
    return f'connection failed: connection to server at "127.0.0.1", port {port} failed: Connection refused'


def environment(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, **changes: str | None
) -> dict[str, str | None]:
    env: dict[str, str | None] = dict.fromkeys(VARIABLES)
    env.update(
        GITHUB_APP_ID=str(APP_ID),
        GITHUB_APP_PRIVATE_KEY=app_keys[0],
        GITHUB_WEBHOOK_SECRET=GITHUB_SECRET,
        GITHUB_API_URL=github.url,
        JIRA_URL=jira.url,
        JIRA_USER="countersign@example.com",
        JIRA_TOKEN=JIRA_TOKEN,
        JIRA_WEBHOOK_SECRET=JIRA_SECRET,
        DATABASE_URL=database_url,
        GITHUB_TIMEOUT="5",
        JIRA_TIMEOUT="2",
    )
    env.update(changes)
    return env


def check(env: dict[str, str | None], *args: str) -> Result:
    return CliRunner().invoke(main, ["check-settings", *args], env=env)


def lines(result: Result) -> list[str]:
    return result.output.splitlines()


@pytest.fixture
def migrated(database_url: str) -> str:
    """The test's database, migrated; the text check-settings shows for it."""
    Database(database_url).upgrade()
    return f"ok: database reachable and migrated ({make_url(database_url).render_as_string(hide_password=True)})"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, password: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def test_good_settings_pass_and_online_github_and_jira_accept_them(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    result = check(environment(github, jira, app_keys, database_url), "--online")
    assert lines(result) == [
        migrated,
        f"ok: GitHub accepts the app's JWT: app countersign (id {APP_ID}) at {github.url}",
        f"ok: Jira accepts the credentials: signed in as Countersign at {jira.url}",
        "settings are valid",
    ]
    assert result.exit_code == 0
    assert [(r.method, r.path) for r in github.recorder.requests] == [("GET", "/app")]
    assert ("GET", "/rest/api/2/myself") in [(r.method, r.path) for r in jira.recorder.requests]


def test_without_online_neither_github_nor_jira_is_contacted(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    result = check(environment(github, jira, app_keys, database_url))
    assert lines(result) == [
        migrated,
        "settings are valid (GitHub and Jira not contacted: add --online to check the credentials)",
    ]
    assert result.exit_code == 0
    assert github.recorder.requests == [] and jira.recorder.requests == []


def test_every_broken_setting_is_named_not_just_the_first(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], tmp_path: Path
) -> None:
    garbled = tmp_path / "github-app.pem"
    garbled.write_text("-----BEGIN RSA PRIVATE KEY-----\nnot a key at all\n-----END RSA PRIVATE KEY-----\n")
    ledger_key = tmp_path / "ledger.pem"
    ledger_key.write_text(app_keys[0])  # an RSA key where Ed25519 belongs
    port = closed_port()
    env = environment(
        github,
        jira,
        app_keys,
        f"postgresql+psycopg://countersign:{DB_PASSWORD}@127.0.0.1:{port}/countersign",
        GITHUB_APP_ID="countersign-app",
        GITHUB_APP_PRIVATE_KEY=None,
        GITHUB_APP_PRIVATE_KEY_PATH=str(garbled),
        JIRA_URL=f"{jira.url}/browse/PAY-1",
        COUNTERSIGN_SIGNING_KEY_PATH=str(ledger_key),
    )
    result = check(env, "--online")
    assert lines(result) == [
        "problem: GITHUB_APP_ID='countersign-app' is not an integer (the App ID on the GitHub App's settings page)",
        f"problem: GITHUB_APP_PRIVATE_KEY_PATH={garbled} is not a valid PEM private key (it does not parse)",
        f"problem: JIRA_URL='{jira.url}/browse/PAY-1' is a page of Jira, not its base URL: use {jira.url}",
        f"problem: COUNTERSIGN_SIGNING_KEY_PATH={ledger_key} is not an Ed25519 key (it is RSA); the ledger is signed "
        "with Ed25519 (openssl genpkey -algorithm ed25519 -out ledger.pem)",
        f"problem: DATABASE_URL=postgresql+psycopg://countersign:***@127.0.0.1:{port}/countersign: cannot connect: "
        + refused(port),
        SKIPPED_GITHUB,
        SKIPPED_JIRA,
        "Error: 5 problem(s) found",
    ]
    assert result.exit_code == 1
    assert DB_PASSWORD not in result.output
    assert github.recorder.requests == [] and jira.recorder.requests == []


def test_github_and_jira_refusing_the_credentials_are_both_named_and_no_secret_is_printed(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    someone_elses_key = generate_app_key()[0]  # a valid RSA key, but not one of the app's
    jira.bad_credentials = True
    result = check(
        environment(github, jira, app_keys, database_url, GITHUB_APP_PRIVATE_KEY=someone_elses_key), "--online"
    )
    assert lines(result) == [
        migrated,
        "problem: GitHub refused the app's JWT (HTTP 401: A JSON web token could not be decoded): check "
        f"GITHUB_APP_ID={APP_ID} and that the private key is one of the app's current keys",
        f"problem: Jira at {jira.url} refused the credentials (HTTP 401): check JIRA_USER and JIRA_TOKEN",
        "Error: 2 problem(s) found",
    ]
    assert result.exit_code == 1
    key_body = someone_elses_key.splitlines()[1]
    for secret in (GITHUB_SECRET, JIRA_SECRET, JIRA_TOKEN, key_body, "eyJ"):  # eyJ: how every JWT starts
        assert secret not in result.output


def test_a_data_center_token_refused_names_the_token(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    jira.bad_credentials = True
    result = check(environment(github, jira, app_keys, database_url, JIRA_USER=None), "--online")
    assert f"problem: Jira at {jira.url} refused the credentials (HTTP 401): check JIRA_TOKEN" in lines(result)
    assert result.exit_code == 1


def test_addresses_that_are_not_the_apis_are_named(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    # Jira's simulator as GitHub's API (a GitHub Enterprise URL without /api/v3 fails the same way), and a
    # context path this Jira is not served under.
    env = environment(github, jira, app_keys, database_url, GITHUB_API_URL=jira.url, JIRA_URL=f"{jira.url}/jira")
    result = check(env, "--online")
    assert lines(result) == [
        migrated,
        f"problem: GITHUB_API_URL={jira.url} answered GET /app with HTTP 404, not as GitHub's REST API does (GitHub "
        "Enterprise Server: https://HOST/api/v3)",
        f"problem: JIRA_URL={jira.url}/jira: Jira answered HTTP 404 to myself; is this Jira's base URL?",
        "Error: 2 problem(s) found",
    ]


def test_github_and_jira_that_do_not_answer_are_named(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    github_port, jira_port = closed_port(), closed_port()
    env = environment(
        github,
        jira,
        app_keys,
        database_url,
        GITHUB_API_URL=f"http://127.0.0.1:{github_port}",
        JIRA_URL=f"http://127.0.0.1:{jira_port}",
    )
    result = check(env, "--online")
    assert lines(result) == [
        migrated,
        f"problem: GITHUB_API_URL=http://127.0.0.1:{github_port}: GitHub could not be reached (Connection refused)",
        f"problem: JIRA_URL=http://127.0.0.1:{jira_port}: Jira could not be reached",
        "Error: 2 problem(s) found",
    ]


ED25519 = pem(ed25519.Ed25519PrivateKey.generate())
ENCRYPTED_RSA = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048), password=b"passphrase")


@pytest.mark.parametrize(
    ("inline", "file_text", "problem"),
    [
        (
            ED25519,
            None,
            "GITHUB_APP_PRIVATE_KEY is not an RSA key (it is Ed25519); a GitHub App's private key is RSA (generate "
            "one on the app's settings page)",
        ),
        (
            "the key should be here",
            None,
            "GITHUB_APP_PRIVATE_KEY is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')",
        ),
        (None, ENCRYPTED_RSA, "GITHUB_APP_PRIVATE_KEY_PATH={path} is encrypted; Countersign needs the key unencrypted"),
        (
            None,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
            "GITHUB_APP_PRIVATE_KEY_PATH={path} is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')",
        ),
        (None, None, "GITHUB_APP_PRIVATE_KEY_PATH={path} cannot be read: No such file or directory"),
    ],
    ids=["inline-ed25519", "inline-not-pem", "file-encrypted", "file-public-key", "file-missing"],
)
def test_a_bad_app_key_is_named_by_the_variable_it_came_from_and_never_shown(
    github: GitHubSimulator,
    jira: JiraSimulator,
    app_keys: tuple[str, str],
    database_url: str,
    migrated: str,
    tmp_path: Path,
    inline: str | None,
    file_text: str | None,
    problem: str,
) -> None:
    path = tmp_path / "github-app.pem"
    if file_text is not None:
        path.write_text(file_text)
    changes = {"GITHUB_APP_PRIVATE_KEY": inline} if inline else {"GITHUB_APP_PRIVATE_KEY": None}
    if not inline:
        changes["GITHUB_APP_PRIVATE_KEY_PATH"] = str(path)
    result = check(environment(github, jira, app_keys, database_url, **changes))
    assert lines(result) == [f"problem: {problem.format(path=path)}", migrated, "Error: 1 problem(s) found"]
    assert result.exit_code == 1
    for text in (inline, file_text):
        if text and "\n" in text:
            assert text.splitlines()[1] not in result.output


def test_a_signing_key_that_is_missing_or_not_ed25519_is_named(
    github: GitHubSimulator,
    jira: JiraSimulator,
    app_keys: tuple[str, str],
    database_url: str,
    migrated: str,
    tmp_path: Path,
) -> None:
    good = tmp_path / "ledger.pem"
    good.write_text(ED25519)
    result = check(environment(github, jira, app_keys, database_url, COUNTERSIGN_SIGNING_KEY_PATH=str(good)))
    assert result.exit_code == 0, result.output
    missing = tmp_path / "nowhere.pem"
    result = check(environment(github, jira, app_keys, database_url, COUNTERSIGN_SIGNING_KEY_PATH=str(missing)))
    assert (
        lines(result)[0] == f"problem: COUNTERSIGN_SIGNING_KEY_PATH={missing} cannot be read: No such file or directory"
    )
    assert result.exit_code == 1


def test_missing_variables_are_named_and_the_database_still_checked(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    env: dict[str, str | None] = {**dict.fromkeys(VARIABLES), "DATABASE_URL": database_url}
    result = check(env, "--online")
    assert lines(result) == [
        "problem: missing required environment variable(s): GITHUB_APP_ID, GITHUB_WEBHOOK_SECRET, JIRA_URL, "
        "GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH (or run `countersign demo` to try Countersign "
        "without credentials)",
        migrated,
        SKIPPED_GITHUB,
        SKIPPED_JIRA,
        "Error: 1 problem(s) found",
    ]
    assert result.exit_code == 1


def test_with_only_jira_broken_github_is_still_checked_online(
    github: GitHubSimulator, jira: JiraSimulator, app_keys: tuple[str, str], database_url: str, migrated: str
) -> None:
    result = check(environment(github, jira, app_keys, database_url, JIRA_TOKEN=None), "--online")
    assert lines(result) == [
        "problem: JIRA_USER is set but JIRA_TOKEN is not: Jira would be read anonymously (set JIRA_TOKEN to the "
        "user's API token, or unset JIRA_USER to use JIRA_TOKEN as a Data Center personal access token)",
        migrated,
        f"ok: GitHub accepts the app's JWT: app countersign (id {APP_ID}) at {github.url}",
        SKIPPED_JIRA,
        "Error: 1 problem(s) found",
    ]


def test_the_database_states_are_named(
    github: GitHubSimulator,
    jira: JiraSimulator,
    app_keys: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def problem(database_url: str | None) -> str:
        result = check(environment(github, jira, app_keys, "", DATABASE_URL=database_url))
        assert result.exit_code == 1
        assert lines(result)[-1] == "Error: 1 problem(s) found"
        return lines(result)[0]

    absent = tmp_path / "absent.sqlite3"
    assert problem(f"sqlite:///{absent}") == (
        f"problem: DATABASE_URL=sqlite:///{absent}: the file does not exist yet; run `countersign db upgrade`"
    )
    assert not absent.exists()  # a check leaves nothing behind
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    assert problem(f"sqlite:///{empty}") == (
        f"problem: DATABASE_URL=sqlite:///{empty}: not migrated to this version of Countersign; run "
        "`countersign db upgrade`"
    )
    monkeypatch.chdir(tmp_path)
    assert problem(None) == (
        f"problem: the default database sqlite:///{tmp_path}/instance/countersign.sqlite3 (DATABASE_URL is not "
        "set): the file does not exist yet; run `countersign db upgrade`"
    )
    assert problem(f"postgresql//countersign:{DB_PASSWORD}@db/countersign") == (
        "problem: DATABASE_URL is not a database URL (for PostgreSQL: "
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME)"
    )
    assert problem(f"mysql+nosuchdriver://countersign:{DB_PASSWORD}@db/countersign") == (
        "problem: DATABASE_URL=mysql+nosuchdriver://countersign:***@db/countersign names a database unknown to "
        "SQLAlchemy (mysql+nosuchdriver)"
    )
    assert problem(f"mysql://countersign:{DB_PASSWORD}@db/countersign") == (
        "problem: DATABASE_URL=mysql://countersign:***@db/countersign needs the driver 'mysqldb', which is not "
        "installed (for PostgreSQL: install countersign-gate[postgres] and use postgresql+psycopg://)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.atlassian.net",
        "https://acme.atlassian.net/",
        "https://jira.example.com",
        "https://intranet.example.com/jira",
        "https://intranet.example.com/tools/jira/",
        "http://127.0.0.1:8080/jira",
    ],
)
def test_base_urls_with_and_without_a_context_path_are_accepted(url: str) -> None:
    assert read_jira_url({"JIRA_URL": url}) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (
            "https://jira.example.com/browse/PAY-1",
            "JIRA_URL='https://jira.example.com/browse/PAY-1' is a page of Jira, not its base URL: use "
            "https://jira.example.com",
        ),
        (
            "https://intranet.example.com/jira/browse/PAY-1",
            "JIRA_URL='https://intranet.example.com/jira/browse/PAY-1' is a page of Jira, not its base URL: use "
            "https://intranet.example.com/jira",
        ),
        (
            "https://intranet.example.com/jira/rest/api/2",
            "JIRA_URL='https://intranet.example.com/jira/rest/api/2' is a page of Jira, not its base URL: use "
            "https://intranet.example.com/jira",
        ),
        (
            "https://jira.example.com/secure/Dashboard.jspa",
            "JIRA_URL='https://jira.example.com/secure/Dashboard.jspa' is a page of Jira, not its base URL: use "
            "https://jira.example.com",
        ),
        (
            "https://jira.example.com/projects/PAY/issues",
            "JIRA_URL='https://jira.example.com/projects/PAY/issues' is a page of Jira, not its base URL: use "
            "https://jira.example.com",
        ),
        (
            "https://acme.atlassian.net/jira/software/projects/PAY/boards/1",
            "JIRA_URL='https://acme.atlassian.net/jira/software/projects/PAY/boards/1' is a page of Jira Cloud, not "
            "its base URL (a Cloud site has no path): use https://acme.atlassian.net",
        ),
        (
            "https://jira.example.com/?os_authType=basic",
            "JIRA_URL='https://jira.example.com/?os_authType=basic' has a query or fragment; Jira's base URL has "
            "none: use https://jira.example.com",
        ),
        (
            "https://jira.example.com/my jira",
            "JIRA_URL='https://jira.example.com/my jira' contains a space; give Jira's base URL, e.g. "
            "https://jira.example.com",
        ),
        (
            "https://bot:hunter2@jira.example.com",
            "JIRA_URL carries a user name or password; put them in JIRA_USER and JIRA_TOKEN instead",
        ),
        ("jira.example.com", "JIRA_URL='jira.example.com' is not an http(s) URL"),
    ],
)
def test_jira_urls_that_are_not_a_base_url_are_refused(url: str, problem: str) -> None:
    with pytest.raises(SettingsError) as info:
        read_jira_url({"JIRA_URL": url})
    assert info.value.problems == (problem,)


def test_the_app_refuses_to_boot_on_the_same_problems_all_at_once() -> None:
    env = {
        "GITHUB_APP_ID": "app",
        "GITHUB_WEBHOOK_SECRET": "s",
        "JIRA_URL": "https://jira.example.com/browse/PAY-1",
        "GITHUB_APP_PRIVATE_KEY": "not a key",
        "JIRA_TIMEOUT": "soon",
    }
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.problems == (
        "GITHUB_APP_ID='app' is not an integer (the App ID on the GitHub App's settings page)",
        "GITHUB_APP_PRIVATE_KEY is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')",
        "JIRA_URL='https://jira.example.com/browse/PAY-1' is a page of Jira, not its base URL: use "
        "https://jira.example.com",
        "JIRA_TIMEOUT='soon' is not a number",
    )


@pytest.mark.parametrize("command", [["db", "upgrade"], ["token", "list"], ["verify"], ["checkpoint"]], ids=" ".join)
def test_an_unreachable_database_is_one_line_in_every_command(command: list[str]) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://countersign:{DB_PASSWORD}@127.0.0.1:{port}/countersign"
    result = CliRunner().invoke(main, command, env={**dict.fromkeys(VARIABLES), "DATABASE_URL": url})
    assert result.output == (
        f"Error: cannot connect to the database at postgresql+psycopg://countersign:***@127.0.0.1:{port}/countersign: "
        f"{refused(port)}\n"
    )
    assert result.exit_code == 1


def test_create_app_on_an_unreachable_database_raises_one_line_without_the_password(settings: Settings) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://countersign:{DB_PASSWORD}@127.0.0.1:{port}/countersign"
    with pytest.raises(DatabaseUnavailable) as info:
        create_app(dataclasses.replace(settings, database_url=url))
    assert str(info.value) == (
        f"cannot connect to the database at postgresql+psycopg://countersign:***@127.0.0.1:{port}/countersign: "
        + refused(port)
    )
    # Raised from None: a log of it carries no chained driver traceback either.
    assert info.value.__cause__ is None and info.value.__suppress_context__
