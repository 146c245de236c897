"""Helpers for tests that run the Jira simulator on 127.0.0.1 and read it through JiraGateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from jira_client.gateway import JiraGateway
from simulators.http import RecordedRequest
from simulators.jira import JiraSimulator

T0 = datetime(2024, 1, 18, 6, 27, 50, 429000, tzinfo=UTC)


@contextmanager
def running_jira(deployment_type: str = "Cloud", **kwargs: Any) -> Iterator[JiraSimulator]:
    sim = JiraSimulator(deployment_type, **kwargs)
    sim.start()
    try:
        yield sim
    finally:
        sim.faults.reset()
        sim.stop()


def fast_gateway(url: str, **overrides: Any) -> JiraGateway:
    """A gateway whose retries do not slow tests down."""
    options: dict[str, Any] = {"user": "bot@example.com", "token": "secret-token", "timeout": 2.0, "backoff": 0.01}
    options.update(overrides)
    return JiraGateway(url, **options)


def seed_people(sim: JiraSimulator) -> None:
    sim.add_user("acc-alice", "Alice Author", email=None, name="alice")
    sim.add_user("acc-bob", "Bob Approver", email="bob@example.com", name="bob")


def seed_approved_ticket(sim: JiraSimulator, key: str, at: datetime = T0) -> None:
    """To Do → In Progress (alice) → Approved (bob)."""
    sim.add_ticket(key, summary=f"Change {key}", reporter="acc-alice")
    sim.transition(key, "In Progress", by="acc-alice", at=at)
    sim.transition(key, "Approved", by="acc-bob", at=at + timedelta(hours=1))


def api_requests(sim: JiraSimulator, suffix: str) -> list[RecordedRequest]:
    """Logged REST requests whose path ends with `suffix` (e.g. "/search/jql")."""
    return [r for r in sim.recorder.requests if r.path.endswith(suffix)]


def search_requests(sim: JiraSimulator) -> list[RecordedRequest]:
    return [r for r in sim.recorder.requests if r.path.endswith("/search") or r.path.endswith("/search/jql")]
