"""The long-lived collaborators a request or job needs, built once per app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gating.db import Database
from gating.github_api import GitHubApp
from gating.intake.deliveries import DeliveryStore
from gating.intake.jobs import Processor
from gating.intake.periodic import Scheduler
from gating.intake.routing import EventRouter
from gating.ledger import Ledger
from gating.settings import Settings
from jira_client.gateway import JiraGateway


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    db: Database
    github: GitHubApp
    jira: JiraGateway
    deliveries: DeliveryStore
    processor: Processor
    router: EventRouter
    ledger: Ledger
    clock: Callable[[], datetime] = utcnow
    scheduler: Scheduler | None = None  # the periodic jobs, where this process runs them
