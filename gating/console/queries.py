"""What the console reads from the database: deployment decisions by search (of the `search_*` index tables,
see gating.console.index), the per-environment timeline, the ledger's state, open emergency changes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from gating.console.index import KIND
from gating.console.scope import EVERYTHING, Scope
from gating.db import Database
from gating.ledger import LedgerEntryView, chain
from gating.models import (
    Emergency,
    LedgerEntry,
    SearchCommit,
    SearchDeployment,
    SearchPerson,
    SearchRepository,
    SearchTicket,
    SearchVersion,
)
from gating.policy.emergency import is_overdue

DECISIONS = ("approved", "rejected", "emergency")
SHIPPED = ("approved", "emergency")  # decisions that let a deployment go ahead
DEFAULT_LIMIT = 50
# A search counts its matches up to this many: a count costs what it counts (a third of a million-entry ledger
# is 100 ms and more), and past this many an exact figure answers no auditor's question that a narrower search or
# an export does not answer better. Beyond it the total is reported as "more than" (`total_exact` false).
COUNT_LIMIT = 10_000
MAX_LIMIT = 500
MIN_SHA_PREFIX = 7
# Every parameter a search takes; anything else is refused, so a misspelt filter never silently shows everything.
PARAMETERS = (
    "repo",
    "environment",
    "ticket",
    "sha",
    "requester",
    "approver",
    "author",
    "version",
    "since",
    "until",
    "decision",
    "page",
    "per_page",
    "limit",
)
_SHA = re.compile(r"^[0-9a-fA-F]+$")
_TICKET = re.compile(r"^[A-Za-z][A-Za-z0-9_]+-[0-9]+$")
_LONGEST = {"repo": 200, "environment": 200, "requester": 200, "approver": 200, "author": 200, "version": 300}


def iso(value: datetime | None) -> str | None:
    """A stored time as the API shows it: UTC, to the second."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BadParameter(ValueError):
    """A search parameter that cannot be understood; `name` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class DeploymentQuery:
    """A search: every filter given must match. `sha` is a commit anywhere inside the release (7 or more hex
    characters, a prefix); `ticket` a whole key; people and versions match without regard to case."""

    repo: str | None = None
    environment: str | None = None
    ticket: str | None = None
    sha: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    limit: int | None = DEFAULT_LIMIT  # the page size; None: no limit (streaming exports)
    requester: str | None = None
    approver: str | None = None
    author: str | None = None  # an author or committer of a commit in the release
    version: str | None = None  # the deployed ref: `v1.2.0`, `refs/tags/v1.2.0`, `main`
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, max_limit: int | None = MAX_LIMIT) -> DeploymentQuery:
        """From query-string style arguments; blank values are ignored. Raises BadParameter for an unknown
        parameter, one given twice, or a value that cannot be understood."""
        unknown = sorted(set(args) - set(PARAMETERS))
        if unknown:
            raise BadParameter(unknown[0], f"unknown parameter; the search takes {', '.join(PARAMETERS)}")
        getlist = getattr(args, "getlist", None)
        if getlist is not None:
            for name in args:
                if len(getlist(name)) > 1:
                    raise BadParameter(name, "given more than once; give it once")

        def text(name: str) -> str | None:
            value = (args.get(name) or "").strip()
            if value and len(value) > _LONGEST.get(name, 200):
                raise BadParameter(name, f"longer than {_LONGEST.get(name, 200)} characters")
            return value or None

        def lower(name: str) -> str | None:
            value = text(name)
            return value.lower() if value else None

        decision = lower("decision")
        if decision is not None and decision not in DECISIONS:
            raise BadParameter("decision", f"{decision!r} is not one of {', '.join(DECISIONS)}")
        sha = text("sha")
        if sha is not None:
            if not _SHA.match(sha) or len(sha) > 64:
                raise BadParameter("sha", f"{sha!r} is not a hexadecimal commit SHA or prefix")
            if len(sha) < MIN_SHA_PREFIX:
                raise BadParameter(
                    "sha", f"{sha!r} is too short: give at least {MIN_SHA_PREFIX} hexadecimal characters"
                )
        ticket = text("ticket")
        if ticket is not None and not _TICKET.match(ticket):
            raise BadParameter("ticket", f"{ticket!r} is not a Jira key such as PAY-123")
        limit = _count(args, "per_page", DEFAULT_LIMIT, max_limit)
        if "per_page" not in args or not (args.get("per_page") or "").strip():
            limit = _count(args, "limit", DEFAULT_LIMIT, max_limit)  # the name the API first had
        since = parse_when(text("since"), "since")
        until = parse_when(text("until"), "until", end_of_day=True)
        if since is not None and until is not None and until <= since:
            raise BadParameter("until", "must be later than since")
        return cls(
            repo=text("repo"),
            environment=text("environment"),
            ticket=ticket.upper() if ticket else None,
            sha=sha.lower() if sha else None,
            since=since,
            until=until,
            decision=decision,
            limit=limit,
            requester=lower("requester"),
            approver=lower("approver"),
            author=lower("author"),
            version=lower("version"),
            page=_count(args, "page", 1, None) or 1,
        )

    def filters(self) -> dict[str, str]:
        """The query's filters as query-string values (for links to other pages of the same search)."""
        found = {
            name: getattr(self, name)
            for name in ("repo", "environment", "ticket", "sha", "requester", "approver", "author", "version")
        }
        found["decision"] = self.decision
        found["since"] = iso(self.since)
        found["until"] = iso(self.until)
        return {name: value for name, value in found.items() if value is not None}


def _count(args: Mapping[str, str], name: str, default: int, most: int | None) -> int:
    raw = (args.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{raw!r} is not an integer") from None
    if value < 1 or (most is not None and value > most):
        raise BadParameter(name, f"must be between 1 and {most}" if most is not None else "must be 1 or more")
    return value


def parse_when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """ISO-8601 date or datetime, as UTC when it names no zone. A bare date as an upper bound covers that day."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(0), tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadParameter(
            name, f"{value!r} is not an ISO-8601 date or datetime (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sha_condition(prefix: str) -> ColumnElement[bool]:
    if len(prefix) in (40, 64):
        return SearchCommit.sha == prefix
    # Every SHA with this prefix sorts between the prefix and the prefix padded with f: a range of the index.
    return SearchCommit.sha.between(prefix, prefix + "f" * (64 - len(prefix)))


def _indexed(query: DeploymentQuery, scope: Scope = EVERYTHING) -> list[Select[Any]]:
    """The sequences of the entries each index filter selects, within `scope`: each child row carries its decision's
    repository (lower-case), so the scope is tested in the child's index (filter columns, repository, sequence) and
    never by looking each match up in search_deployments. A row without it (NULL) is outside every scope."""
    found: list[Select[Any]] = []
    if query.ticket is not None:
        found.append(
            select(SearchTicket.sequence).where(
                SearchTicket.ticket_key == query.ticket, scope.clause(SearchTicket.repository)
            )
        )
    if query.sha is not None:
        found.append(
            select(SearchCommit.sequence).where(_sha_condition(query.sha), scope.clause(SearchCommit.repository))
        )
    for roles, value in (
        (("requester",), query.requester),
        (("approver",), query.approver),
        (("author", "committer"), query.author),
    ):
        if value is not None:
            role = SearchPerson.role == roles[0] if len(roles) == 1 else SearchPerson.role.in_(roles)
            found.append(
                select(SearchPerson.sequence).where(
                    SearchPerson.identity == value, role, scope.clause(SearchPerson.repository)
                )
            )
    if query.version is not None:
        found.append(
            select(SearchVersion.sequence).where(
                SearchVersion.version == query.version, scope.clause(SearchVersion.repository)
            )
        )
    return found


def visible_repositories(session: Session, scope: Scope) -> list[str] | None:
    """The repositories with decisions that `scope` admits; None when it admits every one."""
    if scope.everything:
        return None
    return [name for name in session.scalars(select(SearchRepository.name)) if scope.allows(name)]


def _scoped(scope: Scope, repositories: list[str] | None) -> list[ColumnElement[bool]]:
    row = SearchDeployment
    conditions = [scope.clause(row.repository)]
    if repositories is not None:
        # The same scope as names: the repository index finds their rows, where the patterns would test each row.
        conditions.append(row.repository.in_(repositories))
    return conditions


def search_conditions(
    query: DeploymentQuery, scope: Scope, repositories: list[str] | None = None, *, probe: bool = False
) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a search of the index within `scope` (the viewer's repositories, always applied;
    `repositories`: the names it admits, from `visible_repositories`, to let the index do the work)."""
    row = SearchDeployment
    indexed = _indexed(query, scope)
    # A commit, ticket, person or version: its index table applies the scope to its own copy of the repository
    # (`_indexed`), and every decision it selects is within the scope; testing search_deployments' repository too
    # would cost one lookup per match, to count them. Otherwise the scope is tested here.
    conditions = [] if indexed else _scoped(scope, repositories if query.repo is None else None)
    for column, value in (
        (row.repository, query.repo),
        (row.environment, query.environment),
        (row.decision, query.decision),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.since is not None:
        conditions.append(row.recorded_at >= query.since)
    if query.until is not None:
        conditions.append(row.recorded_at < query.until)
    if probe:
        # Each decision looked up in the child's index (it leads with the value, then the sequence), rather than
        # every match of the child collected first: for a child filter matching many decisions, a page of the
        # others is found after a few lookups. SQLite otherwise builds the whole list (a scoped author: 35,000).
        conditions.extend(selected.where(selected.selected_columns[0] == row.sequence).exists() for selected in indexed)
    else:
        conditions.extend(row.sequence.in_(selected) for selected in indexed)
    return conditions


def _only_in_index(query: DeploymentQuery, scope: Scope) -> Select[Any] | None:
    """The sequences a single child filter selects (the scope included, `_indexed`), when it is all the search
    has: the page and the count are then answered from that child's index alone. None otherwise.

    The select is DISTINCT: a decision is one sequence, but an author is also a committer, and a SHA prefix may
    match several commits of one release."""
    indexed = _indexed(query, scope)
    others = (query.repo, query.environment, query.decision, query.since, query.until)
    if len(indexed) != 1 or any(value is not None for value in others):
        return None
    return indexed[0].distinct()


def _counted_in_index(query: DeploymentQuery, scope: Scope, most: int) -> Select[Any] | None:
    """How many decisions match, up to `most`, from one child index alone (`_only_in_index`); None when the count
    needs search_deployments."""
    only = _only_in_index(query, scope)
    return None if only is None else select(func.count()).select_from(only.limit(most).subquery())


def deployment_conditions(query: DeploymentQuery, scope: Scope) -> list[ColumnElement[bool]]:
    """The same search as WHERE clauses on `ledger_entries` (exports stream the entries themselves)."""
    conditions = [LedgerEntry.kind == KIND, scope.clause(LedgerEntry.repository)]
    if query.repo is not None:
        conditions.append(LedgerEntry.repository == query.repo)
    if query.environment is not None:
        conditions.append(LedgerEntry.environment == query.environment)
    if query.decision is not None:
        conditions.append(LedgerEntry.decision == query.decision)
    if query.since is not None:
        conditions.append(LedgerEntry.created_at >= query.since)
    if query.until is not None:
        conditions.append(LedgerEntry.created_at < query.until)
    conditions.extend(LedgerEntry.sequence.in_(selected) for selected in _indexed(query))
    return conditions


@dataclass(frozen=True)
class SearchPage:
    """One page of a search: its deployments (newest first), how many match in all, and where the others are."""

    deployments: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    query: DeploymentQuery
    exact: bool = True  # false: more than `total` match (past COUNT_LIMIT, or not counted), the last page unknown

    def link(self, path: str, page: int) -> str:
        """`path` with this search's filters, at `page`."""
        return f"{path}?{urlencode(self.query.filters() | {'page': str(page), 'per_page': str(self.per_page)})}"

    def paging(self, path: str) -> dict[str, Any]:
        """What the API answer and the dashboard say of the page: total, page, per_page, pages and links."""
        return {
            "total": self.total,
            "total_exact": self.exact,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
            "links": self.links(path),
        }

    def links(self, path: str) -> dict[str, str | None]:
        return {
            "self": self.link(path, self.page),
            "first": self.link(path, 1),
            "prev": self.link(path, self.page - 1) if self.has_prev else None,
            "next": self.link(path, self.page + 1) if self.has_next else None,
            "last": self.link(path, self.pages) if self.exact else None,
        }

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        if not self.exact:  # past the counted matches: a full page says there may be more
            return self.page < self.pages or len(self.deployments) == self.per_page
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def listed(row: SearchDeployment, matched: list[str] | None = None) -> dict[str, Any]:
    """A decision as a search lists it: the keys of `dossiers.summary`, read from the index alone."""
    found: dict[str, Any] = {
        "id": row.entry_id,
        "recorded_at": chain.format_time(row.recorded_at),
        "repository": row.repository,
        "environment": row.environment,
        "deployment_id": row.deployment_id,
        "sha": row.sha,
        "decision": row.decision,
        "ref": row.ref,
        "requester": row.requester,
        "tickets": row.tickets.split(),
        "commit_count": row.commit_count,
        "links": {"self": f"/api/v1/deployments/{row.entry_id}", "page": f"/deployments/{row.entry_id}"},
    }
    if matched is not None:
        # "When did this change ship?": which of the release's commits the SHA searched for names.
        found["matched_commits"] = matched
    return found


def search_page(db: Database, query: DeploymentQuery, scope: Scope) -> SearchPage:
    """The page `query.page` of deployment decisions in `scope` matching `query`, newest first, with the total."""
    per_page = query.limit or DEFAULT_LIMIT
    offset = (query.page - 1) * per_page
    with db.session() as session:
        only = _only_in_index(query, scope)
        many = only is None and _each_matches_more_than(session, _indexed(query, scope), COUNT_LIMIT)
        conditions = search_conditions(query, scope, visible_repositories(session, scope), probe=many)
        # One row more than the page: whether any follow, so that a last page needs no count at all.
        if only is not None:
            # The page's sequences from the child's index, newest first, then their rows: a join from the child
            # would read every match (66,000 for a scoped approver over a million decisions) to sort them.
            (column,) = only.selected_columns
            newest = only.order_by(column.desc()).limit(per_page + 1).offset(offset)
            statement = select(SearchDeployment).where(SearchDeployment.sequence.in_(newest.scalar_subquery()))
        else:
            statement = select(SearchDeployment).where(*conditions).offset(offset)
        rows = list(session.scalars(statement.order_by(SearchDeployment.sequence.desc()).limit(per_page + 1)))
        more = len(rows) > per_page
        rows = rows[:per_page]
        total, exact = _total(session, query, scope, conditions, offset, len(rows), more, many)
        matched: dict[int, list[str]] = {}
        if query.sha is not None and rows:
            for sequence, sha in session.execute(
                select(SearchCommit.sequence, SearchCommit.sha)
                .where(SearchCommit.sequence.in_([r.sequence for r in rows]), _sha_condition(query.sha))
                .order_by(SearchCommit.sha)
            ):
                matched.setdefault(sequence, []).append(sha)
    deployments = [listed(row, matched.get(row.sequence, []) if query.sha is not None else None) for row in rows]
    return SearchPage(deployments, total, query.page, per_page, query, exact)


def _total(
    session: Session,
    query: DeploymentQuery,
    scope: Scope,
    conditions: list[ColumnElement[bool]],
    offset: int,
    shown: int,
    more: bool,
    many: bool,
) -> tuple[int, bool]:
    """How many decisions match, and whether that is exact: this page shows `shown` after `offset` on the pages
    before it, `more` says whether any follow. Not exact means "more than" the figure: past COUNT_LIMIT, or not
    counted at all."""
    reached = offset + shown
    if not more and (shown or query.page == 1):
        return reached, True  # this is the last page: nothing to count
    most = COUNT_LIMIT + 1  # one more than is reported: whether there are more
    counted = _counted_in_index(query, scope, most)
    if counted is None:
        if more and many:
            # A person, ticket, commit or version matching more decisions than are counted, with other filters
            # besides: counting both together reads every one of the child's matches (a scoped author and an
            # environment over a million decisions: 150 ms), so the answer is "more than" what the pages hold.
            return reached, False
        matching = select(SearchDeployment.sequence).where(*conditions).limit(most).subquery()
        counted = select(func.count()).select_from(matching)
    total = int(session.scalar(counted) or 0)
    return min(total, COUNT_LIMIT), total <= COUNT_LIMIT


def _each_matches_more_than(session: Session, children: list[Select[Any]], count: int) -> bool:
    """Whether there are child filters and each selects more than `count` decisions (reading at most one more
    than that of each): then no one of them narrows the search down to a list worth collecting."""
    for child in children:
        found = session.scalar(select(func.count()).select_from(child.distinct().limit(count + 1).subquery()))
        if int(found or 0) <= count:
            return False
    return bool(children)


def search_deployments(db: Database, query: DeploymentQuery, scope: Scope) -> list[LedgerEntryView]:
    """The entries of `search_page`'s page, newest first, for callers that want the entries themselves."""
    ids = [d["id"] for d in search_page(db, query, scope).deployments]
    statement = select(LedgerEntry).where(LedgerEntry.id.in_(ids)).order_by(LedgerEntry.sequence.desc())
    with db.session() as session:
        return [LedgerEntryView.of(row) for row in session.scalars(statement)]


def stream_deployments(
    db: Database, query: DeploymentQuery, scope: Scope, *, through: int | None = None, chunk: int = 500
) -> Iterator[LedgerEntryView]:
    """Deployment decisions matching `query`, oldest first, read `chunk` at a time (never all at once); with
    `through`, only entries up to that sequence."""
    conditions = deployment_conditions(query, scope)
    if through is not None:
        conditions.append(LedgerEntry.sequence <= through)
    after = 0
    while True:
        statement = (
            select(LedgerEntry)
            .where(*conditions, LedgerEntry.sequence > after)
            .order_by(LedgerEntry.sequence)
            .limit(chunk)
        )
        with db.session() as session:
            views = [LedgerEntryView.of(row) for row in session.scalars(statement)]
        yield from views
        if len(views) < chunk:
            return
        after = views[-1].sequence


def timeline(
    db: Database, scope: Scope, *, repo: str | None = None, per_environment: int = 10, environments: int = 8
) -> list[dict[str, Any]]:
    """What reached each environment, when: the latest deployments let through (approved or emergency) per
    environment, newest first; environments in the order they were last deployed to."""
    row = SearchDeployment
    found: list[dict[str, Any]] = []
    with db.session() as session:
        shipped = [*_scoped(scope, visible_repositories(session, scope)), row.decision.in_(SHIPPED)]
        shipped.append(row.environment.is_not(None))
        if repo is not None:
            shipped.append(row.repository == repo)
        # The environments of the latest few hundred: bounded, where a DISTINCT would read the whole index.
        recent = session.scalars(select(row.environment).where(*shipped).order_by(row.sequence.desc()).limit(500))
        names = list(dict.fromkeys(recent))[:environments]
        for name in names:
            rows = session.scalars(
                select(row)
                .where(*shipped, row.environment == name)
                .order_by(row.sequence.desc())
                .limit(per_environment)
            )
            found.append({"environment": name, "deployments": [listed(r) for r in rows]})
    return found


def emergency_listing(
    db: Database, now: datetime, scope: Scope, *, overdue: bool | None = None
) -> list[dict[str, Any]]:
    """Unresolved emergency changes in `scope`, earliest deadline first; `overdue` True/False keeps only those
    past/before it."""
    statement = (
        select(Emergency)
        .where(Emergency.resolved_at.is_(None), scope.clause(Emergency.repository))
        .order_by(Emergency.deadline, Emergency.id)
    )
    found = []
    with db.session() as session:
        for row in session.scalars(statement):
            deadline = row.deadline
            late = is_overdue(deadline, now)
            if overdue is not None and late != overdue:
                continue
            found.append(
                {
                    "id": row.id,
                    "repository": row.repository,
                    "environment": row.environment,
                    "deployment_id": row.deployment_id,
                    "sha": row.sha,
                    "tickets": row.tickets.split(),
                    "deadline": iso(deadline),
                    "overdue": late,
                    "created_at": iso(row.created_at),
                    "ledger_entry_id": row.ledger_entry_id,
                    "links": {"page": f"/deployments/{row.ledger_entry_id}"},
                }
            )
    return found
