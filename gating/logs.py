"""JSON log lines on stderr: one object per record, with the bound delivery context and no secrets."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gating.settings import Settings

REDACTED = "[redacted]"

# Keys every line has; an `extra=` field of the same name is renamed rather than overwrite them.
RESERVED = ("time", "level", "event", "logger", "message", "traceback", "stack")

# What a LogRecord carries of its own; anything else on it came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# The fields bound for the work in progress (a delivery's job), added to every line logged meanwhile.
_context: ContextVar[Mapping[str, Any]] = ContextVar("countersign_log_context", default=MappingProxyType({}))

# A message that starts with a dotted name (`jira.unavailable status=503`) is that event with details.
_EVENT = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")

# A value under one of these names is a credential whatever it looks like (headers, settings, forms).
_SECRET_NAME = re.compile(r"authorization|password|passwd|secret|token|private.?key|api.?key|cookie", re.IGNORECASE)

# Shorter secret values are not redacted by value: they would blank out ordinary words of every line,
# and a secret that short is guessed faster than it is found in a log.
_MIN_SECRET_LENGTH = 4


def _authorization(match: re.Match[str]) -> str:
    quote = match.group(2)[:1] if match.group(2)[:1] in "\"'" else ""
    return f"{match.group(1)}{quote}{REDACTED}{quote}"


# Credentials recognised by their shape, whether or not this process knows their value: tokens that
# GitHub issued to the app at run time, API tokens, JWTs, and headers printed by HTTP clients
# (PyGithub's debug lines, the `jira` library's error text, which includes the request's headers).
_PATTERNS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL),
        REDACTED,
    ),
    (
        re.compile(r"""(\b(?:proxy-)?authorization["']?\s*[:=]\s*)("[^"]*"?|'[^']*'?|[^\r\n,;}]*)""", re.I),
        _authorization,
    ),
    (re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?<![A-Za-z0-9_])(cs_)[A-Za-z0-9_-]{16,}"), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\1{REDACTED}"),
    (
        re.compile(
            # An OAuth `code` too: single-use, but a callback URL logged before it is redeemed would give it away.
            r"([?&](?:access_token|token|api_key|apikey|key|password|secret|sig|signature|code|code_verifier)=)"
            r"[^&#\s\"']+",
            re.I,
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(\bhttps?://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),
)


class Redactor:
    """Removes known secret values and anything shaped like a credential from log text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        values = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)
        # Longest first, so that a secret containing another is removed whole.
        self._known = re.compile("|".join(map(re.escape, values))) if values else None

    def text(self, value: str) -> str:
        if self._known is not None:
            value = self._known.sub(REDACTED, value)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value


def basic_credentials(user: str, password: str) -> str:
    """What HTTP Basic auth sends for `user` and `password`: a secret too, though it is not the password."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _variants(secret: str) -> Iterator[str]:
    yield secret
    if "-----BEGIN" in secret:
        # A PEM may be logged in part (one line of it in an error message): each line of its body is secret.
        yield from (line.strip() for line in secret.splitlines() if len(line.strip()) >= 16 and "-----" not in line)


_redactor = Redactor()


def register_secrets(secrets: Iterable[str | None]) -> None:
    """Known secret values, removed from every line from now on (the settings, once they are read)."""
    global _redactor
    _redactor = Redactor(variant for secret in secrets if secret for variant in _variants(secret))


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` to every line logged in this context (this thread, until the block ends)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, logger, the bound context and the `extra=` fields."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        redactor = self._redactor or _redactor
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "event": "",
            "logger": record.name,
        }
        fields: dict[str, Any] = dict(_context.get())
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            line["event"] = "http.request"
            fields.update(_access_fields(record.args))
        else:
            message = record.getMessage()
            event = message.split(None, 1)[0] if message else ""
            if _EVENT.fullmatch(event):
                line["event"] = event
                if message != event:
                    line["message"] = message
            else:
                line["event"] = message
            fields.update((key, value) for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES)
        for key, value in fields.items():
            line[f"extra_{key}" if key in RESERVED else key] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_clean(line, redactor), default=str)


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """gunicorn's access atoms, without the query string, the request line or any header: they may hold tokens."""
    status = str(atoms.get("s", ""))
    return {
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "status": int(status) if status.isdigit() else status,
        "duration_ms": round(int(atoms.get("D") or 0) / 1000, 3),
        "remote_addr": atoms.get("h"),
    }


def _clean(value: Any, redactor: Redactor, depth: int = 0) -> Any:
    """A JSON value with every string redacted; values under a credential's name dropped whole."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth < 8 and isinstance(value, Mapping):
        return {
            redactor.text(str(key)): REDACTED
            if _SECRET_NAME.search(str(key)) and value[key] is not None
            else _clean(value[key], redactor, depth + 1)
            for key in value
        }
    if depth < 8 and isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, redactor, depth + 1) for item in value]
    return redactor.text(str(value))


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time, so that a replaced stderr (tests, CLI runners) is honoured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class StderrHandler(logging.StreamHandler[_CurrentStderr]):
    """The handler of the JSON lines: stderr, one line per record."""

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(_CurrentStderr())
        self.setLevel(level)
        self.setFormatter(JsonFormatter())


def configure_logging(level: int | str = logging.INFO) -> None:
    """JSON lines on stderr for every logger at `level` and above; calling it again only changes the level."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StderrHandler)), None)
    if handler is None:
        handler = StderrHandler()
        root.addHandler(handler)
    # The handler's level filters what other loggers (gunicorn's access log) pass up to it as well.
    number = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    handler.setLevel(number)
    root.setLevel(number)
    # PyGithub pins its logger at INFO when imported; at DEBUG its request lines are wanted (and redacted).
    # SQLAlchemy's WARNING is kept: at INFO it would log every statement.
    logging.getLogger("github").setLevel(logging.NOTSET)
    logging.getLogger("alembic").setLevel(_alembic_level(number))


def configure_from_settings(settings: Settings) -> None:
    """The app's logging: JSON lines at LOG_LEVEL, with every secret of the settings kept out of them."""
    secrets = list(settings.secret_values())
    if settings.jira_user and settings.jira_token:
        secrets.append(basic_credentials(settings.jira_user, settings.jira_token))
    register_secrets(secrets)
    configure_logging(settings.log_level)


def _alembic_level(level: int) -> int:
    # Alembic's INFO lines narrate the schema check that booting and every readiness probe run.
    return logging.NOTSET if level <= logging.DEBUG else logging.WARNING


def gunicorn_logconfig(level: str) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access logs pass up to the JSON handler on the root logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": ["json"]},
        # No level for gunicorn.error: gunicorn sets it from its `loglevel`.
        "loggers": {
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
            # Set before the worker imports the app: Alembic logs as it is imported.
            "alembic": {"level": _alembic_level(logging.getLevelNamesMapping()[level.upper()])},
        },
        "handlers": {"json": {"class": "gating.logs.StderrHandler", "level": level}},
        "formatters": {},
    }
