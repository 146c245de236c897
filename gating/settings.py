"""Configuration from the environment (12-factor), read once and typed; errors name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse


class SettingsError(Exception):
    pass


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
    log_level: str = "INFO"  # of the JSON log lines on stderr

    def secret_values(self) -> tuple[str, ...]:
        """The values that must never be logged: every field kept out of the repr is a secret."""
        values = (getattr(self, f.name) for f in fields(self) if not f.repr)
        return tuple(value for value in values if isinstance(value, str) and value)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, instance_folder: str | Path | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [
            name for name in ("GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "JIRA_URL") if not env.get(name, "").strip()
        ]
        if not (env.get("GITHUB_APP_PRIVATE_KEY") or env.get("GITHUB_APP_PRIVATE_KEY_PATH")):
            missing.append("GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH")
        if missing:
            raise SettingsError(
                "missing required environment variable(s): "
                + ", ".join(missing)
                + " (or run `countersign demo` to try Countersign without credentials)"
            )
        private_key = env.get("GITHUB_APP_PRIVATE_KEY") or _read_key(env["GITHUB_APP_PRIVATE_KEY_PATH"])
        if "PRIVATE KEY" not in private_key:
            raise SettingsError(
                "GITHUB_APP_PRIVATE_KEY is not a PEM private key (expected '-----BEGIN ... PRIVATE KEY-----')"
            )
        return cls(
            github_app_id=env["GITHUB_APP_ID"].strip(),
            github_private_key=private_key,
            github_webhook_secret=env["GITHUB_WEBHOOK_SECRET"],
            github_api_url=_url(env, "GITHUB_API_URL", "https://api.github.com"),
            jira_url=_url(env, "JIRA_URL", None),
            jira_user=env.get("JIRA_USER") or None,
            jira_token=env.get("JIRA_TOKEN") or None,
            jira_webhook_secret=env.get("JIRA_WEBHOOK_SECRET") or None,
            database_url=env.get("DATABASE_URL") or default_database_url(instance_folder),
            public_url=env.get("COUNTERSIGN_PUBLIC_URL") or None,
            jira_timeout=_number(env, "JIRA_TIMEOUT", 10.0),
            jira_cache_seconds=_number(env, "JIRA_CACHE_SECONDS", 60.0),
            github_timeout=_number(env, "GITHUB_TIMEOUT", 15.0),
            workers=int(_number(env, "COUNTERSIGN_WORKERS", 4)),
            signing_key_path=env.get("COUNTERSIGN_SIGNING_KEY_PATH") or None,
            deploy_retry_seconds=_number(env, "COUNTERSIGN_DEPLOY_RETRY_SECONDS", 600.0),
            github_retry_seconds=_number(env, "COUNTERSIGN_GITHUB_RETRY_SECONDS", 120.0),
            first_deploy_commit_limit=int(_number(env, "COUNTERSIGN_FIRST_DEPLOY_COMMITS", 1000)),
            embedded_worker=_flag(env, "COUNTERSIGN_EMBEDDED_WORKER", True),
            job_lease_seconds=_number(env, "COUNTERSIGN_JOB_LEASE_SECONDS", 60.0),
            log_level=read_log_level(env),
        )


def read_log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL, checked: a typo must not silently turn the logs off (or on at DEBUG)."""
    raw = env.get("LOG_LEVEL", "").strip()
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={raw!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return raw.upper()


def _read_key(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"GITHUB_APP_PRIVATE_KEY_PATH={path} cannot be read: {exc.strerror}") from exc


def _url(env: Mapping[str, str], name: str, default: str | None) -> str:
    value = (env.get(name) or default or "").strip().rstrip("/")
    parsed = urlparse(value)
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
