"""GitHub's failures as the gates see them, whatever the client library raised, and how long to wait on them."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import requests
from github import GithubException, UnknownObjectException

from gating.github_api.limits import LONGEST_WAIT_IN_PLACE, GitHubRateLimited

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# GitHub asks clients that hit a secondary rate limit without a retry-after header to wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
MAX_BACKOFF = 30.0


class GitHubError(Exception):
    """GitHub answered with an error (`status`), or could not be reached (`status` None).

    `retry_after`: the seconds GitHub asked us to wait (retry-after, or until a rate limit resets).
    """

    def __init__(
        self, status: int | None, message: str, *, retry_after: float | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.rate_limited = rate_limited

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer, a 5xx, a 429, or a 403 that is a rate limit rather than a refusal."""
        if self.status is None or self.status >= 500 or self.status == 429:
            return True
        return self.status == 403 and (self.rate_limited or self.retry_after is not None)

    def describe(self) -> str:
        """A short phrase safe to publish: the status, never a response body."""
        if self.status is None:
            return "GitHub could not be reached"
        if self.rate_limited or (self.status == 403 and self.retry_after is not None):
            return f"GitHub answered {self.status} (rate limit)"
        return f"GitHub answered {self.status}"


class GitHubNotFound(GitHubError):
    """404: the object (or the app's access to it) does not exist."""


class InstallationGone(GitHubNotFound):
    """The app is not installed on that account (any more): nothing can be read or answered there."""


class GitHubUnavailable(GitHubError):
    """No answer at all: connection refused or reset, DNS, a read timeout, a response lost on the way."""


def translated(call: Callable[P, T]) -> Callable[P, T]:
    """Run `call`, turning PyGithub's and requests' exceptions into GitHubError."""

    @functools.wraps(call)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return call(*args, **kwargs)
        except UnknownObjectException as exc:
            raise GitHubNotFound(404, _message(exc)) from exc
        except GithubException as exc:
            headers = exc.headers if isinstance(exc.headers, Mapping) else {}
            raise GitHubError(
                exc.status,
                _message(exc),
                retry_after=_retry_after(exc.status, headers),
                rate_limited=_rate_limited(exc),
            ) from exc
        except requests.RequestException as exc:
            raise GitHubUnavailable(None, f"{type(exc).__name__}: {exc}") from exc

    return run


def retrying(
    operation: Callable[[], T], *, seconds: float, what: str, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run `operation`; on a transient GitHubError wait (GitHub's retry-after, else a backoff) and run it again.

    Gives up — raising the last error — when the next wait would end past `seconds` from now: a gate
    must publish an answer in bounded time, not wait on GitHub for ever. A rate limit asking for more
    than `limits.LONGEST_WAIT_IN_PLACE` is not slept here: the transport (limits.py) has usually raised
    GitHubRateLimited already, and if not, it is raised here, so the job is deferred rather than a
    worker thread held.
    """
    deadline = time.monotonic() + seconds
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            return operation()
        except GitHubError as exc:
            if not exc.transient:
                raise
            wait = exc.retry_after
            if wait is None:
                wait = max(delay, SECONDARY_LIMIT_WAIT) if exc.rate_limited else delay
            limited = exc.rate_limited or exc.retry_after is not None
            if limited and wait > LONGEST_WAIT_IN_PLACE:
                raise GitHubRateLimited(
                    wait, f"GitHub's rate limit ({what}): retrying in {wait:.0f} s", limit="secondary"
                ) from exc
            if time.monotonic() + wait > deadline:
                log.warning(
                    "github.gave_up", extra={"what": what, "attempts": attempt, "status": exc.status, "wait": wait}
                )
                raise
            log.info("github.retry", extra={"what": what, "attempt": attempt, "status": exc.status, "wait": wait})
        sleep(wait)
        delay = min(delay * 2, MAX_BACKOFF)


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    return f"{exc.status}: {data.get('message') or exc.message or ''}".rstrip(": ")


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def _retry_after(status: int, headers: Mapping[str, Any]) -> float | None:
    """retry-after in seconds; for an exhausted primary rate limit, the time until x-ratelimit-reset."""
    value = _header(headers, "retry-after")
    if value is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:  # an HTTP date: GitHub sends seconds, so treat it as absent
            pass
    if status in (403, 429) and _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        if reset and reset.isdigit():
            return max(int(reset) - time.time(), 0.0) + 1.0  # +1: the reset falls somewhere in that second
    return None


def _rate_limited(exc: GithubException) -> bool:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "").lower()
    # PyGithub's own test for GitHub's rate-limit messages (primary and secondary).
    return message.startswith("api rate limit exceeded") or (
        message.startswith("you have exceeded a secondary rate limit")
        or message.endswith("please retry your request again later.")
        or message.endswith("please wait a few minutes before you try again.")
    )
