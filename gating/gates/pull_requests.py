"""Which open PRs reference which tickets, so that a Jira change re-evaluates exactly those PRs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from gating.db import Database
from gating.intake.payloads import required
from gating.models import PullRequestTicket


@dataclass(frozen=True)
class PullRequestRef:
    repository: str
    installation_id: int
    number: int

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PullRequestRef:
        """The PR a `pull_request` or `pull_request_review` delivery is about. Raises NotActionable."""
        return cls(
            repository=required(payload, "repository.full_name", str),
            installation_id=required(payload, "installation.id", int),
            number=required(payload, "pull_request.number", int),
        )


def index_pull_request(db: Database, ref: PullRequestRef, keys: list[str], now: datetime) -> None:
    """Remember which tickets this open PR references (replacing what it referenced before)."""
    try:
        _replace_index(db, ref, keys, now)
    except IntegrityError:
        # Two evaluations of the same PR (different heads) raced; the second write settles it.
        _replace_index(db, ref, keys, now)


def _replace_index(db: Database, ref: PullRequestRef, keys: list[str], now: datetime) -> None:
    with db.session() as session:
        session.execute(
            delete(PullRequestTicket).where(
                PullRequestTicket.repository == ref.repository, PullRequestTicket.number == ref.number
            )
        )
        for key in keys:
            session.add(
                PullRequestTicket(
                    repository=ref.repository,
                    number=ref.number,
                    ticket_key=key,
                    installation_id=ref.installation_id,
                    updated_at=now,
                )
            )


def forget_pull_request(db: Database, repository: str, number: int) -> None:
    with db.session() as session:
        session.execute(
            delete(PullRequestTicket).where(
                PullRequestTicket.repository == repository, PullRequestTicket.number == number
            )
        )


def pull_requests_for_ticket(db: Database, key: str) -> list[PullRequestRef]:
    with db.session() as session:
        rows = session.scalars(select(PullRequestTicket).where(PullRequestTicket.ticket_key == key)).all()
        return [PullRequestRef(r.repository, r.installation_id, r.number) for r in rows]
