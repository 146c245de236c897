"""Configuration from the environment (12-factor), read once and typed; errors name the variable."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


class SettingsError(Exception):
    """Settings that are missing or wrong: `problems` names each one with its variable, never a secret's value."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("; ".join(self.problems))


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def instance_path() -> Path:
    """The instance folder, `./instance`: the app and the command line keep their default database there."""
    return Path.cwd() / "instance"


def default_database_url(folder: str | Path | None = None) -> str:
    """The embedded default: a SQLite file in the instance folder."""
    return f"sqlite:///{Path(folder or instance_path()).resolve() / 'countersign.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    github_app_id: str
    github_private_key: str = field(repr=False)
    github_webhook_secret: str = field(repr=False)
    github_api_url: str
    jira_url: str
    jira_user: str | None
    jira_token: str | None = field(repr=False)
    jira_webhook_secret: str | None = field(repr=False)
    database_url: str
    public_url: str | None = None
    jira_timeout: float = 10.0
    jira_cache_seconds: float = 60.0
    github_timeout: float = 15.0
    workers: int = 4
    max_body_bytes: int = 25 * 1024 * 1024
    signing_key_path: str | None = None
    deploy_retry_seconds: float = 600.0  # how long a deployment waits for Jira/GitHub before rejecting
    github_retry_seconds: float = 120.0  # how long a check run waits out GitHub's failures before an error verdict
    first_deploy_commit_limit: int = 1000  # commits a first deployment (no earlier one) is checked over
    embedded_worker: bool = True  # web processes run the jobs too; false when `countersign worker` runs them
    job_lease_seconds: float = 60.0  # a job held this long without a heartbeat was left by a dead worker
    job_attempts: int = 5  # runs of a failing job before its delivery is failed
    job_retry_backoff: int = 2  # a failed job waits backoff ** n seconds before its next run (n: runs so far)
    log_level: str = "INFO"  # of the JSON log lines on stderr
    github_max_in_flight: int = 10  # requests to GitHub at once per installation, per process
    github_writes_per_minute: int = 80  # content-creating requests per installation in any minute, per process
    checkpoint_dir: str | None = None  # where a signed ledger checkpoint is written periodically
    checkpoint_minutes: float = 60.0  # how often
    view_verify_entries: int = 2000  # ledger entries a dossier view verifies itself; more are left to the worker
    signin: SignInSettings | None = field(default=None, repr=False)  # console sign-in; None: API tokens only

    def secret_values(self) -> tuple[str, ...]:
        """The values that must never be logged: every field kept out of the repr is a secret."""
        values = [getattr(self, f.name) for f in fields(self) if not f.repr]
        nested = [v for value in values if isinstance(value, SignInSettings) for v in value.secret_values()]
        return tuple(value for value in [*values, *nested] if isinstance(value, str) and value)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        instance_folder: str | Path | None = None,
        check_keys: bool = False,
    ) -> Settings:
        """Read and check every variable; SettingsError names all the problems found, not just the first.

        `check_keys` also parses the GitHub App key as RSA and the ledger key as Ed25519 (check-settings and the
        gunicorn boot do); without it only the PEM markers of the app key are checked.
        """
        env = os.environ if env is None else env
        problems: list[str] = []

        def read(value: Callable[[], T], default: T) -> T:
            try:
                return value()
            except SettingsError as exc:
                problems.extend(exc.problems)
                return default

        missing = [
            name for name in ("GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "JIRA_URL") if not env.get(name, "").strip()
        ]
        if not (env.get("GITHUB_APP_PRIVATE_KEY") or env.get("GITHUB_APP_PRIVATE_KEY_PATH")):
            missing.append("GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH")
        if missing:
            problems.append(
                "missing required environment variable(s): "
                + ", ".join(missing)
                + " (or run `countersign demo` to try Countersign without credentials)"
            )
        app_id = read(lambda: read_app_id(env), "") if "GITHUB_APP_ID" not in missing else ""
        private_key = read(lambda: read_private_key(env, check=check_keys), "") if not _missing_key(env) else ""
        github_api_url = read(lambda: _url(env, "GITHUB_API_URL", "https://api.github.com"), "")
        jira_url = read(lambda: read_jira_url(env), "") if "JIRA_URL" not in missing else ""
        read(lambda: _jira_credentials(env), None)
        database_url = read(lambda: read_database_url(env, instance_folder), "")
        signing_key_path = read(lambda: read_signing_key_path(env, check=check_keys), None)
        jira_timeout = read(lambda: _number(env, "JIRA_TIMEOUT", 10.0), 0.0)
        jira_cache_seconds = read(lambda: _number(env, "JIRA_CACHE_SECONDS", 60.0), 0.0)
        github_timeout = read(lambda: _number(env, "GITHUB_TIMEOUT", 15.0), 0.0)
        workers = read(lambda: int(_number(env, "COUNTERSIGN_WORKERS", 4)), 0)
        deploy_retry_seconds = read(lambda: _number(env, "COUNTERSIGN_DEPLOY_RETRY_SECONDS", 600.0), 0.0)
        first_deploy_commit_limit = read(lambda: int(_number(env, "COUNTERSIGN_FIRST_DEPLOY_COMMITS", 1000)), 0)
        github_retry_seconds = read(lambda: _number(env, "COUNTERSIGN_GITHUB_RETRY_SECONDS", 120.0), 0.0)
        embedded_worker = read(lambda: _flag(env, "COUNTERSIGN_EMBEDDED_WORKER", True), True)
        job_lease_seconds = read(lambda: _number(env, "COUNTERSIGN_JOB_LEASE_SECONDS", 60.0), 0.0)
        job_attempts = read(lambda: max(int(_number(env, "COUNTERSIGN_JOB_ATTEMPTS", 5)), 1), 5)
        job_retry_backoff = read(lambda: int(_number(env, "COUNTERSIGN_JOB_RETRY_BACKOFF", 2)), 2)
        log_level = read(lambda: read_log_level(env), "INFO")
        github_max_in_flight = read(lambda: _whole(env, "COUNTERSIGN_GITHUB_MAX_IN_FLIGHT", 10, maximum=100), 10)
        github_writes_per_minute = read(lambda: _whole(env, "COUNTERSIGN_GITHUB_WRITES_PER_MINUTE", 80), 80)
        checkpoint_minutes = read(lambda: _number(env, "COUNTERSIGN_CHECKPOINT_MINUTES", 60.0), 60.0)
        view_verify_entries = read(lambda: _whole(env, "COUNTERSIGN_VIEW_VERIFY_ENTRIES", 2000), 2000)
        signin = read(lambda: read_signin(env), None)
        if problems:
            raise SettingsError(problems)
        return cls(
            github_app_id=app_id,
            github_private_key=private_key,
            github_webhook_secret=env["GITHUB_WEBHOOK_SECRET"],
            github_api_url=github_api_url,
            jira_url=jira_url,
            jira_user=env.get("JIRA_USER") or None,
            jira_token=env.get("JIRA_TOKEN") or None,
            jira_webhook_secret=env.get("JIRA_WEBHOOK_SECRET") or None,
            database_url=database_url,
            public_url=env.get("COUNTERSIGN_PUBLIC_URL") or None,
            jira_timeout=jira_timeout,
            jira_cache_seconds=jira_cache_seconds,
            github_timeout=github_timeout,
            workers=workers,
            signing_key_path=signing_key_path,
            deploy_retry_seconds=deploy_retry_seconds,
            github_retry_seconds=github_retry_seconds,
            first_deploy_commit_limit=first_deploy_commit_limit,
            embedded_worker=embedded_worker,
            job_lease_seconds=job_lease_seconds,
            job_attempts=job_attempts,
            job_retry_backoff=job_retry_backoff,
            log_level=log_level,
            github_max_in_flight=github_max_in_flight,
            github_writes_per_minute=github_writes_per_minute,
            checkpoint_dir=env.get("COUNTERSIGN_CHECKPOINT_DIR", "").strip() or None,
            checkpoint_minutes=checkpoint_minutes,
            view_verify_entries=view_verify_entries,
            signin=signin,
        )


@dataclass(frozen=True)
class GitHubAppCredentials:
    """What proving the app to GitHub takes: check-settings --online reads these even when other settings are wrong."""

    app_id: str
    private_key: str = field(repr=False)
    api_url: str
    timeout: float


@dataclass(frozen=True)
class JiraCredentials:
    url: str
    user: str | None
    token: str | None = field(repr=False)
    timeout: float


def github_app_credentials(env: Mapping[str, str]) -> GitHubAppCredentials | None:
    """The app's id, key and API URL when all three are present and valid (their problems are from_env's to name)."""
    if not env.get("GITHUB_APP_ID", "").strip() or _missing_key(env):
        return None
    try:
        return GitHubAppCredentials(
            read_app_id(env),
            read_private_key(env, check=True),
            _url(env, "GITHUB_API_URL", "https://api.github.com"),
            _number(env, "GITHUB_TIMEOUT", 15.0),
        )
    except SettingsError:
        return None


def jira_credentials(env: Mapping[str, str]) -> JiraCredentials | None:
    """Jira's URL and credentials when they are present and valid (their problems are from_env's to name)."""
    if not env.get("JIRA_URL", "").strip():
        return None
    try:
        _jira_credentials(env)
        return JiraCredentials(
            read_jira_url(env),
            env.get("JIRA_USER") or None,
            env.get("JIRA_TOKEN") or None,
            _number(env, "JIRA_TIMEOUT", 10.0),
        )
    except SettingsError:
        return None


def read_log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL, checked: a typo must not silently turn the logs off (or on at DEBUG)."""
    raw = env.get("LOG_LEVEL", "").strip()
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={raw!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


def read_app_id(env: Mapping[str, str]) -> str:
    raw = env.get("GITHUB_APP_ID", "").strip()
    # GitHub checks the JWT's `iss` against the app's numeric id; the app's name or client id is a common mix-up.
    if not re.fullmatch(r"[0-9]+", raw):
        raise SettingsError(f"GITHUB_APP_ID={raw!r} is not an integer (the App ID on the GitHub App's settings page)")
    return raw


def _missing_key(env: Mapping[str, str]) -> bool:
    return not (env.get("GITHUB_APP_PRIVATE_KEY") or env.get("GITHUB_APP_PRIVATE_KEY_PATH"))


def read_private_key(env: Mapping[str, str], *, check: bool) -> str:
    """The app's PEM key, from GITHUB_APP_PRIVATE_KEY or the file GITHUB_APP_PRIVATE_KEY_PATH names.

    Problems are reported under the variable the key came from, and never show the key itself.
    """
    if env.get("GITHUB_APP_PRIVATE_KEY"):
        source, text = "GITHUB_APP_PRIVATE_KEY", env["GITHUB_APP_PRIVATE_KEY"]
    else:
        path = env["GITHUB_APP_PRIVATE_KEY_PATH"].strip()
        source, text = f"GITHUB_APP_PRIVATE_KEY_PATH={path}", _read_file("GITHUB_APP_PRIVATE_KEY_PATH", path)
    if "PRIVATE KEY" not in text:
        raise SettingsError(f"{source} is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')")
    if check:
        kind = _private_key_kind(source, text.encode())
        if kind != "RSA":
            raise SettingsError(
                f"{source} is not an RSA key (it is {kind}); a GitHub App's private key is RSA (generate one on "
                "the app's settings page)"
            )
    return text


def read_signing_key_path(env: Mapping[str, str], *, check: bool) -> str | None:
    path = env.get("COUNTERSIGN_SIGNING_KEY_PATH", "").strip()
    if not path or not check:
        return path or None
    source = f"COUNTERSIGN_SIGNING_KEY_PATH={path}"
    kind = _private_key_kind(source, _read_file("COUNTERSIGN_SIGNING_KEY_PATH", path).encode())
    if kind != "Ed25519":
        raise SettingsError(
            f"{source} is not an Ed25519 key (it is {kind}); the ledger is signed with Ed25519 "
            "(openssl genpkey -algorithm ed25519 -out ledger.pem)"
        )
    return path


def _read_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"{name}={path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{name}={path} is not a PEM file (it is not text)") from exc


def _private_key_kind(source: str, data: bytes) -> str:
    """The algorithm of an unencrypted PEM private key; SettingsError when it is not one."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's way of saying the key needs a password
        raise SettingsError(f"{source} is encrypted; Countersign needs the key unencrypted") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        # cryptography's own text names OpenSSL internals; which file is at fault is what helps here.
        raise SettingsError(f"{source} is not a valid PEM private key (it does not parse)") from exc
    kinds: tuple[tuple[type, str], ...] = (
        (rsa.RSAPrivateKey, "RSA"),
        (ed25519.Ed25519PrivateKey, "Ed25519"),
        (ec.EllipticCurvePrivateKey, "EC"),
        (dsa.DSAPrivateKey, "DSA"),
        (ed448.Ed448PrivateKey, "Ed448"),
    )
    return next((name for kind, name in kinds if isinstance(key, kind)), type(key).__name__)


def _url(env: Mapping[str, str], name: str, default: str | None) -> str:
    value = (env.get(name) or default or "").strip().rstrip("/")
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{name}={value!r} is not an http(s) URL")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


# Path segments that belong to Jira's pages and APIs, never to the context path a Data Center install is
# served under (`https://intranet.example/jira` is a base URL; `…/jira/browse/PAY-1` is a ticket's page).
_JIRA_PAGES = frozenset(
    ("browse", "rest", "secure", "projects", "plugins", "servicedesk", "issues", "software", "dashboards", "wiki")
)
# Jira Cloud sites are served at the root of their host: any path there is a page.
_JIRA_CLOUD_HOSTS = (".atlassian.net", ".jira.com")


def read_jira_url(env: Mapping[str, str]) -> str:
    """JIRA_URL as Jira's base URL: the one a REST path is appended to. A page's address copied from the browser
    would make every request 404, or worse, find a different Jira."""
    raw = env.get("JIRA_URL", "").strip()
    if re.search(r"\s", raw):
        raise SettingsError(f"JIRA_URL={raw!r} contains a space; give Jira's base URL, e.g. https://jira.example.com")
    value = _url(env, "JIRA_URL", None)
    parsed = urlsplit(value)
    if "@" in parsed.netloc:
        # Not echoed: the part before the @ is a user and likely a password.
        raise SettingsError("JIRA_URL carries a user name or password; put them in JIRA_USER and JIRA_TOKEN instead")
    root = f"{parsed.scheme}://{parsed.netloc}"
    segments = [segment for segment in parsed.path.split("/") if segment]
    if parsed.hostname and parsed.hostname.endswith(_JIRA_CLOUD_HOSTS) and segments:
        raise SettingsError(
            f"JIRA_URL={value!r} is a page of Jira Cloud, not its base URL (a Cloud site has no path): use {root}"
        )
    for index, segment in enumerate(segments):
        lowered = segment.lower()
        if lowered in _JIRA_PAGES or lowered.endswith((".jsp", ".jspa")):
            base = "/".join([root, *segments[:index]])
            raise SettingsError(f"JIRA_URL={value!r} is a page of Jira, not its base URL: use {base}")
    if parsed.query or parsed.fragment:
        base = root + parsed.path.rstrip("/")
        raise SettingsError(f"JIRA_URL={value!r} has a query or fragment; Jira's base URL has none: use {base}")
    return value


def _jira_credentials(env: Mapping[str, str]) -> None:
    if env.get("JIRA_USER") and not env.get("JIRA_TOKEN"):
        raise SettingsError(
            "JIRA_USER is set but JIRA_TOKEN is not: Jira would be read anonymously (set JIRA_TOKEN to the user's "
            "API token, or unset JIRA_USER to use JIRA_TOKEN as a Data Center personal access token)"
        )


def read_database_url(env: Mapping[str, str], instance_folder: str | Path | None = None) -> str:
    """DATABASE_URL (else the SQLite default), parsed and with its driver installed, so the app fails at boot
    naming the variable rather than at its first query."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    value = env.get("DATABASE_URL", "").strip()
    if not value:
        return default_database_url(instance_folder)
    try:
        url = make_url(value)
    except ArgumentError as exc:
        # Not echoed: an unparseable URL cannot have its password hidden.
        raise SettingsError(
            "DATABASE_URL is not a database URL (for PostgreSQL: postgresql+psycopg://USER:PASSWORD@HOST:5432/NAME)"
        ) from exc
    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
    except ArgumentError as exc:  # NoSuchModuleError: a database SQLAlchemy does not know
        raise SettingsError(f"DATABASE_URL={shown} names a database unknown to SQLAlchemy ({url.drivername})") from exc
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise SettingsError(
            f"DATABASE_URL={shown} needs the driver {dialect.driver!r}, which is not installed (for PostgreSQL: "
            "install countersign-gate[postgres] and use postgresql+psycopg://)"
        ) from exc
    return value


def _whole(env: Mapping[str, str], name: str, default: int, *, maximum: int | None = None) -> int:
    """A whole number of at least 1 (and at most `maximum`)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r} is not a whole number of at least 1")
    if maximum is not None and int(raw) > maximum:
        raise SettingsError(f"{name}={raw} is more than {maximum}")
    return int(raw)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a number") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


# -- console sign-in ---------------------------------------------------------------------------------------------------

# A repository pattern as the console's scopes take it: `*`, `owner/*`, `owner/name`, with `*` anywhere in a part.
REPOSITORY_PATTERN = re.compile(r"\*|[A-Za-z0-9_.*-]+/[A-Za-z0-9_.*-]+")
_EMAIL = re.compile(r"[^@\s=;,]+@[^@\s=;,]+\.[^@\s=;,]+")
_DOMAIN = re.compile(r"@[^@\s=;,]+\.[^@\s=;,]+")
_GROUP = re.compile(r"group:[^\s=;,][^=;,]*")
MIN_SECRET_KEY = 32


@dataclass(frozen=True)
class AccessRule:
    """One entry of COUNTERSIGN_OIDC_ACCESS: who (`carol@example.com`, `@example.com`, `group:auditors`) sees what."""

    principal: str  # lowercased
    patterns: tuple[str, ...]

    def matches(self, email: str | None, groups: Iterable[str]) -> bool:
        if self.principal.startswith("group:"):
            return self.principal.removeprefix("group:") in {g.lower() for g in groups}
        if not email:
            return False
        address = email.lower()
        return address.endswith(self.principal) if self.principal.startswith("@") else address == self.principal


@dataclass(frozen=True)
class SignInSettings:
    """Console sign-in: GitHub's OAuth web flow, an OpenID Connect provider, or both, and the session cookie."""

    secret_key: str = field(repr=False)
    github_client_id: str | None = None
    github_client_secret: str | None = field(default=None, repr=False)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_access: tuple[AccessRule, ...] = ()
    session_hours: float = 8.0  # a session's bound; the repositories a GitHub sign-in found are kept that long at most
    cookie_secure: bool = True  # only the demo, on http://127.0.0.1, turns it off

    @property
    def github(self) -> bool:
        return bool(self.github_client_id and self.github_client_secret)

    @property
    def oidc(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    def secret_values(self) -> tuple[str, ...]:
        values = (getattr(self, f.name) for f in fields(self) if not f.repr)
        return tuple(value for value in values if isinstance(value, str) and value)


def read_oidc_access(raw: str) -> tuple[AccessRule, ...]:
    """COUNTERSIGN_OIDC_ACCESS: `WHO=PATTERNS` entries separated by `;`, PATTERNS comma-separated.

    `auditors@example.com=*; @acme.example=acme/web,acme/api; group:sox-auditors=acme/*`
    """
    rules: list[AccessRule] = []
    seen: set[str] = set()
    for number, entry in enumerate((e.strip() for e in raw.split(";")), start=1):
        if not entry:
            continue
        who, sep, what = (part.strip() for part in entry.partition("="))
        where = f"COUNTERSIGN_OIDC_ACCESS entry {number} ({entry!r})"
        if not sep:
            raise SettingsError(f"{where} has no '=': write WHO=REPOSITORIES, e.g. carol@example.com=acme/web")
        principal = who.lower()
        if not (_EMAIL.fullmatch(principal) or _DOMAIN.fullmatch(principal) or _GROUP.fullmatch(principal)):
            raise SettingsError(
                f"{where}: {who!r} is not an e-mail address (carol@example.com), a domain (@example.com) or a group "
                "(group:NAME)"
            )
        if principal in seen:
            raise SettingsError(f"{where}: {who!r} is listed twice; give it one entry with all its repositories")
        seen.add(principal)
        patterns = tuple(p.strip() for p in what.split(",") if p.strip())
        if not patterns:
            raise SettingsError(f"{where}: no repositories after '='; use * for every repository")
        bad = [p for p in patterns if not REPOSITORY_PATTERN.fullmatch(p)]
        if bad:
            raise SettingsError(
                f"{where}: {bad[0]!r} is not a repository pattern (owner/name, owner/*, or * for every repository)"
            )
        rules.append(AccessRule(principal, ("*",) if "*" in patterns else patterns))
    return tuple(rules)


def read_signin(env: Mapping[str, str]) -> SignInSettings | None:
    """The sign-in settings, None when neither GitHub nor OpenID Connect sign-in is configured."""
    value = {name: env.get(name, "").strip() for name in _SIGNIN_VARIABLES}
    problems: list[str] = []
    github_given = [name for name in ("GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET") if value[name]]
    if len(github_given) == 1:
        missing = "GITHUB_CLIENT_SECRET" if github_given == ["GITHUB_CLIENT_ID"] else "GITHUB_CLIENT_ID"
        problems.append(f"{github_given[0]} is set but {missing} is not: sign-in with GitHub needs both")
    oidc_names = ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET")
    oidc_given = [name for name in oidc_names if value[name]]
    if oidc_given and len(oidc_given) < 3:
        absent = [name for name in oidc_names if not value[name]]
        given_text = " and ".join(oidc_given) + (" are" if len(oidc_given) > 1 else " is")
        absent_text = " and ".join(absent) + (" are" if len(absent) > 1 else " is")
        problems.append(f"{given_text} set but {absent_text} not: OpenID Connect sign-in needs all three")
    github, oidc = len(github_given) == 2, len(oidc_given) == 3
    if not github and not oidc:
        if value["COUNTERSIGN_OIDC_ACCESS"] and not problems:
            problems.append("COUNTERSIGN_OIDC_ACCESS is set but OpenID Connect sign-in is not (set OIDC_ISSUER, ...)")
        if problems:
            raise SettingsError(problems)
        return None
    issuer = None
    if oidc:
        try:
            issuer = _url(env, "OIDC_ISSUER", None)
        except SettingsError as exc:
            problems.extend(exc.problems)
    access: tuple[AccessRule, ...] = ()
    if oidc:
        if not value["COUNTERSIGN_OIDC_ACCESS"]:
            problems.append(
                "OIDC_ISSUER is set but COUNTERSIGN_OIDC_ACCESS is not: nobody could sign in with it (e.g. "
                "COUNTERSIGN_OIDC_ACCESS='group:auditors=*; carol@example.com=acme/web')"
            )
        else:
            try:
                access = read_oidc_access(value["COUNTERSIGN_OIDC_ACCESS"])
            except SettingsError as exc:
                problems.extend(exc.problems)
    secret_key = value["COUNTERSIGN_SECRET_KEY"]
    if not secret_key:
        problems.append(
            "COUNTERSIGN_SECRET_KEY is required when console sign-in is on (it signs the session cookie): "
            "e.g. openssl rand -hex 32"
        )
    elif len(secret_key) < MIN_SECRET_KEY:
        problems.append(
            f"COUNTERSIGN_SECRET_KEY is too short ({len(secret_key)} characters); use at least {MIN_SECRET_KEY} "
            "random ones, e.g. openssl rand -hex 32"
        )
    hours = 8.0
    try:
        hours = _number(env, "COUNTERSIGN_SESSION_HOURS", 8.0)
    except SettingsError as exc:
        problems.extend(exc.problems)
    secure = True
    try:
        secure = _flag(env, "COUNTERSIGN_COOKIE_SECURE", True)
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return SignInSettings(
        secret_key=secret_key,
        github_client_id=value["GITHUB_CLIENT_ID"] if github else None,
        github_client_secret=value["GITHUB_CLIENT_SECRET"] if github else None,
        oidc_issuer=issuer,
        oidc_client_id=value["OIDC_CLIENT_ID"] if oidc else None,
        oidc_client_secret=value["OIDC_CLIENT_SECRET"] if oidc else None,
        oidc_access=access,
        session_hours=hours,
        cookie_secure=secure,
    )


_SIGNIN_VARIABLES = (
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "OIDC_ISSUER",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "COUNTERSIGN_OIDC_ACCESS",
    "COUNTERSIGN_SECRET_KEY",
)
