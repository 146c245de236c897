"""Periodic work, once per period across every process: each run is claimed in the database first."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from gating.db import Database, rows_updated
from gating.models import PeriodicRun

log = logging.getLogger(__name__)


def claim_period(db: Database, name: str, period: timedelta, now: datetime) -> bool:
    """True for the one process that may run `name` now: it last ran a whole period ago, or never."""
    try:
        with db.session() as session:
            session.add(PeriodicRun(name=name, last_run_at=now))
        return True
    except IntegrityError:
        pass
    with db.session() as session:
        return bool(
            rows_updated(
                session,
                update(PeriodicRun)
                .where(PeriodicRun.name == name, PeriodicRun.last_run_at <= now - period)
                .values(last_run_at=now),
            )
        )


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    period: timedelta
    run: Callable[[], object]
    at_start: bool = False  # also when a process starts, whenever it last ran: e.g. to catch up after an outage


class Scheduler:
    """Runs each job when its period has passed (claimed, so once across processes), the first time at start."""

    def __init__(
        self, db: Database, clock: Callable[[], datetime], jobs: list[PeriodicJob], *, tick_seconds: float = 15.0
    ) -> None:
        self._db = db
        self._clock = clock
        self._jobs = jobs
        self._tick = tick_seconds
        self._stopping = threading.Event()
        self.started = threading.Event()  # set once the run at start is over (tests wait for it, not for a time)
        self._thread = threading.Thread(target=self._loop, name="countersign-periodic", daemon=True)

    def start(self) -> Scheduler:
        self._thread.start()
        return self

    def shutdown(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def run_due(self, *, starting: bool = False) -> list[str]:
        """Run every job whose period has passed (and, `starting`, those that run at start); their names."""
        ran = []
        for job in self._jobs:
            if self._stopping.is_set():
                break
            try:
                now = self._clock()
                due = claim_period(self._db, job.name, job.period, now)
                if not due and not (starting and job.at_start):
                    continue
                job.run()
                ran.append(job.name)
            except Exception:  # one job failing must not stop the others, nor the scheduler
                log.exception("periodic.failed", extra={"job": job.name})
        return ran

    def _loop(self) -> None:
        starting = True
        while not self._stopping.is_set():
            self.run_due(starting=starting)
            if starting:
                self.started.set()
            starting = False
            self._stopping.wait(self._tick)
