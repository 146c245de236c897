"""Route webhook deliveries to handlers by event and action (one small router per feature)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gating import metrics

Handler = Callable[..., None]


class EventRouter:
    def __init__(self, *routers: EventRouter) -> None:
        self._handlers: dict[tuple[str, str | None], list[Handler]] = defaultdict(list)
        for router in routers:
            for key, handlers in router._handlers.items():
                self._handlers[key].extend(handlers)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: call the handler for `event` (and only for `action` when given)."""

        def decorate(handler: Handler) -> Handler:
            self._handlers[(event, action)].append(handler)
            return handler

        return decorate

    def handlers(self, event: str, action: str | None) -> list[Handler]:
        handlers = list(self._handlers.get((event, None), ()))
        if action is not None:
            handlers.extend(self._handlers.get((event, action), ()))
        return handlers

    def dispatch(self, delivery: Any, services: Any) -> None:
        # Verdicts the handlers publish are timed from the webhook's receipt (countersign_gate_verdict_seconds).
        with metrics.handling(getattr(delivery, "received_at", None)):
            for handler in self.handlers(delivery.event, delivery.action):
                handler(delivery, services)
