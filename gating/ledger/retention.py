"""Retention and legal hold: which prefix of the ledger is past retention and under no hold, and purging it.

Purging removes a contiguous prefix only: from the oldest entry left up to, not including, the first entry that is
within retention, under a legal hold, or the newest entry of the chain (which is always kept, so that appends keep
finding the head). Entries past retention after the first held one are kept too, and the purge record says how
many: a gap in the middle of the chain could not be told apart from a deletion without recording every hole, and
one known gap at the start keeps verification as simple as it was. Each purged run of at most `purges.MAX_RANGE`
entries is deleted in the same transaction that appends its `retention_purge` entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from gating.db import Database
from gating.ledger import chain, purges
from gating.ledger.purges import Retention
from gating.ledger.store import Ledger, LedgerEntryView
from gating.models import LEDGER_DERIVED, LedgerEntry, LegalHold

HOLD_KIND = "legal_hold"
RELEASE_KIND = "legal_hold_released"
_TICKET = re.compile(r"[A-Z][A-Z0-9_]+-[0-9]+")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class RetentionError(RuntimeError):
    """Nothing (more) was purged or held, and why."""


@dataclass(frozen=True)
class Hold:
    id: int
    repository: str | None
    ticket: str | None
    reason: str
    placed_at: datetime
    placed_entry: int
    released_at: datetime | None
    released_entry: int | None

    @classmethod
    def of(cls, row: LegalHold) -> Hold:
        return cls(
            row.id,
            row.repository,
            row.ticket,
            row.reason,
            row.placed_at,
            row.placed_entry,
            row.released_at,
            row.released_entry,
        )

    def scope(self) -> str:
        return f"repository {self.repository}" if self.repository else f"ticket {self.ticket}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "hold": self.id,
            "repository": self.repository,
            "ticket": self.ticket,
            "reason": self.reason,
            "placed_at": chain.format_time(self.placed_at),
            "placed_entry": self.placed_entry,
        }


def _matches(hold: Hold) -> ColumnElement[bool]:
    """The entries a hold keeps: its repository's, or those naming its ticket as a whole JSON string."""
    if hold.repository is not None:
        return LedgerEntry.repository == hold.repository
    escaped = (hold.ticket or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return LedgerEntry.payload.like(f'%"{escaped}"%', escape="\\")


def place_hold(ledger: Ledger, *, repository: str | None = None, ticket: str | None = None, reason: str) -> Hold:
    """Keep every entry of `repository`, or naming `ticket`, from the purge until the hold is lifted.

    The hold is recorded in the ledger too, so that its start is as tamper-evident as the evidence it keeps.
    """
    if (repository is None) == (ticket is None):
        raise RetentionError("a hold names either a repository or a ticket")
    if repository is not None and not _REPOSITORY.fullmatch(repository):
        raise RetentionError(f"{repository!r} is not a repository (owner/name)")
    if ticket is not None and not _TICKET.fullmatch(ticket):
        raise RetentionError(f"{ticket!r} is not a Jira key (e.g. PAY-101)")
    if not reason.strip():
        raise RetentionError("a hold needs a reason (the matter or request it serves)")
    now = ledger.clock()
    with ledger.db.session() as session:
        row = LegalHold(repository=repository, ticket=ticket, reason=reason.strip(), placed_at=now, placed_entry=0)
        session.add(row)
        session.flush()
        entry = ledger.append(
            HOLD_KIND,
            {"hold": row.id, "repository": repository, "ticket": ticket, "reason": row.reason, "placed_at": now},
            index={"repository": repository},
            session=session,
        )
        row.placed_entry = entry.sequence
        return Hold.of(row)


def lift_hold(ledger: Ledger, hold_id: int) -> Hold:
    """End a hold; what it kept becomes purgeable again. The release is recorded in the ledger."""
    now = ledger.clock()
    with ledger.db.session() as session:
        row = session.get(LegalHold, hold_id)
        if row is None:
            raise RetentionError(f"no legal hold {hold_id} (see `countersign hold list`)")
        if row.released_at is not None:
            raise RetentionError(f"legal hold {hold_id} was already lifted on {chain.format_time(row.released_at)}")
        entry = ledger.append(
            RELEASE_KIND,
            Hold.of(row).as_dict() | {"released_at": now},
            index={"repository": row.repository},
            session=session,
        )
        row.released_at, row.released_entry = now, entry.sequence
        return Hold.of(row)


def list_holds(db: Database, *, include_lifted: bool = False) -> list[Hold]:
    statement = select(LegalHold).order_by(LegalHold.id)
    if not include_lifted:
        statement = statement.where(LegalHold.released_at.is_(None))
    with db.session() as session:
        return [Hold.of(row) for row in session.scalars(statement)]


@dataclass(frozen=True)
class HeldBack:
    """A hold that kept entries past retention: the first of them, and how many."""

    hold: Hold
    first: int
    count: int

    def as_dict(self) -> dict[str, Any]:
        return self.hold.as_dict() | {"first_held_sequence": self.first, "entries_kept": self.count}


@dataclass(frozen=True)
class PurgePlan:
    """What `purge` removes: entries `first`..`last` (none when `last` is None), and what it keeps past retention."""

    rule: Retention
    now: datetime
    cutoff: datetime
    first: int | None = None  # the oldest entry present
    last: int | None = None  # the last entry purged
    first_recorded_at: datetime | None = None
    last_recorded_at: datetime | None = None
    stop: int | None = None  # the first entry kept
    stop_reason: str = "empty"  # empty | retention | hold | head
    held: tuple[HeldBack, ...] = ()
    kept_past_retention: int = 0  # entries past retention from `stop` on (held, or behind a held one)
    kept_last: int | None = None  # the last of those

    @property
    def count(self) -> int:
        return 0 if self.first is None or self.last is None else self.last - self.first + 1

    def chunks(self) -> list[tuple[int, int]]:
        """The runs each recorded by one purge entry."""
        if self.first is None or self.last is None:
            return []
        step = purges.MAX_RANGE
        return [(a, min(a + step - 1, self.last)) for a in range(self.first, self.last + 1, step)]

    def kept(self) -> dict[str, Any] | None:
        if self.stop is None or self.kept_last is None:
            return None
        return {"first": self.stop, "last": self.kept_last, "count": self.kept_past_retention}

    def describe(self) -> list[str]:
        """Lines saying what is purged, what is kept past retention and why."""
        rule = f"older than {self.rule.describe()} (recorded before {chain.format_time(self.cutoff)})"
        if self.count and self.first is not None and self.last is not None:
            span = purges.DASH.join(str(n) for n in sorted({self.first, self.last}))
            when = f"{_day(self.first_recorded_at)} to {_day(self.last_recorded_at)}"
            lines = [f"entries {span} ({self.count}, recorded {when}) are {rule}"]
        else:
            lines = [f"no entry is past retention and free to purge: retention keeps entries {rule}"]
        if self.kept_past_retention and self.stop is not None:
            why = {
                "hold": "the first entry under legal hold",
                "head": "the newest entry, which is always kept",
                "retention": "the first entry within retention",
            }[self.stop_reason]
            lines.append(
                f"kept past retention: {self.kept_past_retention} entr{'y' if self.kept_past_retention == 1 else 'ies'}"
                f" from entry {self.stop} on, which is {why} (only the oldest entries, up to the first one kept, "
                "are purged)"
            )
        for held in self.held:
            lines.append(
                f"legal hold {held.hold.id} ({held.hold.scope()}: {held.hold.reason}) keeps {held.count} entr"
                f"{'y' if held.count == 1 else 'ies'} past retention, the first entry {held.first}"
            )
        return lines


def _day(value: datetime | None) -> str:
    return chain.format_time(value)[:10] if value is not None else "?"


def _first(session: Session, *conditions: ColumnElement[bool]) -> int | None:
    found = session.execute(
        select(LedgerEntry.sequence).where(*conditions).order_by(LedgerEntry.sequence).limit(1)
    ).scalar()
    return int(found) if found is not None else None


def _plan(session: Session, rule: Retention, now: datetime, holds: Sequence[Hold]) -> PurgePlan:
    cutoff = rule.cutoff(now)
    bounds = session.execute(select(func.min(LedgerEntry.sequence), func.max(LedgerEntry.sequence))).one()
    if bounds[0] is None:
        return PurgePlan(rule, now, cutoff)
    start, head = int(bounds[0]), int(bounds[1])
    old = LedgerEntry.created_at < cutoff
    stops = [(head, "head")]
    young = _first(session, LedgerEntry.created_at >= cutoff)
    if young is not None:
        stops.append((young, "retention"))
    held: list[HeldBack] = []
    for hold in holds:
        first_held = _first(session, _matches(hold), old)
        if first_held is not None:
            count = session.execute(select(func.count()).where(_matches(hold), old)).scalar_one()
            held.append(HeldBack(hold, first_held, int(count)))
            stops.append((first_held, "hold"))
    # The earliest reason wins; at the same entry a hold is named before the head, the head before retention.
    order = {"hold": 0, "head": 1, "retention": 2}
    stop, reason = min(stops, key=lambda s: (s[0], order[s[1]]))
    kept = session.execute(
        select(func.count(), func.max(LedgerEntry.sequence)).where(old, LedgerEntry.sequence >= stop)
    ).one()
    last = stop - 1 if stop > start else None
    first_at: datetime | None = None
    last_at: datetime | None = None
    if last is not None:
        first_at, last_at = session.execute(
            select(func.min(LedgerEntry.created_at), func.max(LedgerEntry.created_at)).where(
                LedgerEntry.sequence <= last
            )
        ).one()
    return PurgePlan(
        rule,
        now,
        cutoff,
        first=start,
        last=last,
        first_recorded_at=first_at,
        last_recorded_at=last_at,
        stop=stop,
        stop_reason=reason,
        held=tuple(held),
        kept_past_retention=int(kept[0]),
        kept_last=int(kept[1]) if kept[1] is not None else None,
    )


def plan_purge(ledger: Ledger, rule: Retention, now: datetime | None = None) -> PurgePlan:
    """What `purge` would remove now, and what it keeps past retention; changes nothing (`--dry-run`)."""
    holds = list_holds(ledger.db)
    with ledger.db.session() as session:
        return _plan(session, rule, now or ledger.clock(), holds)


def purge(ledger: Ledger, plan: PurgePlan) -> list[LedgerEntryView]:
    """Remove what `plan` names, each run in one transaction with the `retention_purge` entry recording it.

    Refuses a ledger that does not verify (the entries may be the evidence of what went wrong), and a signed ledger
    without its key (the record would be an unsigned entry among signed ones).
    """
    chunks = plan.chunks()
    if not chunks:
        return []
    result = ledger.verify(snapshot_at={b for _a, b in chunks})
    if not result.ok:
        raise RetentionError(f"ledger BROKEN, nothing purged: {result.reason}")
    if ledger.signing_key is None and any(span.state != "unsigned" for span in result.spans):
        raise RetentionError(
            "the ledger is signed: purge with COUNTERSIGN_SIGNING_KEY_PATH set to its key, so that the purge "
            "record is signed like the entries around it"
        )
    states = dict(result.snapshots)
    known = list(result.purged)
    written: list[LedgerEntryView] = []
    for part, (a, b) in enumerate(chunks, 1):
        carried = [r for r in known if a <= r.listed_by <= b]
        entry = _purge_run(ledger, plan, a, b, states[b], carried, (part, len(chunks)))
        written.append(entry)
        known = [r for r in known if r not in carried]
    return written


def _purge_run(
    ledger: Ledger,
    plan: PurgePlan,
    a: int,
    b: int,
    state: purges.KeySnapshot,
    carried: list[purges.PurgedRange],
    part: tuple[int, int],
) -> LedgerEntryView:
    holds = list_holds(ledger.db)
    with ledger.db.session() as session:
        ledger._lock(session)  # nothing appends, purges or places a hold in between
        now_plan = _plan(session, plan.rule, plan.now, holds)
        if now_plan.first != a or now_plan.last is None or now_plan.last < b:
            raise RetentionError(
                f"the ledger changed while purging (a hold placed, or another purge?): entries {a}{purges.DASH}{b} "
                "were not purged; run the purge again"
            )
        rows = session.execute(
            select(LedgerEntry.sequence, LedgerEntry.prev_hash, LedgerEntry.hash, LedgerEntry.created_at)
            .where(LedgerEntry.sequence.between(a, b))
            .order_by(LedgerEntry.sequence)
        ).all()
        hashes = [str(row.hash) for row in rows]
        payload = purges.purge_payload(
            rule=plan.rule,
            cutoff=plan.cutoff,
            run_at=plan.now,
            first=a,
            prev_hash=rows[0].prev_hash,
            hashes=hashes,
            first_recorded_at=rows[0].created_at,
            last_recorded_at=rows[-1].created_at,
            state=state,
            carried=carried,
            held=[held.as_dict() for held in plan.held],
            kept=plan.kept(),
            part=part,
        )
        session.execute(delete(LedgerEntry).where(LedgerEntry.sequence.between(a, b)))
        for derived in LEDGER_DERIVED:  # the search index of what is purged goes with it
            session.execute(delete(derived).where(derived.sequence.between(a, b)))
        return ledger.append(purges.KIND, payload, index={}, session=session)
