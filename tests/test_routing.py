"""Routing: each handler runs once per delivery, for its event and action only."""

from __future__ import annotations

from types import SimpleNamespace

from gating.intake.routing import EventRouter


def test_handlers_run_once_for_events_with_and_without_actions() -> None:
    calls: list[str] = []
    router = EventRouter()

    @router.register("jira:issue_updated")
    def on_ticket(_delivery: object, _services: object) -> None:
        calls.append("ticket")

    @router.register("pull_request", "opened")
    def on_opened(_delivery: object, _services: object) -> None:
        calls.append("opened")

    composed = EventRouter(router)
    composed.dispatch(SimpleNamespace(event="jira:issue_updated", action=None), None)
    composed.dispatch(SimpleNamespace(event="pull_request", action="opened"), None)
    composed.dispatch(SimpleNamespace(event="pull_request", action="closed"), None)
    assert calls == ["ticket", "opened"]
