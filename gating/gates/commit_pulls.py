"""The PRs GitHub associates with released commits, remembered once final (every PR merged)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gating.db import Database
from gating.models import CommitPullRequests


class CommitPullCache:
    """Per (repository, SHA): the numbers of the merged PRs that brought the commit."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def get(self, repository: str, shas: Iterable[str]) -> dict[str, tuple[int, ...]]:
        wanted = list(shas)
        found: dict[str, tuple[int, ...]] = {}
        with self.db.session() as session:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                rows = session.scalars(
                    select(CommitPullRequests).where(
                        CommitPullRequests.repository == repository,
                        CommitPullRequests.sha.in_(wanted[start : start + 500]),
                    )
                )
                found.update({row.sha: tuple(int(n) for n in row.pull_numbers.split()) for row in rows})
        return found

    def put(self, repository: str, associations: Mapping[str, tuple[int, ...]]) -> None:
        if not associations:
            return
        now = self.clock()
        rows = [
            {"repository": repository, "sha": sha, "pull_numbers": " ".join(map(str, numbers)), "recorded_at": now}
            for sha, numbers in associations.items()
        ]
        with self.db.session() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            # Another evaluation may have recorded some first; the association is the same.
            session.execute(insert(CommitPullRequests).on_conflict_do_nothing(), rows)
