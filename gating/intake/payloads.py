"""Reading webhook payloads: a field a handler needs is there with its type, or the delivery is not actionable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")


class NotActionable(Exception):
    """A delivery GitHub's schema allows but that gives Countersign nothing to act on (no installation, say).

    It is acknowledged and logged, never retried: a redelivery would carry the same payload.
    """


def required(payload: Mapping[str, Any], path: str, kind: type[T]) -> T:
    """The value at a dotted `path` (e.g. `installation.id`), of type `kind`; else NotActionable naming it."""
    value: Any = payload
    if not isinstance(value, Mapping):
        raise NotActionable(f"the payload has no `{path}`")
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            raise NotActionable(f"the payload has no `{path}`")
    # bool is an int to Python, never to GitHub's schema.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise NotActionable(f"`{path}` is {type(value).__name__}, not {kind.__name__}")
    if kind is str and not value:
        raise NotActionable(f"`{path}` is empty")
    return value


def timestamp(payload: Mapping[str, Any], path: str) -> datetime | None:
    """An ISO-8601 time at `path` (GitHub's `2024-05-01T12:00:00Z`) in UTC, or None when absent or malformed."""
    text = optional(payload, path, str)
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment is not None and moment.tzinfo is not None else None


def optional(payload: Mapping[str, Any], path: str, kind: type[T]) -> T | None:
    """The value at a dotted `path` when present and of type `kind`, else None."""
    try:
        return required(payload, path, kind)
    except NotActionable:
        return None
