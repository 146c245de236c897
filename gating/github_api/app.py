"""GitHub App authentication: app JWTs, cached installation tokens, and installation clients."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar

from cachetools import TLRUCache
from github import Auth, Github, GithubIntegration
from github.Repository import Repository
from urllib3.util.retry import Retry

from gating import metrics
from gating.github_api import limits as github_limits
from gating.github_api.errors import GitHubError, GitHubNotFound, InstallationGone, retrying, translated
from gating.github_api.limits import GitHubLimits

log = logging.getLogger(__name__)

T = TypeVar("T")

# Installation tokens last an hour; stop using one five minutes before it ends so that a
# long evaluation never starts with a token about to expire.
TOKEN_MARGIN_SECONDS = 300

# How often a process that lost the race to mint looks for the winner's token.
TOKEN_POLL_SECONDS = 0.1
# The longest a process waits for another process's mint.
TOKEN_WAIT_SECONDS = 30.0


class TokenStore(Protocol):
    """Installation tokens shared by every process of one deployment, so that one mint serves them all.

    GitHub limits how many tokens an app may create, and each mint is a request: without sharing,
    every web and worker process mints its own token per installation per hour. The store keeps the
    token secret at rest; `GitHubApp` keeps its own cache in front of it, so only a miss reads it.
    """

    def load(self, installation_id: int) -> tuple[str, datetime] | None:
        """The shared token and when GitHub said it expires, or None (none, or unreadable with this app's key)."""
        ...

    def claim(self, installation_id: int, lease_seconds: float) -> bool:
        """Take the right to mint for `lease_seconds`; False while another process holds an unexpired claim."""
        ...

    def save(self, installation_id: int, token: str, expires_at: datetime) -> None:
        """Share a freshly minted token and give up the claim."""
        ...

    def release(self, installation_id: int) -> None:
        """Give up the claim without a token (minting failed), so that the next process need not wait out the lease."""
        ...

    def discard(self, installation_id: int, token: str) -> None:
        """Forget the shared token if it is still `token` (GitHub refused it); a newer one is left alone."""
        ...


def _retry() -> Retry:
    """The client's own retries: a few quick ones, of reads only, on 5xx and on a connection lost.

    Only reads: PyGithub's default also repeats POST on 5xx, which would create a second check run
    (or send a second deployment answer) when the first did go through. Not PyGithub's GithubRetry:
    it always retries 403 too and sleeps whatever retry-after or rate-limit reset GitHub names (up
    to an hour) inside the request. Rate limits are left to the callers (`errors.retrying`), which
    honour retry-after within a deadline and then publish an error verdict. `raise_on_status=False`
    hands the last answer back, so its status reaches the caller instead of a bare retry error.
    """
    return CountedRetry(
        total=3,
        backoff_factor=0.2,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=frozenset(range(500, 600)),
        respect_retry_after_header=False,
        raise_on_status=False,
    )


class CountedRetry(Retry):
    """urllib3's retries, each retried attempt counted: the adapter (limits.py) sees only the last answer."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        github_limits.count_retried_attempt(method, url, response, error)
        return super().increment(method, url, response, error, _pool, _stacktrace)


class GitHubApp:
    """Signs app JWTs, exchanges them for installation tokens and hands out clients."""

    def __init__(
        self,
        app_id: str,
        private_key: str,
        api_url: str,
        *,
        timeout: float = 15.0,
        retry_seconds: float = 30.0,
        limits: GitHubLimits | None = None,
        tokens: TokenStore | None = None,
        token_wait_seconds: float | None = None,
    ) -> None:
        self.app_id = str(app_id)
        # Shared with the other processes (None: this process mints for itself).
        self.token_store = tokens
        # How long a claim to mint lasts, and so how long a process waits for another's mint before minting
        # itself: long enough for a mint that waits out a few of GitHub's failures, short enough that a
        # winner that died costs one more token and a short delay, never a hang.
        self.token_wait_seconds = (
            min(retry_seconds + timeout, TOKEN_WAIT_SECONDS) if token_wait_seconds is None else token_wait_seconds
        )
        # Requests in flight and writes a minute per installation, in this process; long waits deferred.
        self.limits = limits or GitHubLimits()
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        # How long getting an installation token may wait out GitHub's 5xx, 429 and rate limits.
        self.retry_seconds = retry_seconds
        # Issued 60 s in the past against clock drift, valid for 9 minutes (GitHub allows 10).
        self._app_auth = Auth.AppAuth(self.app_id, private_key, jwt_expiry=540, jwt_issued_at=-60)
        self._lock = threading.Lock()
        # One minting per installation at a time in this process: its other threads wait for that token.
        self._minting: dict[int, threading.Lock] = {}
        # Expiry per token comes from GitHub's expires_at, not from a fixed TTL.
        self._tokens: TLRUCache[int, tuple[str, float]] = TLRUCache(
            maxsize=4096, ttu=lambda _key, value, _now: value[1], timer=time.monotonic
        )

    def app_jwt(self) -> str:
        """RS256 JWT for the app (signed with pyjwt by PyGithub's AppAuth)."""
        return self._app_auth.create_jwt()

    def installation_token(self, installation_id: int) -> str:
        cached = self._cached(installation_id)
        if cached:
            return cached
        with self._lock:
            minting = self._minting.setdefault(installation_id, threading.Lock())
        with minting:
            cached = self._cached(installation_id)
            if cached:
                return cached
            if self.token_store is None:
                return self._mint(installation_id)
            return self._shared_token(installation_id, self.token_store)

    def _cached(self, installation_id: int) -> str | None:
        with self._lock:
            cached = self._tokens.get(installation_id)
        return cached[0] if cached else None

    def _shared_token(self, installation_id: int, store: TokenStore) -> str:
        """The shared token if one is good for a while yet; else mint once across processes.

        The first process to claim the row mints and shares; the others poll for its token. A claim
        released without a token (the winner's mint failed) or expired (the winner died) is taken
        over; after `token_wait_seconds` a process mints for itself whatever the claim says.
        """
        deadline = time.monotonic() + self.token_wait_seconds
        waiting = False
        while True:
            found = self._adopted(installation_id, store)
            if found:
                return found
            if time.monotonic() >= deadline:
                log.warning("github.token_claim_waited_out", extra={"installation_id": installation_id})
                return self._mint(installation_id, store, claimed=False)
            if _quietly(lambda: store.claim(installation_id, self.token_wait_seconds), default=True):
                # Another process may have shared a token between the look above and the claim.
                found = self._adopted(installation_id, store)
                if found:
                    _quietly(lambda: store.release(installation_id), default=None)
                    return found
                return self._mint(installation_id, store, claimed=True)
            if not waiting:
                waiting = True
                log.info("github.token_waiting", extra={"installation_id": installation_id})
            time.sleep(TOKEN_POLL_SECONDS)

    def _adopted(self, installation_id: int, store: TokenStore) -> str | None:
        """The shared token, cached here, if it has more than the margin left."""
        found = _quietly(lambda: store.load(installation_id), default=None)
        if found is None:
            return None
        token, expires_at = found
        if self._remember(installation_id, token, expires_at) <= 0:
            self.forget_token(installation_id)
            return None
        return token

    def _remember(self, installation_id: int, token: str, expires_at: datetime) -> float:
        """Cache a token until the margin before it expires; the seconds it will be used for."""
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        remaining = (expires_at - datetime.now(UTC)).total_seconds() - TOKEN_MARGIN_SECONDS
        with self._lock:
            self._tokens[installation_id] = (token, time.monotonic() + max(remaining, 0))
        return remaining

    def _mint(self, installation_id: int, store: TokenStore | None = None, *, claimed: bool = False) -> str:
        integration = self._integration()
        try:
            # A second token is harmless, so the POST that mints one may be repeated.
            grant = retrying(
                lambda: translated(integration.get_access_token)(installation_id),
                seconds=self.retry_seconds,
                what="installation token",
            )
        except GitHubNotFound as exc:
            if store is not None and claimed:
                _quietly(lambda: store.release(installation_id), default=None)
            raise InstallationGone(
                404, f"installation {installation_id} does not exist (the app was uninstalled?)"
            ) from exc
        except BaseException:
            if store is not None and claimed:
                _quietly(lambda: store.release(installation_id), default=None)
            raise
        finally:
            integration.close()
        expires_at = grant.expires_at
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        self._remember(installation_id, grant.token, expires_at)
        if store is not None:
            _quietly(lambda: store.save(installation_id, grant.token, expires_at), default=None)
        metrics.GITHUB_TOKENS.inc()
        log.info("github.token_issued", extra={"installation_id": installation_id})
        return grant.token

    def hook_deliveries(self, since: datetime) -> list[dict[str, Any]]:
        """The app's webhook delivery attempts since `since`, newest first (app JWT; GitHub keeps three days)."""
        integration = self._integration()
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.api_url}/app/hook/deliveries"
        parameters: dict[str, Any] | None = {"per_page": 100}
        try:
            while url:
                headers, page = translated(integration.requester.requestJsonAndCheck)("GET", url, parameters=parameters)
                items = page if isinstance(page, list) else []
                for item in items:
                    if _parsed(item.get("delivered_at")) < since:
                        return found
                    found.append(dict(item))
                url, parameters = _next_link(headers), None  # the cursor is in the link
        finally:
            integration.close()
        return found

    def redeliver(self, delivery_id: int) -> None:
        """Ask GitHub to send a delivery again (it keeps its GUID)."""
        integration = self._integration()
        try:
            translated(integration.requester.requestJsonAndCheck)(
                "POST", f"{self.api_url}/app/hook/deliveries/{delivery_id}/attempts"
            )
        finally:
            integration.close()

    def forget_token(self, installation_id: int, rejected: str | None = None) -> None:
        """Drop this process's token; with the token GitHub `rejected`, drop the shared one too if it is that one."""
        with self._lock:
            self._tokens.pop(installation_id, None)
        store = self.token_store
        if rejected is not None and store is not None:
            _quietly(lambda: store.discard(installation_id, rejected), default=None)

    def _integration(self) -> GithubIntegration:
        """A client authenticated as the app (JWT): its requests have limits of their own, kept apart."""
        integration = GithubIntegration(
            auth=self._app_auth, base_url=self.api_url, timeout=int(self.timeout), retry=_retry()
        )
        github_limits.install(integration.requester, self.limits, "app")
        return integration

    def client(self, installation_id: int, token: str | None = None) -> Github:
        client = Github(
            auth=Auth.Token(token or self.installation_token(installation_id)),
            base_url=self.api_url,
            timeout=int(self.timeout),
            retry=_retry(),
            per_page=100,
            lazy=True,  # build objects from known URLs; fetch only what is read
            # PyGithub sleeps 0.25 s before every read and 1 s between writes by default. Reads of
            # one evaluation are few and serial; writes keep a gap (GitHub's secondary limits
            # count content-creating requests) but short enough for an answer within a second.
            seconds_between_requests=None,
            seconds_between_writes=0.5,
        )
        github_limits.install(client.requester, self.limits, f"installation:{installation_id}")
        return client

    def with_installation(self, installation_id: int, work: Callable[[Installation], T]) -> T:
        """Run `work` with an installation client; on 401 get a fresh token and run it once more."""
        for attempt in (1, 2):
            token = self.installation_token(installation_id)
            client = self.client(installation_id, token)
            try:
                return work(Installation(client))
            except GitHubError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                log.info("github.token_rejected", extra={"installation_id": installation_id})
                # The shared row goes too, unless another process has already replaced it.
                self.forget_token(installation_id, rejected=token)
            finally:
                client.close()
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class Repo:
    """One repository through an installation client: what `reads` and `writes` take."""

    full_name: str
    api: Repository  # lazy: built from its URL, fetched only when read


class Installation:
    """An installation's client, handed to the work `GitHubApp.with_installation` runs."""

    def __init__(self, client: Github) -> None:
        self._client = client

    def repo(self, full_name: str) -> Repo:
        return Repo(full_name, self._client.get_repo(full_name))

    @translated
    def request(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        """One request to a URL of the API host, with the installation's token (not retried unless a read)."""
        _headers, data = self._client.requester.requestJsonAndCheck(method, url, input=body)
        return data


def _quietly(call: Callable[[], T], *, default: T) -> T:
    """A token store's call; if the database fails, this process carries on with tokens of its own.

    Sharing tokens saves mints; it must not stop gating. Only the exception's type is logged: a
    driver's message could quote the statement's parameters, the token's ciphertext among them.
    """
    try:
        return call()
    except Exception as exc:
        log.warning("github.token_store_failed", extra={"error": type(exc).__name__})
        return default


def _parsed(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)  # unreadable: keep it, and keep looking
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _next_link(headers: dict[str, Any]) -> str | None:
    for part in str(headers.get("link") or headers.get("Link") or "").split(","):
        if 'rel="next"' in part:
            return part.split(";")[0].strip().strip("<>")
    return None
