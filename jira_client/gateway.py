"""Reads tickets from Jira Cloud or Data Center through the `jira` library: batched, paged, retried, cached.

Retries live in one place, here (tenacity), and the library's own ResilientSession is built with
`max_retries=0`: its retry loop sleeps 10·2ⁿ s on connection errors (20 s, 40 s, … capped at 60 s)
and doubles `Retry-After`, which would hold a webhook worker for minutes when Jira is down. Ours
honours `Retry-After` on 429/503 (capped), backs off exponentially (bounded) on 5xx, connection
errors and timeouts, and then raises JiraUnavailable.

Fresh reads on Cloud: the enhanced search is eventually consistent, so `fresh=True` passes
`reconcileIssues` with the issue ids (at most 50 a request, so fresh batches are ≤50 keys). Ids
come from earlier answers; a batch holding keys never seen before is searched once more with
their ids. This keeps one request per batch in the common case (a webhook for a ticket already
read), where reading each issue directly would cost one request per ticket.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from cachetools import LRUCache, TTLCache
from jira import JIRA, JIRAError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from jira_client.models import JiraUnavailable, JiraUser, Ticket, TicketLookup
from jira_client.parsing import changelog_is_truncated, missing_keys_from_errors, parse_ticket, parse_user

log = logging.getLogger(__name__)

T = TypeVar("T")

SEARCH_FIELDS = ("summary", "status", "issuetype", "project", "created", "updated", "reporter")
RECONCILE_LIMIT = 50  # Jira Cloud accepts at most 50 ids in reconcileIssues
ID_PAGE_SIZE = 1000  # an id-only search may ask for up to 5,000 a page
MAX_RETRY_AFTER = 30.0  # never sleep longer than this on a Retry-After
MAX_BACKOFF = 8.0
_JSM_BASE = "{server}/rest/servicedeskapi/{path}"
_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")


# Called once per request attempt with its kind (the `what` of `_call`) and its failure's kind, None when it
# was answered: how an application counts Jira's requests and errors without this package knowing its metrics.
RequestObserver = Callable[[str, str | None], None]
_observers: list[RequestObserver] = []


def observe_requests(observer: RequestObserver) -> None:
    """Have `observer` called after every request attempt of every gateway (once per observer)."""
    if observer not in _observers:
        _observers.append(observer)


def _observed(what: str, error: str | None) -> None:
    for observer in list(_observers):
        try:
            observer(what, error)
        except Exception:  # counting must never break a read
            log.exception("jira.observer_failed")


class _Transient(Exception):
    """A failure worth retrying: 429, 5xx, connection error, timeout."""

    def __init__(
        self, reason: str, retry_after: float | None = None, *, kind: str = "unavailable", status: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind  # unavailable | timeout | connection, as JiraUnavailable names them
        self.status = status


class JiraGateway:
    """The one place that talks to Jira. Thread-safe; builds its `jira.JIRA` client lazily."""

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        batch_size: int = 100,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._url = url.rstrip("/")
        self._user = user
        self._token = token
        self._timeout = timeout
        self._retries = max(retries, 0)
        self._backoff = backoff
        self._batch_size = batch_size
        self._client: JIRA | None = None
        self._client_lock = threading.Lock()
        self._cache: TTLCache[str, Ticket] = TTLCache(maxsize=cache_size, ttl=cache_ttl)
        self._ids: LRUCache[str, str] = LRUCache(maxsize=cache_size)  # key -> issue id, for reconcileIssues
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the token
        return f"JiraGateway(url={self._url!r}, user={self._user!r})"

    # ----- public interface -----

    @property
    def deployment_type(self) -> str:
        """ "Cloud" or "Server" (Data Center reports itself as "Server")."""
        client = self._call("serverInfo", lambda c: c)
        return "Cloud" if client.deploymentType == "Cloud" else "Server"

    def fetch_tickets(self, keys: Iterable[str], *, include_jsm: bool = False, fresh: bool = False) -> TicketLookup:
        """Read the tickets with complete status history, batched; unknown keys are reported, not raised.

        Keys are compared upper-cased (Jira keys are); `tickets` is keyed by the upper-case key.
        Raises JiraUnavailable when Jira cannot answer: never a partial answer presented as complete.
        """
        wanted = list(dict.fromkeys(k.strip().upper() for k in keys if k and k.strip()))
        unknown = {k for k in wanted if not _KEY_RE.match(k)}  # also keeps JQL injection out
        wanted = [k for k in wanted if k not in unknown]
        tickets: dict[str, Ticket] = {}
        if not fresh:
            with self._cache_lock:
                for key in wanted:
                    cached = self._cache.get(key)
                    if cached is not None and (not include_jsm or cached.jsm_approvals is not None):
                        tickets[key] = cached
        missing = [k for k in wanted if k not in tickets]
        log.debug("jira.fetch keys=%d cached=%d fresh=%s jsm=%s", len(wanted), len(tickets), fresh, include_jsm)
        if missing:
            try:
                found, not_found = self._fetch(missing, include_jsm=include_jsm, fresh=fresh)
            except JIRAError as exc:  # an answer we cannot use (e.g. an unexpected 400/404)
                log.warning("jira.unavailable status=%s", exc.status_code)
                raise JiraUnavailable(
                    f"Jira at {self._url} answered HTTP {exc.status_code} to a ticket read: {exc.text or 'no details'}",
                    kind="unexpected",
                    status=exc.status_code,
                ) from None
            tickets.update(found)
            unknown |= not_found
        return TicketLookup(tickets=tickets, unknown=frozenset(unknown))

    def myself(self) -> JiraUser:
        """Whom Jira takes the credentials for (`GET /rest/api/2/myself`): proves the URL and the credentials.

        Raises JiraUnavailable (kind `credentials` on 401/403) like every other read.
        """
        try:
            raw = self._call("myself", _request("myself"))
        except JIRAError as exc:  # e.g. 404: JIRA_URL is not Jira's base URL
            raise JiraUnavailable(
                f"Jira at {self._url} answered HTTP {exc.status_code} to myself: {exc.text or 'no details'}",
                kind="unexpected",
                status=exc.status_code,
            ) from None
        return parse_user(raw) or JiraUser()

    def invalidate(self, *keys: str) -> None:
        with self._cache_lock:
            for key in keys:
                self._cache.pop(key.strip().upper(), None)

    # ----- reading -----

    def _fetch(self, keys: list[str], *, include_jsm: bool, fresh: bool) -> tuple[dict[str, Ticket], set[str]]:
        cloud = self.deployment_type == "Cloud"
        reconcile = fresh and cloud
        size = min(self._batch_size, RECONCILE_LIMIT) if reconcile else self._batch_size
        tickets: dict[str, Ticket] = {}
        unknown: set[str] = set()
        if reconcile and len(self._known_ids(keys)) < len(keys):
            # Keys never read before: one id-only search (pages of up to 1,000) learns their ids, so
            # every batch below can ask for a consistent read with reconcileIssues.
            known = self._known_ids_by_key(keys)
            unseen = [k for k in keys if k not in known]
            found_ids, gone = self._search(unseen, [], cloud=cloud, fields=("id",), page_size=ID_PAGE_SIZE)
            unknown |= gone
            with self._cache_lock:
                for issue in found_ids:
                    self._ids[str(issue["key"]).upper()] = str(issue["id"])
            keys = [k for k in keys if k not in gone]
        for chunk in _chunks(keys, size):
            ids = self._known_ids(chunk) if reconcile else []
            issues, not_found = self._search(chunk, ids, cloud=cloud)
            if reconcile and any(str(issue["id"]) not in ids for issue in issues):
                # Keys never seen before: now that their ids are known, read them consistently.
                issues, more = self._search(
                    [issue["key"] for issue in issues], [str(issue["id"]) for issue in issues], cloud=cloud
                )
                not_found |= more
            unknown |= not_found
            by_key = {str(issue["key"]).upper(): issue for issue in issues}
            unknown |= {k for k in chunk if k not in by_key and k not in not_found}
            for key in chunk:
                found = by_key.get(key)
                if found is None:
                    continue
                ticket = self._complete(found, include_jsm=include_jsm, cloud=cloud)
                if ticket is None:  # deleted between the search and the changelog read
                    unknown.add(key)
                    continue
                tickets[key] = ticket
        with self._cache_lock:
            for key, ticket in tickets.items():
                self._cache[key] = ticket
                self._ids[key] = str(ticket.raw.get("id"))
        return tickets, unknown

    def _known_ids(self, keys: list[str]) -> list[str]:
        with self._cache_lock:
            return [self._ids[k] for k in keys if k in self._ids]

    def _known_ids_by_key(self, keys: list[str]) -> dict[str, str]:
        with self._cache_lock:
            return {k: self._ids[k] for k in keys if k in self._ids}

    def _search(
        self,
        keys: list[str],
        ids: list[str],
        *,
        cloud: bool,
        fields: tuple[str, ...] = SEARCH_FIELDS,
        page_size: int | None = None,
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """Search one batch; keys Jira says do not exist are dropped and the rest searched once more."""
        remaining = list(keys)
        unknown: set[str] = set()
        for attempt in range(2):
            if not remaining:
                break
            try:
                return self._search_pages(remaining, ids, cloud=cloud, fields=fields, page_size=page_size), unknown
            except JIRAError as exc:
                if exc.status_code != 400 or attempt == 1:
                    raise
                missing = missing_keys_from_errors(_error_messages(exc))
                if missing is None:
                    raise
                log.debug("jira.search_unknown_keys keys=%s", sorted(missing))
                unknown |= missing & set(remaining)
                remaining = [k for k in remaining if k not in missing]
        return [], unknown

    def _search_pages(
        self,
        keys: list[str],
        ids: list[str],
        *,
        cloud: bool,
        fields: tuple[str, ...] = SEARCH_FIELDS,
        page_size: int | None = None,
    ) -> list[dict[str, Any]]:
        jql = f"key in ({', '.join(keys)}) ORDER BY key"
        page_size = page_size or self._batch_size
        expand = "changelog" if "status" in fields else None
        issues: list[dict[str, Any]] = []
        if cloud:
            token: str | None = None
            for _ in range(len(keys) + 1):  # a page holds at least one issue: bounded
                page_token = token
                log.debug("jira.search keys=%d reconcile=%d page_token=%s", len(keys), len(ids), bool(page_token))
                page = self._call(
                    "search",
                    _request(
                        "enhanced_search_issues",
                        jql,
                        nextPageToken=page_token,
                        maxResults=page_size,
                        fields=list(fields),
                        expand=expand,
                        reconcileIssues=[int(i) for i in ids] or None,
                        json_result=True,
                    ),
                )
                issues.extend(page.get("issues") or [])
                token = page.get("nextPageToken")
                if not token:
                    break
            return issues
        start = 0
        while True:
            page_start = start
            log.debug("jira.search keys=%d start_at=%d", len(keys), page_start)
            page = self._call(
                "search",
                _request(
                    "search_issues",
                    jql,
                    startAt=page_start,
                    maxResults=page_size,
                    fields=list(fields),
                    expand=expand,
                    json_result=True,
                ),
            )
            got = page.get("issues") or []
            issues.extend(got)
            start += len(got)
            if not got or start >= int(page.get("total") or 0):
                return issues

    def _complete(self, issue: dict[str, Any], *, include_jsm: bool, cloud: bool) -> Ticket | None:
        """Page a truncated changelog, add JSM approvals, and parse."""
        key = str(issue["key"])
        extra: list[dict[str, Any]] = []
        try:
            if changelog_is_truncated(issue):
                if cloud:
                    extra = self._changelog(key)
                else:  # Data Center returns it whole from the issue endpoint
                    issue = self._call(
                        "issue",
                        _request(
                            "_get_json",
                            f"issue/{key}",
                            params={"fields": ",".join(SEARCH_FIELDS), "expand": "changelog"},
                        ),
                    )
            jsm = self._jsm_pages(key) if include_jsm else None
        except JIRAError as exc:
            if exc.status_code == 404:
                return None
            raise
        return parse_ticket(
            issue, base_url=self._url, extra_histories=extra, jsm_pages=jsm, fetched_at=datetime.now(UTC)
        )

    def _changelog(self, key: str) -> list[dict[str, Any]]:
        """Every history of a Cloud issue, from `GET /rest/api/2/issue/{key}/changelog`."""
        values: list[dict[str, Any]] = []
        start = 0
        while True:
            page_start = start
            log.debug("jira.changelog key=%s start_at=%d", key, page_start)
            page = self._call(
                "changelog",
                _request("_get_json", f"issue/{key}/changelog", params={"startAt": page_start, "maxResults": 100}),
            )
            got = page.get("values") or []
            values.extend(got)
            start += len(got)
            if not got or page.get("isLast", True) or start >= int(page.get("total") or 0):
                return values

    def _jsm_pages(self, key: str) -> list[dict[str, Any]]:
        """The JSM approval pages of a request; none when the ticket is not a service request (404)."""
        pages: list[dict[str, Any]] = []
        start = 0
        while True:
            page_start = start
            log.debug("jira.jsm_approvals key=%s start=%d", key, page_start)
            try:
                page = self._call(
                    "JSM approvals",
                    _request(
                        "_get_json",
                        f"request/{key}/approval",
                        params={"start": page_start, "limit": 50},
                        base=_JSM_BASE,
                    ),
                )
            except JIRAError as exc:
                if exc.status_code == 404 and not pages:
                    return []
                raise
            pages.append(page)
            got = len(page.get("values") or [])
            start += got
            if not got or page.get("isLastPage", True):
                return pages

    # ----- transport: client, retries, errors -----

    def _call(self, what: str, operation: Callable[[JIRA], T]) -> T:
        """Run one request with bounded retries; JiraUnavailable when Jira cannot answer."""
        retrying = Retrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            before_sleep=lambda state: log.debug(
                "jira.retry what=%s attempt=%d reason=%s", what, state.attempt_number, _reason(state)
            ),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._observed_attempt(what, operation)
        except _Transient as exc:
            log.warning("jira.unavailable url=%s what=%s reason=%s", self._url, what, exc.reason)
            raise JiraUnavailable(
                f"Jira at {self._url} did not answer the {what} request after {self._retries + 1} attempts "
                f"({exc.reason}); it may be down or overloaded, try again later",
                kind=exc.kind,
                status=exc.status,
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _observed_attempt(self, what: str, operation: Callable[[JIRA], T]) -> T:
        try:
            result = self._attempt(operation)
        except _Transient as exc:
            _observed(what, exc.kind)
            raise
        except JiraUnavailable as exc:
            _observed(what, exc.kind)
            raise
        except Exception:
            _observed(what, "rejected")
            raise
        _observed(what, None)
        return result

    def _attempt(self, operation: Callable[[JIRA], T]) -> T:
        try:
            return operation(self._get_client())
        except JIRAError as exc:
            status = exc.status_code
            if status in (401, 403):
                self._drop_client()
                log.warning("jira.unavailable url=%s reason=credentials status=%s", self._url, status)
                raise JiraUnavailable(
                    f"Jira rejected the credentials (HTTP {status}) at {self._url}; "
                    "check the configured Jira user and API token",
                    kind="credentials",
                    status=status,
                ) from None
            if status is None or status == 429 or status >= 500:
                raise _Transient(f"HTTP {status}", _retry_after(exc.response), status=status) from None
            raise
        except requests.Timeout:
            self._drop_client()
            raise _Transient(f"no answer within {self._timeout:g} s", kind="timeout") from None
        except requests.ConnectionError:
            self._drop_client()
            raise _Transient("connection failed", kind="connection") from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_RETRY_AFTER)
        return float(min(self._backoff * 2 ** (state.attempt_number - 1), MAX_BACKOFF))

    def _get_client(self) -> JIRA:
        with self._client_lock:
            if self._client is None:
                log.debug("jira.connect url=%s auth=%s", self._url, self._auth_kind())
                kwargs: dict[str, Any] = {}
                if self._user and self._token:
                    kwargs["basic_auth"] = (self._user, self._token)
                elif self._token:
                    kwargs["token_auth"] = self._token
                # Construction reads serverInfo (deploymentType decides the search endpoint).
                self._client = JIRA(
                    server=self._url,
                    timeout=self._timeout,
                    max_retries=0,
                    get_server_info=True,
                    options={"check_update": False},
                    **kwargs,
                )
            return self._client

    def _drop_client(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]

    def _auth_kind(self) -> str:
        if self._user and self._token:
            return "basic"
        return "bearer" if self._token else "anonymous"


def _request(method: str, *args: Any, **kwargs: Any) -> Callable[[JIRA], dict[str, Any]]:
    """One JSON request through the client, its arguments bound now (not when a loop has moved on)."""

    def run(client: JIRA) -> dict[str, Any]:
        result: dict[str, Any] = getattr(client, method)(*args, **kwargs)
        return result

    return run


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_messages(exc: JIRAError) -> list[str]:
    try:
        body = exc.response.json() if exc.response is not None else {}
    except ValueError:
        return []
    messages = body.get("errorMessages") if isinstance(body, dict) else None
    return [str(m) for m in messages] if isinstance(messages, list) else []


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _reason(state: RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return exc.reason if isinstance(exc, _Transient) else repr(exc)
