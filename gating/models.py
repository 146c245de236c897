"""Database tables: deliveries (and the job queue), PR and check-run records, ticket changes, the ledger, API tokens,
legal holds, periodic runs, console sessions, the cached ledger verification and the console's search index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC and always read back aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset: without this, values come back naive and an aware value in another zone
    would be stored with its local wall-clock time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Countersign stores aware UTC datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Delivery(Base):
    """One webhook delivery, keyed by the sender's id so that a redelivery is recognised; with its payload,
    it is also a job: queued until a worker claims it for a lease, then completed or failed."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_runnable", "queue", "status", "received_at"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # "github:<X-GitHub-Delivery>"
    source: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(String(100))
    action: Mapped[str | None] = mapped_column(String(100))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # queued | processing | completed | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str | None] = mapped_column(Text)  # the JSON as received
    queue: Mapped[str] = mapped_column(String(20), default="merge")  # merge | deploy
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a worker holds it until then


class PullRequestTicket(Base):
    """Which open PRs reference which tickets, so a Jira change re-evaluates the right PRs."""

    __tablename__ = "pull_request_tickets"
    __table_args__ = (
        UniqueConstraint("repository", "number", "ticket_key", name="uq_pr_ticket"),
        Index("ix_pr_ticket_key", "ticket_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    ticket_key: Mapped[str] = mapped_column(String(100))
    installation_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CheckRunRecord(Base):
    """The check run published for a head SHA, and the latest verdict it shows.

    The row is written before the check run is created (a claim, with a lease), so that however many
    processes evaluate a head, one creates its check run and the others adopt it; `published_as_of`
    is what publishing compares and sets, so an older evaluation never replaces a newer one.
    """

    __tablename__ = "check_runs"
    __table_args__ = (UniqueConstraint("repository", "head_sha", "check_name", name="uq_check_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(200))
    head_sha: Mapped[str] = mapped_column(String(64))
    check_name: Mapped[str] = mapped_column(String(100))
    check_run_id: Mapped[int | None] = mapped_column(BigInteger)  # None while the claimant creates it
    pull_number: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(20))
    title: Mapped[str | None] = mapped_column(Text)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(64))  # who is creating a check run now
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when others may take over
    published_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the shown verdict's facts date from


class TicketChange(Base):
    """When each Jira ticket last changed, as its webhook told one of the processes.

    Every process reads it before trusting its own cached copy of a ticket: a webhook reaches only
    one process, and only that one could otherwise know the copy is stale.
    """

    __tablename__ = "ticket_changes"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LedgerEntry(Base):
    """One evidence ledger entry: the exact hashed text plus columns copied out of it for searching."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("sequence", name="uq_ledger_sequence"),
        # A unique prev_hash stops two writers that read the same head from forking the chain.
        UniqueConstraint("prev_hash", name="uq_ledger_prev_hash"),
        Index("ix_ledger_repository", "repository"),
        Index("ix_ledger_environment", "environment"),
        Index("ix_ledger_deployment_id", "deployment_id"),
        Index("ix_ledger_sha", "sha"),
        Index("ix_ledger_decision", "decision"),
        # The kind with the sequence: "the first entry of this kind" (the first key change, which every dossier
        # view's verification looks up) is one index range even where statistics say a kind matches every entry.
        Index("ix_ledger_kind_sequence", "kind", "sequence"),
        Index("ix_ledger_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # the exact text hashed, never re-serialised
    signature: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    repository: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(200))
    deployment_id: Mapped[int | None] = mapped_column(BigInteger)
    sha: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class ApiToken(Base):
    """A bearer token for /api/v1, stored only as its SHA-256."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("name", name="uq_api_token_name"),
        UniqueConstraint("token_sha256", name="uq_api_token_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    token_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    repositories: Mapped[str | None] = mapped_column(Text)  # comma-separated patterns; NULL: every repository
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # to the minute: written at most that often


class ConsoleSession(Base):
    """A person signed in to the console: the cookie holds a random id, this row what it may see.

    Kept server-side so that no provider token, and no list of hundreds of repository names, rides in a cookie, and
    so that signing out ends the session for good (a copied cookie is worthless once its row is gone).
    """

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires", "expires_at"),)

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # of the cookie's id, never the id itself
    provider: Mapped[str] = mapped_column(String(20), nullable=False)  # github | oidc
    subject: Mapped[str] = mapped_column(String(200), nullable=False)  # the GitHub login, or the OIDC e-mail/sub
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    repositories: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of names or patterns
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class DeploymentDecision(Base):
    """Countersign's answer to one protection-rule request (a run attempt): decided once, sent once."""

    __tablename__ = "deployment_decisions"
    __table_args__ = (
        UniqueConstraint("repository", "environment", "run_id", "run_attempt", name="uq_deployment_decision"),
        Index("ix_deployment_decision_latest", "repository", "environment", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(200), nullable=False)
    environment: Mapped[str] = mapped_column(String(200), nullable=False)
    run_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    run_attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)  # a re-run keeps the run id
    deployment_id: Mapped[int | None] = mapped_column(BigInteger)
    sha: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)  # approved | rejected
    comment: Mapped[str] = mapped_column(Text, nullable=False)
    callback_url: Mapped[str | None] = mapped_column(Text)
    ledger_entry_id: Mapped[int] = mapped_column(Integer, nullable=False)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    callback_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Emergency(Base):
    """An emergency change that shipped unapproved, until its tickets are approved after the fact."""

    __tablename__ = "emergencies"
    __table_args__ = (Index("ix_emergency_open", "resolved_at", "deadline"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ledger_entry_id: Mapped[int] = mapped_column(Integer, nullable=False)
    repository: Mapped[str] = mapped_column(String(200), nullable=False)
    environment: Mapped[str | None] = mapped_column(String(200))
    deployment_id: Mapped[int | None] = mapped_column(BigInteger)
    installation_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha: Mapped[str] = mapped_column(String(64), nullable=False)
    tickets: Mapped[str] = mapped_column(Text, nullable=False)  # space-separated keys awaiting approval
    people: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: [[role, login, name, email], ...]
    deadline: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_entry_id: Mapped[int | None] = mapped_column(Integer)


class CommitPullRequests(Base):
    """The merged PRs GitHub associates with a commit (a cache: a merged commit's PRs never change)."""

    __tablename__ = "commit_pull_requests"

    repository: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha: Mapped[str] = mapped_column(String(64), primary_key=True)
    pull_numbers: Mapped[str] = mapped_column(Text, nullable=False)  # space-separated, possibly empty
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class PeriodicRun(Base):
    """When a periodic job last ran anywhere: a process runs it only after claiming the period here."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LegalHold(Base):
    """Entries of a repository, or naming a ticket, that the retention purge must keep while the hold is in place.

    Placing and lifting a hold are ledger entries too (`legal_hold`, `legal_hold_released`): their sequences are kept
    here, so the evidence shows when each hold began and ended.
    """

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_active", "released_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str | None] = mapped_column(String(200))
    ticket: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    placed_entry: Mapped[int] = mapped_column(BigInteger, nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_entry: Mapped[int | None] = mapped_column(BigInteger)


class LedgerVerification(Base):
    """The last verification of the ledger with one trusted key (`anchor`): a cache keyed by the chain head it reached.

    A dossier view continues the walk from `sequence`/`head_hash` to the new head instead of recomputing the whole
    chain; `full_verified_at` says when every entry was last recomputed (`countersign verify`, the daily job).
    """

    __tablename__ = "ledger_verifications"

    anchor: Mapped[str] = mapped_column(String(64), primary_key=True)  # the trusted key in hex; "" for none
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)  # the last entry verified
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # its hash, as verified
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    result: Mapped[str] = mapped_column(Text, nullable=False)  # the verification, JSON, with what a walk resumes from
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    full_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    full_verified_sequence: Mapped[int | None] = mapped_column(BigInteger)  # the head the full verification reached
    full_ok: Mapped[bool | None] = mapped_column(Boolean)


class SearchDeployment(Base):
    """One deployment decision as the console lists it, copied out of its ledger entry when it is appended.

    The console's search reads only these narrow `search_*` tables, never the entries' payloads: a search over a
    million decisions stays an index lookup. Each row is keyed by its entry's ledger sequence, so a retention purge
    deletes the rows of what it purges in the same transaction (`LEDGER_DERIVED`).
    """

    __tablename__ = "search_deployments"
    __table_args__ = (
        UniqueConstraint("entry_id", name="uq_search_deployments_entry"),
        # Every search is ordered newest first: each filter column leads an index that ends in the sequence.
        Index("ix_search_deployments_repository", "repository", "sequence"),
        Index("ix_search_deployments_environment", "environment", "sequence"),
        Index("ix_search_deployments_decision", "decision", "sequence"),
        Index("ix_search_deployments_recorded_at", "recorded_at"),
        # A decision's repository by its sequence without reading its row: how a scoped viewer's search by ticket,
        # commit, person or version tests each decision it selects against the scope.
        Index("ix_search_deployments_scope", "sequence", "repository"),
    )

    # On SQLite an INTEGER primary key is the rowid: a search's rows are found by sequence in one lookup, not two.
    sequence: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    entry_id: Mapped[int] = mapped_column(Integer, nullable=False)
    repository: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(200))
    deployment_id: Mapped[int | None] = mapped_column(BigInteger)
    sha: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(30))
    ref: Mapped[str | None] = mapped_column(String(300))
    requester: Mapped[str | None] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    tickets: Mapped[str] = mapped_column(Text, nullable=False, default="")  # space-separated keys, as listed
    commit_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


# Hexadecimal SHAs compare byte by byte on PostgreSQL too, whatever the database's collation: a prefix search is
# a range scan of the index (`sha BETWEEN prefix AND prefix + 'fff…'`).
_HEX = String(64).with_variant(String(64, collation="C"), "postgresql")


class _SearchFilter:
    """What every filter table of the search index shares: rows keyed by the decision's ledger sequence and the
    filter's own key columns, and one index that answers a search by the filter, scoped or not (migration 0017).

    The index leads with the value searched for (`_lead`), then the sequence, so that its matches come newest
    first and a page stops after its rows; then the other key columns (`_trail`: a person's role) and the
    repository, tested in the index itself, never by visiting the table.
    """

    __tablename__: str
    _lead: ClassVar[tuple[str, ...]]  # the columns a search gives a value for
    _trail: ClassVar[tuple[str, ...]] = ()  # key columns a search filters on after the sequence
    _index: ClassVar[str]  # the name of the filter's index: ix_<table>_<_index>

    # Ahead of the filter's own columns, as the migrations create them: the primary key is (sequence, <keys>).
    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, sort_order=-1)
    # The decision's repository, lower-case as a scope compares it: a scoped search by this table's filter is
    # answered from its index alone, without looking each match up in search_deployments to test the scope.
    repository: Mapped[str | None] = mapped_column(String(200))

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        return (Index(f"ix_{cls.__tablename__}_{cls._index}", *cls._lead, "sequence", *cls._trail, "repository"),)


class SearchCommit(_SearchFilter, Base):
    """A commit inside a deployed release (every commit of the range, and the deployed SHA), lower-case."""

    __tablename__ = "search_commits"
    _lead = ("sha",)
    _index = "sha"

    sha: Mapped[str] = mapped_column(_HEX, primary_key=True)


class SearchTicket(_SearchFilter, Base):
    """A Jira ticket of a deployment decision, upper-case."""

    __tablename__ = "search_tickets"
    _lead = ("ticket_key",)
    _index = "key"

    ticket_key: Mapped[str] = mapped_column(String(100), primary_key=True)


class SearchPerson(_SearchFilter, Base):
    """Someone a deployment decision names, in a role (requester, approver, author, committer), by each of their
    identifiers (login, name, e-mail, Jira accountId), lower-case."""

    __tablename__ = "search_people"
    _lead = ("identity",)
    _trail = ("role",)
    _index = "identity"

    role: Mapped[str] = mapped_column(String(20), primary_key=True)
    identity: Mapped[str] = mapped_column(String(200), primary_key=True)


class SearchVersion(_SearchFilter, Base):
    """What was deployed by name: the ref as GitHub gave it and its short form (`refs/tags/v1.2` and `v1.2`)."""

    __tablename__ = "search_versions"
    _lead = ("version",)
    _index = "version"

    version: Mapped[str] = mapped_column(String(300), primary_key=True)


class SearchRepository(Base):
    """Every repository a deployment decision was recorded for: a viewer's scope (patterns such as `acme/*`) becomes
    the list of names it admits, which the repository index can look up, where a pattern would test every row."""

    __tablename__ = "search_repositories"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)


# Tables whose rows are derived from ledger entries and keyed by their `sequence`: whatever deletes entries (the
# retention purge) deletes these rows with them, in the same transaction.
LEDGER_DERIVED = (SearchDeployment, SearchCommit, SearchTicket, SearchPerson, SearchVersion)


class InstallationToken(Base):
    """An installation token shared by every process, encrypted with a key derived from the app's private key.

    `claimed_until` is the minting claim: the process that set it mints while the others wait for its token, so
    two processes missing at once mint once. A dump of this table yields no usable token without the app's key.
    """

    __tablename__ = "installation_tokens"

    installation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token_ciphertext: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
