"""The console's search index: rows copied out of each `deployment_decision` entry into the `search_*` tables.

Written in the transaction that appends the entry (the deploy gate calls `index_entry` with its session), and for
entries that predate the index by migration 0013 (`backfill`). Searching then reads only these narrow tables:
which commits a release contained, its tickets, the people it names and in which role, the ref it deployed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gating.ledger import LedgerEntryView, chain
from gating.models import (
    LedgerEntry,
    SearchCommit,
    SearchDeployment,
    SearchPerson,
    SearchRepository,
    SearchTicket,
    SearchVersion,
)

KIND = "deployment_decision"
ROLES = ("requester", "approver", "author", "committer")
_HEX = re.compile(r"^[0-9a-f]{7,64}$")
# Column widths: evidence from GitHub and Jira is not ours to bound, and an over-long value must never make the
# decision's transaction fail; a truncated identifier still finds the entry by its first 200 characters.
_IDENTITY, _VERSION, _TICKET, _REF = 200, 300, 100, 300
_REF_PREFIXES = ("refs/tags/", "refs/heads/")


@dataclass
class IndexRows:
    """The rows one entry adds to each search table."""

    deployment: dict[str, Any]
    commits: set[str] = field(default_factory=set)
    tickets: set[str] = field(default_factory=set)
    people: set[tuple[str, str]] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)


def _text(value: Any) -> str | None:
    """A non-blank string as the database can store it: half an emoji (a lone surrogate, which GitHub and Jira do
    send) and NUL, which PostgreSQL refuses in text, are replaced; the ledger itself keeps the original."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def versions_of(ref: str | None) -> set[str]:
    """The names a deployed ref is searched by: as given, and without `refs/tags/` or `refs/heads/`."""
    if not ref:
        return set()
    names = {ref}
    for prefix in _REF_PREFIXES:
        if ref.startswith(prefix) and len(ref) > len(prefix):
            names.add(ref[len(prefix) :])
    return {name.lower()[:_VERSION] for name in names}


def _identities(person: Any) -> set[str]:
    """Every identifier a person is recorded with: a GitHub login, name or e-mail; a Jira accountId, username,
    display name or e-mail (Jira's and GitHub's keys alike)."""
    if isinstance(person, str):
        values: list[Any] = [person]
    else:
        record = _dict(person)
        values = [record.get(k) for k in ("login", "name", "email", "accountId", "emailAddress", "displayName", "key")]
    return {text.strip().lower()[:_IDENTITY] for v in values if (text := _text(v))}


def _approvers(ticket: Mapping[str, Any]) -> set[str]:
    """Who approved a ticket: the names the evidence shows, and the identifiers of the raw Jira record (the
    changelog entry's author; the Service Management approvers who approved)."""
    labels = _list(ticket.get("approvers"))
    if not labels:
        return set()  # not approved: a JSM record may still name people who have not (or declined)
    found: set[str] = set()
    for label in labels:
        found |= _identities(label)
    record = _dict(ticket.get("approval_record"))
    if "author" in record:
        found |= _identities(record["author"])
    for entry in _list(record.get("approvers")):
        entry = _dict(entry)
        if entry.get("approverDecision") == "approved":
            found |= _identities(entry.get("approver"))
    return found


def rows_for(
    *,
    entry_id: int,
    sequence: int,
    recorded_at: datetime,
    repository: str | None,
    environment: str | None,
    deployment_id: int | None,
    sha: str | None,
    decision: str | None,
    evidence: Mapping[str, Any],
) -> IndexRows:
    """The index rows of one deployment decision; tolerant of any evidence shape (an error decision has no commits;
    entries written by older versions may lack fields)."""
    ref = _text(evidence.get("ref"))
    requester = _text(evidence.get("requester"))
    tickets = [_text(_dict(t).get("key")) for t in _list(evidence.get("tickets"))]
    keys = [key for key in tickets if key]
    commits = [_dict(c) for c in _list(evidence.get("commits"))]
    rows = IndexRows(
        deployment={
            "sequence": sequence,
            "entry_id": entry_id,
            "repository": repository,
            "environment": environment,
            "deployment_id": deployment_id,
            "sha": sha,
            "decision": decision,
            "ref": ref[:_REF] if ref else None,
            "requester": requester[:_IDENTITY] if requester else None,
            "recorded_at": recorded_at,
            "tickets": " ".join(keys),
            "commit_count": len(commits),
        }
    )
    for candidate in [sha, *(c.get("sha") for c in commits)]:
        if isinstance(candidate, str) and _HEX.match(candidate.lower()):
            rows.commits.add(candidate.lower())
    rows.tickets = {key.upper()[:_TICKET] for key in keys}
    rows.people = {("requester", identity) for identity in _identities(requester or "")}
    for commit in commits:
        rows.people |= {("author", identity) for identity in _identities(commit.get("author"))}
        rows.people |= {("committer", identity) for identity in _identities(commit.get("committer"))}
    for ticket in _list(evidence.get("tickets")):
        rows.people |= {("approver", identity) for identity in _approvers(_dict(ticket))}
    rows.versions = versions_of(ref)
    return rows


def rows_of(entry: LedgerEntryView, evidence: Mapping[str, Any] | None = None) -> IndexRows:
    """The index rows of a ledger entry; its evidence decoded from the stored text unless given."""
    data = evidence if evidence is not None else entry.data
    return rows_for(
        entry_id=entry.id,
        sequence=entry.sequence,
        recorded_at=entry.created_at,
        repository=entry.repository,
        environment=entry.environment,
        deployment_id=entry.deployment_id,
        sha=entry.sha,
        decision=entry.decision,
        evidence=_dict(data),
    )


def _key(rows: IndexRows, repository: bool) -> dict[str, Any]:
    """What every child row of a decision starts with: its sequence and, unless the schema predates migration 0016,
    its repository lower-case (how a scope compares it), so a scoped search by a child filter needs no other table."""
    key: dict[str, Any] = {"sequence": rows.deployment["sequence"]}
    if repository:
        name = rows.deployment["repository"]
        key["repository"] = name.lower() if isinstance(name, str) else None
    return key


def statements(batch: Iterable[IndexRows], *, repository: bool = True) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(table, rows) pairs for bulk inserts of `batch`; tables with no rows are left out. `repository` False leaves
    the child rows' repository out, for migration 0013's backfill, which runs before 0016 adds that column."""
    found = list(batch)
    deployments = [rows.deployment for rows in found]
    commits = [_key(r, repository) | {"sha": sha} for r in found for sha in sorted(r.commits)]
    tickets = [_key(r, repository) | {"ticket_key": key} for r in found for key in sorted(r.tickets)]
    people = [
        _key(r, repository) | {"role": role, "identity": identity} for r in found for role, identity in sorted(r.people)
    ]
    versions = [_key(r, repository) | {"version": v} for r in found for v in sorted(r.versions)]
    for table, rows in (
        (SearchDeployment.__table__, deployments),
        (SearchCommit.__table__, commits),
        (SearchTicket.__table__, tickets),
        (SearchPerson.__table__, people),
        (SearchVersion.__table__, versions),
    ):
        if rows:
            yield table, rows


def index_entry(session: Session, entry: LedgerEntryView, evidence: Mapping[str, Any] | None = None) -> None:
    """Index a deployment decision inside the transaction that appended it; other kinds are not searched."""
    if entry.kind != KIND:
        return
    for table, rows in statements([rows_of(entry, evidence)]):
        session.execute(insert(table), rows)
    if entry.repository:
        session.execute(add_repositories(session.get_bind().dialect.name), [{"name": entry.repository}])


def add_repositories(dialect: str) -> Any:
    """An INSERT into search_repositories that skips names already there: two workers deciding deployments of one
    new repository at once must both succeed."""
    if dialect == "postgresql":
        return postgresql.insert(SearchRepository).on_conflict_do_nothing()
    return sqlite.insert(SearchRepository).on_conflict_do_nothing()


def backfill(connection: Connection, *, batch: int = 500, repository: bool = True) -> int:
    """Index every deployment decision not yet indexed, `batch` entries at a time (never the whole ledger in
    memory); returns how many were indexed. Used by the migration that creates the index (with `repository`
    False: the child tables' repository column comes with migration 0016, which fills it itself)."""
    done = 0
    after = 0
    indexed = select(SearchDeployment.sequence).where(SearchDeployment.sequence == LedgerEntry.sequence).exists()
    while True:
        found = connection.execute(
            select(
                LedgerEntry.id,
                LedgerEntry.sequence,
                LedgerEntry.created_at,
                LedgerEntry.repository,
                LedgerEntry.environment,
                LedgerEntry.deployment_id,
                LedgerEntry.sha,
                LedgerEntry.decision,
                LedgerEntry.payload,
            )
            .where(LedgerEntry.kind == KIND, LedgerEntry.sequence > after, ~indexed)
            .order_by(LedgerEntry.sequence)
            .limit(batch)
        ).all()
        if not found:
            _backfill_repositories(connection)
            return done
        batch_rows = []
        for row in found:
            try:
                evidence = chain.read_envelope(chain.parse(row.payload))["payload"]
            except (ValueError, KeyError, TypeError):
                evidence = {}  # an entry that does not decode is still listed; verification names it
            batch_rows.append(
                rows_for(
                    entry_id=row.id,
                    sequence=row.sequence,
                    recorded_at=row.created_at,
                    repository=row.repository,
                    environment=row.environment,
                    deployment_id=row.deployment_id,
                    sha=row.sha,
                    decision=row.decision,
                    evidence=_dict(evidence),
                )
            )
        for table, rows in statements(batch_rows, repository=repository):
            connection.execute(insert(table), rows)
        done += len(found)
        after = found[-1].sequence


def _backfill_repositories(connection: Connection) -> None:
    """The repositories of what is indexed, from the index (one name each, however many decisions)."""
    known = select(SearchRepository.name).where(SearchRepository.name == SearchDeployment.repository).exists()
    names = select(SearchDeployment.repository).where(SearchDeployment.repository.is_not(None), ~known).distinct()
    connection.execute(insert(SearchRepository).from_select(["name"], names))
