"""Publish the merge gate's verdict: one check run per head SHA and name, created in progress, then completed.

Three rules keep a required check from being stuck or wrong, however many processes evaluate a head:

- **One check run per head and name.** The `check_runs` row is claimed (inserted, with a lease)
  before the check run is created. The claimant creates it; everyone else waits for the id and
  adopts the run. A claimant that dies leaves a lease that runs out, and the next one takes over.
- **No second run from a lost answer.** GitHub may create a check run and lose the answer. Before
  each POST the claimant looks for this app's latest run of that name on the head and adopts it
  (for a Re-run, only one marked with this attempt's `external_id`).
- **Newer wins.** Each evaluation dates its facts (`as_of`, taken once its check run is recorded,
  before anything is read) and publishing compares and sets `published_as_of` with the row locked
  — a row lock held across the PATCH on PostgreSQL, so two processes cannot interleave. A verdict
  older than the one shown is not published; the run published on is the one the row names then.

GitHub's transient failures (no answer, 5xx, 429, short rate limits) are retried within
`github_retry_seconds`, honouring retry-after; then the caller publishes an error verdict. A long rate
limit raises `GitHubRateLimited` (a `RetryLater`): a claim being created is released on the way out, and
the job, run again later, adopts the run it had created (see `start`'s key).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from gating.db import Database, rows_updated
from gating.gates.failures import internal_error_verdict
from gating.gates.render import render_check_run
from gating.github_api import Repo, writes
from gating.github_api.errors import retrying
from gating.models import CheckRunRecord
from gating.policy.verdict import Verdict

log = logging.getLogger(__name__)

# The lease outlives the claimant's longest wait on GitHub by this much (clock skew between hosts).
LEASE_MARGIN = timedelta(seconds=30)
CLAIM_POLL_SECONDS = 0.05

# Within one process, publishing a head is serialised here as well as by the database row lock:
# SQLite has no row locks, and a bounded set of locks needs no clean-up.
_STRIPES = tuple(threading.Lock() for _ in range(64))


@dataclass(frozen=True)
class StartedRun:
    """A check run in progress for one evaluation, and the moment its facts date from."""

    run_id: int
    as_of: datetime


class CheckRunPublisher:
    """The check run named `name` on one head SHA, as one evaluation creates, adopts and completes it."""

    def __init__(
        self,
        db: Database,
        repo: Repo,
        head_sha: str,
        name: str,
        number: int | None,
        *,
        app_id: str,
        retry_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.repo = repo
        self.head_sha = head_sha
        self.name = name
        self.number = number
        self.app_id = app_id
        self.retry_seconds = retry_seconds
        self.clock = clock

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.retry_seconds) + LEASE_MARGIN

    def _lock(self) -> threading.Lock:
        return _STRIPES[hash((self.repo.full_name, self.head_sha, self.name)) % len(_STRIPES)]

    def _record(self) -> Select[CheckRunRecord]:
        return select(CheckRunRecord).where(
            CheckRunRecord.repository == self.repo.full_name,
            CheckRunRecord.head_sha == self.head_sha,
            CheckRunRecord.check_name == self.name,
        )

    def _retrying(self, operation: Callable[[], Any], what: str) -> Any:
        return retrying(operation, seconds=self.retry_seconds, what=what)

    # ----- starting: claim, create or adopt, mark in progress

    def start(self, new_run: bool, key: str = "") -> StartedRun:
        """The check run this evaluation publishes on: created (in progress) once per head and name, else adopted.

        `new_run`: someone pressed Re-run, and GitHub expects a new check run. `key` (the delivery) makes the
        claim token, which marks the run it creates (`external_id`), the same each time that delivery's job
        runs: a job deferred after creating its run (a rate limit) finds that run when it runs again and
        adopts it rather than creating another.
        """
        token = uuid.uuid5(uuid.NAMESPACE_URL, f"{key}|{self.head_sha}|{self.name}").hex if key else uuid.uuid4().hex
        adopted = self._claim_or_adopt(token, new_run)
        # An adopted run is not put back in progress: a PATCH that timed out or lost its answer can
        # still be applied after the completion, and would leave the check in progress for good. It
        # keeps showing the last verdict until this evaluation publishes the next one.
        run_id = adopted if adopted is not None else self._create_claimed(token, adopt_any=not new_run)
        # Taken once the run is recorded: any evaluation dated later publishes after this point, on
        # whatever run the row names then.
        return StartedRun(run_id, self.clock())

    def _claim_or_adopt(self, token: str, new_run: bool) -> int | None:
        """None when this evaluation now holds the claim and must create the run; else the run id to adopt."""
        waited_for: str | None = None  # the claim of another creator this evaluation is waiting on
        vanished = 0
        while True:
            now = self.clock()
            try:
                with self.db.session() as session:
                    session.add(
                        CheckRunRecord(
                            repository=self.repo.full_name,
                            head_sha=self.head_sha,
                            check_name=self.name,
                            check_run_id=None,
                            pull_number=self.number,
                            claim_token=token,
                            claim_expires_at=now + self._lease,
                        )
                    )
                return None
            except IntegrityError as exc:
                refused = exc  # the row exists: someone created the run, or is creating it
            adopt: int | None = None
            with self.db.session() as session:
                row = session.scalar(self._record())
                if row is None:
                    # Removed in between: claim it afresh. Again and again means the insert fails for
                    # another reason the driver reports as an integrity error (a trigger, a check).
                    vanished += 1
                    if vanished > 3:
                        raise refused
                    continue
                claim, expires = row.claim_token, row.claim_expires_at
                # A claim with our own token is this delivery's earlier run of the job, which is over (it was
                # deferred, or died): taken back at once rather than waited out.
                creating = claim is not None and claim != token and expires is not None and expires >= now
                if row.check_run_id is not None and (not new_run or (waited_for is not None and claim != waited_for)):
                    # A run exists. A Re-run adopts one only when it was created while it waited:
                    # that run is as new as the Re-run asked for.
                    adopt = row.check_run_id
                elif creating:
                    waited_for = claim
                else:
                    mine = (
                        update(CheckRunRecord)
                        .where(CheckRunRecord.id == row.id)
                        .where(
                            CheckRunRecord.claim_token.is_(None)
                            if claim is None
                            else CheckRunRecord.claim_token == claim
                        )
                        .values(claim_token=token, claim_expires_at=now + self._lease)
                    )
                    if not new_run:
                        mine = mine.where(CheckRunRecord.check_run_id.is_(None))
                    if rows_updated(session, mine):
                        if claim is not None:
                            log.warning(
                                "check_run.claim_taken_over",
                                extra={"repository": self.repo.full_name, "sha": self.head_sha},
                            )
                        return None
                    continue  # someone else moved first: look again
            if adopt is not None:
                return adopt
            time.sleep(CLAIM_POLL_SECONDS)  # another evaluation is creating the run: its id comes soon

    def _create_claimed(self, token: str, *, adopt_any: bool) -> int:
        """Create the check run under the claim (or adopt the one a lost answer created), then record it."""

        def attempt() -> int:
            existing = writes.latest_check_run(self.repo, self.name, self.head_sha, self.app_id)
            if existing is not None and (adopt_any or existing.external_id == token):
                log.info("check_run.adopted", extra={"repository": self.repo.full_name, "run_id": existing.id})
                return existing.id
            return writes.create_check_run(self.repo, self.name, self.head_sha, external_id=token)

        try:
            run_id: int = self._retrying(attempt, "check run creation")
        except BaseException:
            self._release(token)
            raise
        with self.db.session() as session:
            recorded = rows_updated(
                session,
                update(CheckRunRecord)
                .where(CheckRunRecord.repository == self.repo.full_name)
                .where(CheckRunRecord.head_sha == self.head_sha)
                .where(CheckRunRecord.check_name == self.name)
                # Our claim, or (when it ran out and no one recorded a run since) nobody's.
                .where(or_(CheckRunRecord.claim_token == token, CheckRunRecord.check_run_id.is_(None)))
                .values(
                    check_run_id=run_id,
                    claim_token=None,
                    claim_expires_at=None,
                    pull_number=self.number if self.number is not None else CheckRunRecord.pull_number,
                ),
            )
        if not recorded:
            # Our lease ran out and another evaluation recorded its own run: this one is completed
            # with our verdict too, so neither stays in progress.
            log.warning("check_run.claim_lost", extra={"repository": self.repo.full_name, "run_id": run_id})
        return run_id

    def _release(self, token: str) -> None:
        """Give the claim back at once, so nobody waits for the lease of a creation that failed."""
        try:
            with self.db.session() as session:
                session.execute(
                    update(CheckRunRecord)
                    .where(CheckRunRecord.claim_token == token)
                    .values(claim_token=None, claim_expires_at=None)
                )
        except SQLAlchemyError:
            log.warning("check_run.release_failed", extra={"repository": self.repo.full_name})

    # ----- completing: compare and set

    def complete(self, run: StartedRun, verdict: Verdict) -> bool:
        """Show `verdict` on the head's check run unless a newer one is shown; False when it was not published."""
        fields = completed_fields(verdict)
        with self._lock(), self.db.session() as session:
            # Locked until the commit: the compare, the PATCH and the set are one step.
            row = session.scalar(self._record().with_for_update())
            target = row.check_run_id if row is not None and row.check_run_id is not None else run.run_id
            shown = row.published_as_of if row is not None else None
            if shown is not None and shown > run.as_of:
                log.info(
                    "check_run.superseded",
                    extra={"repository": self.repo.full_name, "sha": self.head_sha, "outcome": verdict.outcome.label},
                )
                published = False
            else:
                self._retrying(lambda: writes.update_check_run(self.repo, target, fields), "check run completion")
                if row is None:
                    row = CheckRunRecord(
                        repository=self.repo.full_name,
                        head_sha=self.head_sha,
                        check_name=self.name,
                        check_run_id=target,
                        pull_number=self.number,
                    )
                    session.add(row)
                row.outcome = verdict.outcome.label
                row.title = fields["output"]["title"]
                row.evaluated_at = verdict.evaluated_at
                row.published_as_of = run.as_of
                published = True
        if run.run_id != target:
            # This evaluation's own run was superseded by a newer one (a Re-run, a lost lease): it is
            # completed with this verdict all the same, so that no run of ours stays in progress.
            self._retrying(lambda: writes.update_check_run(self.repo, run.run_id, fields), "check run completion")
        return published

    # ----- when the evaluation failed

    def publish_error(self, run: StartedRun | None, delivery_id: str, exc: BaseException, as_of: datetime) -> None:
        """Complete the check as failed, naming the delivery and how to re-run. Never raises.

        Through the claim and the compare-and-set when the database works; straight to GitHub when
        it does not, since a check left in progress blocks the PR for good.
        """
        verdict = internal_error_verdict(delivery_id, exc, self.clock())
        try:
            started = run or self.start(new_run=False)
            self.complete(StartedRun(started.run_id, run.as_of if run else as_of), verdict)
            return
        except SQLAlchemyError:
            log.exception("check_run.database_failed", extra={"repository": self.repo.full_name})
        except Exception:
            log.exception("check_run.error_not_published", extra={"repository": self.repo.full_name})
            return
        try:
            self._publish_directly(run.run_id if run else None, verdict)
        except Exception:
            log.exception("check_run.error_not_published", extra={"repository": self.repo.full_name})

    def _publish_directly(self, run_id: int | None, verdict: Verdict) -> None:
        fields = completed_fields(verdict)

        def attempt() -> None:
            target = run_id
            if target is None:
                existing = writes.latest_check_run(self.repo, self.name, self.head_sha, self.app_id)
                target = existing.id if existing else writes.create_check_run(self.repo, self.name, self.head_sha)
            writes.update_check_run(self.repo, target, fields)

        self._retrying(attempt, "error check run")


def completed_fields(verdict: Verdict) -> dict[str, Any]:
    output = render_check_run(verdict)
    fields: dict[str, Any] = {
        "status": "completed",
        "conclusion": output.conclusion,
        "completed_at": verdict.evaluated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "output": {"title": output.title, "summary": output.summary},
    }
    if output.text:
        fields["output"]["text"] = output.text
    return fields
