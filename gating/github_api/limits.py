"""GitHub's limits kept on our side: requests in flight and content-creating requests per installation, and waits.

Every HTTP request PyGithub sends for this app goes through `LimitedAdapter` (a requests transport adapter
mounted on the client's session, see `install`), so the limits hold whatever code path made the request:

- **In flight**: at most `max_in_flight` requests per installation at once (GitHub's secondary limit is
  100 concurrent requests; we stay far below). Counted per process: N processes may have N times as many.
- **Writes paced**: at most `writes_per_minute` POST/PATCH/PUT/DELETE per installation in any 60 seconds
  (GitHub allows 80 content-creating requests a minute), also per process.
- **Waits**: when GitHub says to wait (retry-after, an exhausted primary limit with its reset, a secondary
  limit without a header: at least a minute) or the pacing would wait, a wait of up to `wait_in_place`
  seconds is slept here; a longer one raises `GitHubRateLimited`, a `RetryLater`: the job is queued again
  for when the wait ends and no worker thread sleeps through it. Raised before a write is sent, or on an
  answer GitHub did not apply (a rate-limited request is refused, not executed), so nothing is written twice.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from gating import metrics
from gating.deferral import RetryLater

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
WINDOW_SECONDS = 60.0
# Waits up to this are slept where they arise; longer ones defer the job (the default of `GitHubLimits`).
LONGEST_WAIT_IN_PLACE = 5.0
# GitHub asks clients that hit a secondary rate limit without a retry-after header to wait at least a minute.
SECONDARY_LIMIT_WAIT = 60.0
# PyGithub's own test for GitHub's rate-limit messages (primary and secondary).
_RATE_LIMIT_MESSAGES = (
    "api rate limit exceeded",
    "you have exceeded a secondary rate limit",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


class GitHubRateLimited(RetryLater):
    """GitHub (or our own pacing) asks for a wait longer than a worker waits in place: run the job again then.

    `limit`: primary | secondary | pacing.
    """

    def __init__(self, seconds: float, reason: str, *, limit: str) -> None:
        super().__init__(seconds, reason)
        self.limit = limit


@dataclass
class InstallationLimiter:
    """One installation's limits in this process."""

    max_in_flight: int
    writes_per_minute: int
    clock: Callable[[], float]
    in_flight: int = 0
    most_in_flight: int = 0
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _writes: deque[float] = field(default_factory=deque, repr=False)  # start times given to writes, ascending
    _blocked_until: float = 0.0  # GitHub asked for no request before this (clock time)
    _blocked_by: str = "secondary"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_in_flight)

    def reserve_write(self) -> float:
        """The clock time this write may start at, its slot taken: at most `writes_per_minute` in any window.

        A sliding window rather than a fixed gap: a gate's few writes (create, progress, complete) go at
        once, and only a burst beyond the limit waits.
        """
        with self._lock:
            now = self.clock()
            while self._writes and self._writes[0] <= now - WINDOW_SECONDS:
                self._writes.popleft()
            at = now
            if len(self._writes) >= self.writes_per_minute:
                # The write `writes_per_minute` places back must be a full window old when this one starts.
                at = max(now, self._writes[-self.writes_per_minute] + WINDOW_SECONDS)
            self._writes.append(at)
            return at

    def give_back_write(self, at: float) -> None:
        """Forget the slot a write reserved and will not use (its job was deferred instead)."""
        with self._lock, contextlib.suppress(ValueError):  # already out of the window
            self._writes.remove(at)

    def blocked_for(self) -> tuple[float, str]:
        with self._lock:
            return max(self._blocked_until - self.clock(), 0.0), self._blocked_by

    def block(self, seconds: float, limit: str) -> None:
        with self._lock:
            until = self.clock() + seconds
            if until > self._blocked_until:
                self._blocked_until, self._blocked_by = until, limit

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the installation's in-flight slots for the duration of a request."""
        self._slots.acquire()
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
            self._slots.release()


class GitHubLimits:
    """The limiters of every installation this process talks to, and how long a wait may be slept in place."""

    def __init__(
        self,
        *,
        max_in_flight: int = 10,
        writes_per_minute: int = 80,
        wait_in_place: float = LONGEST_WAIT_IN_PLACE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_in_flight < 1 or writes_per_minute < 1:
            raise ValueError("max_in_flight and writes_per_minute must be at least 1")
        self.max_in_flight = max_in_flight
        self.writes_per_minute = writes_per_minute
        self.wait_in_place = wait_in_place
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock  # x-ratelimit-reset is in epoch seconds
        self._limiters: dict[str, InstallationLimiter] = {}
        self._lock = threading.Lock()

    def limiter(self, key: str) -> InstallationLimiter:
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = self._limiters[key] = InstallationLimiter(
                    self.max_in_flight, self.writes_per_minute, self.clock
                )
            return found

    def before(self, key: str, method: str, route: str = "other") -> None:
        """Wait (briefly) or raise GitHubRateLimited before a request of `key` to `route` (`route_kind`) is sent."""
        limiter = self.limiter(key)
        blocked, limit = limiter.blocked_for()
        if blocked > 0:
            self._wait(blocked, limit, f"GitHub asked for no requests for {blocked:.0f} s ({limit} rate limit)")
        # Minting an installation token creates no content: GitHub's 80 a minute do not count it, and a hundred
        # installations starting at once (all under the app's own key) must not wait on each other for it.
        if method.upper() in WRITE_METHODS and route != "access_token":
            at = limiter.reserve_write()
            wait = at - self.clock()
            if wait > 0:
                try:
                    self._wait(wait, "pacing", f"at most {self.writes_per_minute} writes a minute per installation")
                except GitHubRateLimited:
                    limiter.give_back_write(at)
                    raise

    def after(self, key: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Learn from an answer: remember a limit GitHub announced, and defer (or let the caller retry) on one."""
        limiter = self.limiter(key)
        wait, limit = rate_limit_wait(status, headers, body, now=self.wall_clock())
        remaining = headers.get("x-ratelimit-remaining")
        reset = headers.get("x-ratelimit-reset")
        if wait is None and remaining == "0" and reset and reset.isdigit():
            # This request still went through, but the next would be refused until the reset.
            limiter.block(max(int(reset) - self.wall_clock(), 0.0) + 1.0, "primary")
            return
        if wait is None:
            return
        limiter.block(wait, limit)
        if wait > self.wait_in_place:
            metrics.RATE_LIMIT_WAITS.labels(limit, "deferred").inc()
            metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit, "deferred").inc(wait)
            raise GitHubRateLimited(wait, f"GitHub's {limit} rate limit: retrying in {wait:.0f} s", limit=limit)
        # Short: the answer goes back to the caller, whose retry waits it out (`errors.retrying`).
        metrics.RATE_LIMIT_WAITS.labels(limit, "in_place").inc()
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit, "in_place").inc(wait)

    def _wait(self, seconds: float, limit: str, reason: str) -> None:
        if seconds > self.wait_in_place:
            metrics.RATE_LIMIT_WAITS.labels(limit, "deferred").inc()
            metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit, "deferred").inc(seconds)
            raise GitHubRateLimited(seconds, f"{reason}: retrying in {seconds:.0f} s", limit=limit)
        metrics.RATE_LIMIT_WAITS.labels(limit, "in_place").inc()
        metrics.RATE_LIMIT_WAIT_SECONDS.labels(limit, "in_place").inc(seconds)
        log.info("github.paced", extra={"limit": limit, "wait": round(seconds, 3)})
        self.sleep(seconds)


def rate_limit_wait(status: int, headers: Mapping[str, str], body: bytes, *, now: float) -> tuple[float | None, str]:
    """How long GitHub asks to wait after this answer (None: it does not) and which limit it is."""
    if status not in (403, 429):
        return None, ""
    retry_after = headers.get("retry-after")
    remaining = headers.get("x-ratelimit-remaining")
    reset = headers.get("x-ratelimit-reset")
    if remaining == "0" and reset and reset.isdigit():
        wait = max(int(reset) - now, 0.0) + 1.0  # +1: the reset falls somewhere in that second
        if retry_after is not None and _seconds(retry_after) is not None:
            wait = max(wait, _seconds(retry_after) or 0.0)
        return wait, "primary"
    if retry_after is not None and (seconds := _seconds(retry_after)) is not None:
        return seconds, "secondary"
    text = body[:2000].decode("utf-8", "replace").lower()
    if any(message in text for message in _RATE_LIMIT_MESSAGES):
        return SECONDARY_LIMIT_WAIT, "secondary"
    return None, ""  # a refusal (permissions), not a limit


def _seconds(value: str) -> float | None:
    try:
        return max(float(value), 0.0)
    except ValueError:  # an HTTP date: GitHub sends seconds
        return None


# Route kinds for the request metrics: a bounded label set, never raw paths (ids and SHAs would explode it).
_ROUTES = (
    (re.compile(r"/app/installations/\d+/access_tokens$"), "access_token"),
    (re.compile(r"/app/hook/deliveries"), "hook_deliveries"),
    (re.compile(r"/check-runs"), "check_runs"),
    (re.compile(r"/deployment_protection_rule$"), "protection_rule"),
    (re.compile(r"/compare/"), "compare"),
    (re.compile(r"/commits/[^/]+/pulls$"), "commit_pulls"),
    (re.compile(r"/commits/[^/]+/(status|statuses)$"), "statuses"),
    (re.compile(r"/pulls/\d+/commits$"), "pull_commits"),
    (re.compile(r"/pulls/\d+/reviews$"), "reviews"),
    (re.compile(r"/pulls"), "pulls"),
    (re.compile(r"/commits"), "commits"),
    (re.compile(r"/contents/"), "contents"),
    (re.compile(r"/actions/"), "actions"),
    (re.compile(r"/deployments"), "deployments"),
    (re.compile(r"/repos/[^/]+/[^/]+$"), "repository"),
)


def route_kind(path: str) -> str:
    for pattern, kind in _ROUTES:
        if pattern.search(path):
            return kind
    return "other"


class LimitedAdapter(HTTPAdapter):
    """A requests transport adapter that keeps one installation's limits and counts every request."""

    def __init__(self, limits: GitHubLimits, key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = limits
        self.key = key

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        method = (request.method or "GET").upper()
        path = (request.path_url or "").split("?", 1)[0]
        route = route_kind(path)
        self.limits.before(self.key, method, route)
        with self.limits.limiter(self.key).slot():
            try:
                response = super().send(request, *args, **kwargs)
            except requests.Timeout:
                metrics.GITHUB_REQUESTS.labels(method, route, "none").inc()
                metrics.GITHUB_ERRORS.labels("timeout").inc()
                raise
            except requests.RequestException:
                metrics.GITHUB_REQUESTS.labels(method, route, "none").inc()
                metrics.GITHUB_ERRORS.labels("unreachable").inc()
                raise
        status = response.status_code
        metrics.GITHUB_REQUESTS.labels(method, route, f"{status // 100}xx").inc()
        headers = {name.lower(): value for name, value in response.headers.items()}
        wait, limit = rate_limit_wait(status, headers, response.content or b"", now=self.limits.wall_clock())
        if wait is not None:
            metrics.GITHUB_ERRORS.labels(f"{limit}_rate_limit").inc()
        elif status >= 500:
            metrics.GITHUB_ERRORS.labels("server_error").inc()
        elif status >= 400 and status != 404:
            metrics.GITHUB_ERRORS.labels("client_error").inc()
        self.limits.after(self.key, status, headers, response.content or b"")
        return response


def count_retried_attempt(method: str | None, url: str | None, response: Any, error: Exception | None) -> None:
    """An attempt urllib3 retries within one adapter send: counted like the ones the adapter sees."""
    verb = (method or "GET").upper()
    route = route_kind(str(url or "").split("?", 1)[0])
    status = getattr(response, "status", None)
    if isinstance(status, int):
        metrics.GITHUB_REQUESTS.labels(verb, route, f"{status // 100}xx").inc()
        if status >= 500:
            metrics.GITHUB_ERRORS.labels("server_error").inc()
        return
    metrics.GITHUB_REQUESTS.labels(verb, route, "none").inc()
    metrics.GITHUB_ERRORS.labels("timeout" if "timeout" in type(error).__name__.lower() else "unreachable").inc()


def install(requester: Any, limits: GitHubLimits, key: str) -> None:
    """Make the connections `requester` (PyGithub's Requester) opens send through a `LimitedAdapter`.

    PyGithub builds its connection (a requests session with one HTTPAdapter) lazily from the requester's
    connection class. Its public hook, `Requester.injectConnectionClasses`, is process-wide and turns off
    connection reuse (a new session per request, closed under other threads); replacing the class on this
    one requester keeps both, and keeps the limits per installation.
    """
    attribute = "_Requester__connectionClass"
    make = getattr(requester, attribute, None)
    if make is None:  # PyGithub changed its internals: fail loudly rather than run unlimited
        raise RuntimeError("PyGithub's Requester has no connection class to limit (PyGithub upgraded?)")

    def connection(*args: Any, **kwargs: Any) -> Any:
        cnx = make(*args, **kwargs)
        adapter = LimitedAdapter(
            limits, key, max_retries=cnx.retry, pool_connections=cnx.pool_size, pool_maxsize=cnx.pool_size
        )
        cnx.adapter = adapter
        cnx.session.mount(f"{cnx.protocol}://", adapter)
        return cnx

    setattr(requester, attribute, connection)
